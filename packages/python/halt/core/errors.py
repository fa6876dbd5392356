"""Errors Halt raises: configuration mistakes (at construction) and RateLimitExceeded (from decorators)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from halt.core.types import Decision

DOCS = "docs/errors.md"  # in the Halt repository


class HaltConfigError(ValueError):
    """A configuration mistake, raised when a limiter, policy or store is created, never while serving.

    ``code`` is stable (the same codes as the TypeScript SDK); the message says what is wrong and how to
    fix it; ``docs`` points at the explanation.

    Example::

        try:
            RateLimiter(policy=Policy(limit=-1, window=60))
        except HaltConfigError as e:
            print(e.code)  # HALT_INVALID_LIMIT
    """

    def __init__(self, code: str, message: str) -> None:
        docs = f"{DOCS}#{code.lower()}"
        super().__init__(f"{message} ({code}, see {docs})")
        self.code = code
        self.docs = docs


class RateLimitExceeded(Exception):
    """Raised by functions decorated with ``@limiter.limit(...)`` when the call is over the limit.

    Being limited is a normal outcome: ``check()`` returns a decision instead of raising.
    """

    def __init__(self, decision: Decision) -> None:
        super().__init__(
            f"Rate limit exceeded for policy '{decision.policy}': retry after {decision.retry_after}s "
            f"({decision.reason or 'limit'})"
        )
        self.decision = decision
        self.retry_after = decision.retry_after
