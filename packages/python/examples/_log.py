"""TEMPORARY: one log line per decision, as TS LoggingTelemetry writes it, until halt's LoggingTelemetry lands."""

from __future__ import annotations

import logging
import secrets
import time

from halt import DecisionEvent, Telemetry

log = logging.getLogger("halt.telemetry")


class LoggingTelemetry(Telemetry):
    def on_check(self, event: DecisionEvent) -> None:
        d = event.decision
        rid = event.request.header("x-request-id") if event.request is not None else None
        line = f"{time.strftime('%H:%M:%S')} req_id={rid or secrets.token_hex(4)} key={event.key or '-'}"
        if d.reason == "exempt":
            line += " check=exempt"
        elif d.allowed:
            line += f" check=pass remaining={d.remaining}"
        else:
            line += f" check={d.reason or 'limit'} remaining={d.remaining} retry_after={d.retry_after}"
        (log.info if d.allowed else log.warning)(line)
