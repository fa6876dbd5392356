"""LoggingTelemetry: one logfmt line per decision (``12:41:01 req_id=8f1 key=ip:203.0.113.7 check=pass remaining=3``)
to a ``logging.Logger`` (or anything with ``info`` and ``warning``)."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any, Callable, Optional

from halt.core.errors import HaltConfigError
from halt.http.headers import js_number

from .labels import message_of
from .types import DecisionEvent, StoreErrorEvent

__all__ = ["LoggingTelemetry"]

_BARE = re.compile(r"[\x21\x23-\x3c\x3e-\x5b\x5d-\x7e]+")  # printable ASCII but space, '"', '=' and '\'
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class LoggingTelemetry:
    """Logs one line per decision, in logfmt after a time of day::

        12:41:01 req_id=8f1 key=ip:203.0.113.7 check=pass remaining=119
        12:41:03 req_id=2c7 key=ip:203.0.113.7 check=limit remaining=0 retry_after=1
        12:41:09 req_id=a40 key=ip:127.0.0.1 check=exempt

    ``check`` is ``pass``, ``exempt``, or the reason of a rejection (``limit``, ``cooldown``, ``penalty``,
    ``store_error``, ``cost_exceeds_capacity``). Decisions of a policy in shadow mode end with ``shadow=true``; those
    taken by the store failure policy with ``store_error=<open|closed|fallback>``. API keys appear only hashed (as in
    the storage key); a value with spaces or quotes is written as a JSON string.

    ``logger``: default ``logging.getLogger("halt.telemetry")``; admissions go to ``info``, rejections, near-limit
    signals and store errors to ``warning``. ``log_allowed=False`` keeps only rejections and warnings.
    ``time_zone``: ``'local'`` (default) or ``'utc'``. ``clock``: epoch milliseconds, default the system clock.

    Example::

        RateLimiter(policy=presets.PUBLIC_API, telemetry=LoggingTelemetry(logger=logging.getLogger("api")))
    """

    def __init__(
        self,
        *,
        logger: Any = None,
        log_allowed: bool = True,
        time_zone: str = "local",
        clock: Optional[Callable[[], float]] = None,
    ) -> None:
        if logger is None:
            logger = logging.getLogger("halt.telemetry")
        if not callable(getattr(logger, "info", None)) or not callable(getattr(logger, "warning", None)):
            raise HaltConfigError(
                "HALT_INVALID_TELEMETRY",
                "LoggingTelemetry: logger must have info(message) and warning(message), like logging.getLogger(name).",
            )
        if time_zone not in ("local", "utc"):
            raise HaltConfigError(
                "HALT_INVALID_TELEMETRY", f"LoggingTelemetry: time_zone is 'local' or 'utc', got {time_zone!r}."
            )
        if clock is not None and not callable(clock):
            raise HaltConfigError(
                "HALT_INVALID_TELEMETRY",
                "LoggingTelemetry: clock must be a function returning epoch milliseconds, like "
                "lambda: time.time() * 1000.",
            )
        self._info: Callable[[str], Any] = logger.info
        self._warning: Callable[[str], Any] = logger.warning
        self._log_allowed = bool(log_allowed)
        self._convert = time.gmtime if time_zone == "utc" else time.localtime
        self._clock: Callable[[], float] = clock if clock is not None else _now_ms
        # (second, "HH:MM:SS"), replaced as a whole so that threads never see one half of an update.
        self._stamp: tuple[float, str] = (float("nan"), "")

    def on_check(self, e: DecisionEvent) -> None:
        d = e.decision
        if d.allowed and not self._log_allowed:
            return
        line = self._prefix(e)
        if d.reason == "exempt":
            line += " check=exempt"
        elif d.allowed:
            line += f" check=pass remaining={js_number(d.remaining)}"
        else:
            reason = d.reason if d.reason is not None else "limit"
            line += f" check={reason} remaining={js_number(d.remaining)} retry_after={js_number(d.retry_after)}"
        if e.shadow:
            line += " shadow=true"
        if e.store_error is not None:
            line += f" store_error={e.store_error}"
        (self._info if d.allowed else self._warning)(line)

    def on_near_limit(self, e: DecisionEvent) -> None:
        d = e.decision
        self._warning(
            f"{self._prefix(e)} near_limit policy={_value(d.policy)} remaining={js_number(d.remaining)} "
            f"limit={js_number(d.limit)}{' shadow=true' if e.shadow else ''}"
        )

    def on_error(self, e: StoreErrorEvent) -> None:
        self._warning(
            f"{self._time()} store_error policy={_value(e.policy)} key={_value(e.key)} operation={e.operation} "
            f"action={e.action} error={_value(message_of(e.error)[:300])}"
        )

    def _prefix(self, e: DecisionEvent) -> str:
        rid = "-" if e.request_id is None else _value(e.request_id)
        return f"{self._time()} req_id={rid} key={'-' if e.key == '' else _value(e.key)}"

    def _time(self) -> str:
        """HH:MM:SS, formatted once per second."""
        second = self._clock() // 1000
        stamp = self._stamp
        if stamp[0] == second:
            return stamp[1]
        text = time.strftime("%H:%M:%S", self._convert(second))
        self._stamp = (second, text)
        return text


def _value(v: str) -> str:
    """A logfmt value: bare when it is printable ASCII without spaces, quotes, '=' or '\\'; else a JSON string as
    JavaScript's JSON.stringify writes it (no line break can sneak in)."""
    if _BARE.fullmatch(v) is not None:
        return v
    text = json.dumps(v, ensure_ascii=False)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _now_ms() -> float:
    return time.time() * 1000
