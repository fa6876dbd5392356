"""Soft warnings: problems noticed while serving (never raised), reported once per limiter and code, silenceable."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Union

from ..core.errors import HaltConfigError

__all__ = ["HaltWarning", "WarningCode", "Warnings", "Validations"]

_log = logging.getLogger("halt")


class WarningCode:
    """Every warning code; each has a section in docs/errors.md.

    Example: ``RateLimiter(policy=..., validations={WarningCode.UNCONFIGURED_PROXY: False})``.
    """

    #: A private peer sends X-Forwarded-For / Forwarded but no ``trusted_proxies`` are configured.
    UNCONFIGURED_PROXY = "HALT_UNCONFIGURED_PROXY"
    #: The adapter could not tell the client's address; such requests share one key.
    NO_CLIENT_ADDRESS = "HALT_NO_CLIENT_ADDRESS"
    #: The ``policy`` function raised or returned an invalid policy; the default policy was used.
    POLICY_RESOLVER_FAILED = "HALT_POLICY_RESOLVER_FAILED"
    #: The ``cost`` function raised or returned something other than a finite number >= 0; the policy's cost was used.
    INVALID_REQUEST_COST = "HALT_INVALID_REQUEST_COST"
    #: ``key_extractor``, ``user_id`` or ``skip`` raised; the request had no identity (or was not skipped).
    CALLBACK_FAILED = "HALT_CALLBACK_FAILED"
    #: The ``api_key`` strategy runs on a shared store with a per-process random secret.
    API_KEY_SECRET_NOT_SHARED = "HALT_API_KEY_SECRET_NOT_SHARED"
    #: A telemetry hook raised (or its coroutine failed); the request was served all the same.
    TELEMETRY_HOOK_FAILED = "HALT_TELEMETRY_HOOK_FAILED"


CODES: tuple[str, ...] = (
    WarningCode.UNCONFIGURED_PROXY,
    WarningCode.NO_CLIENT_ADDRESS,
    WarningCode.POLICY_RESOLVER_FAILED,
    WarningCode.INVALID_REQUEST_COST,
    WarningCode.CALLBACK_FAILED,
    WarningCode.API_KEY_SECRET_NOT_SHARED,
    WarningCode.TELEMETRY_HOOK_FAILED,
)


@dataclass(frozen=True)
class HaltWarning:
    """A warning as passed to the ``on_warning`` option."""

    code: str
    message: str


Validations = Union[bool, Mapping[str, bool]]


def _log_warning(w: HaltWarning) -> None:
    _log.warning("[halt] %s: %s", w.code, w.message)


class Warnings:
    """Reports each code once; ``validations`` turns all (False) or some (``{"HALT_X": False}``) off."""

    __slots__ = ("_off", "_seen", "_sink")

    def __init__(self, on_warning: Optional[Callable[[HaltWarning], None]], validations: Optional[Validations]) -> None:
        if on_warning is not None and not callable(on_warning):
            raise HaltConfigError(
                "HALT_INVALID_CALLBACK",
                f"on_warning must be a function (warning) -> None, got {type(on_warning).__name__}.",
            )
        self._sink: Callable[[HaltWarning], None] = on_warning if on_warning is not None else _log_warning
        self._seen: set[str] = set()
        if validations is None or validations is True:
            self._off: frozenset[str] = frozenset()
        elif validations is False:
            self._off = frozenset(CODES)
        elif isinstance(validations, Mapping):
            for k in validations:
                if k not in CODES:
                    raise HaltConfigError(
                        "HALT_INVALID_VALIDATIONS",
                        f"validations: unknown warning code '{k}'. Fix: use one of {', '.join(CODES)}.",
                    )
            self._off = frozenset(k for k, v in validations.items() if v is False)
        else:
            raise HaltConfigError(
                "HALT_INVALID_VALIDATIONS",
                f"validations must be True, False or {{'HALT_UNCONFIGURED_PROXY': False, ...}}, got {validations!r}.",
            )

    def pending(self, code: str) -> bool:
        """Whether ``code`` is still worth checking (enabled, not yet reported); else callers skip the detection."""
        return code not in self._seen and code not in self._off

    def warn(self, code: str, message: str) -> None:
        if not self.pending(code):
            return
        self._seen.add(code)
        # A raising logger must not turn a request into a 500.
        with contextlib.suppress(Exception):
            self._sink(HaltWarning(code, message))
