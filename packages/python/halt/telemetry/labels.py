"""What every exporter reads off a decision: a bounded set of labels (never the key: one series per client would not
scale)."""

from __future__ import annotations

from halt.core.types import Decision

__all__ = ["LATENCY_BUCKETS_MS", "message_of", "outcome_of", "reason_of"]

#: Upper bounds (milliseconds) of the latency histogram buckets: in-memory checks fall in the first few, remote
#: stores further up.
LATENCY_BUCKETS_MS: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500,
)  # fmt: skip


def outcome_of(d: Decision) -> str:
    """``allowed``, ``blocked`` or ``exempt``: what the deciding policy said (in shadow mode, ``blocked`` was admitted
    all the same)."""
    if d.reason == "exempt":
        return "exempt"
    return "allowed" if d.allowed else "blocked"


def reason_of(d: Decision) -> str:
    """The decision's reason, ``none`` for a plain admission."""
    return "none" if d.reason is None else d.reason


def message_of(error: object) -> str:
    """An error's message, its type's name when it has none."""
    text = str(error)
    return text if text or not isinstance(error, BaseException) else type(error).__name__
