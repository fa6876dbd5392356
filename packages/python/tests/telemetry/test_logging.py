"""LoggingTelemetry: the documented line per decision (the TypeScript SDK's), levels, shadow and failure-policy marks,
quoting, no raw API key, and its options."""

from __future__ import annotations

import calendar
import logging
import re
import time
from typing import Any

import pytest

from halt import Decision, HaltConfigError, InMemoryStore, LoggingTelemetry, Policy, RateLimiter
from halt.http.request import BasicRequestView
from halt.stores.redis import RedisStore
from halt.telemetry import DecisionEvent, StoreErrorEvent
from tests.support import FakeClock
from tests.telemetry.support import dead_redis

T = calendar.timegm((2026, 12, 1, 12, 41, 1)) * 1000  # 12:41:01 UTC


class Lines:
    """A logger with info and warning, keeping (level, line)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, line: str) -> None:
        self.lines.append(("info", line))

    def warning(self, line: str) -> None:
        self.lines.append(("warn", line))


API = Policy(name="api", limit=3, window=60)


def setup(policy: Policy = API, **extra: Any) -> tuple[RateLimiter, Lines, FakeClock]:
    clock = FakeClock(T)
    log = Lines()
    limiter = RateLimiter(
        policy=policy,
        store=InMemoryStore(sweep_interval=0),
        clock=clock,
        telemetry=LoggingTelemetry(logger=log, time_zone="utc", clock=clock, **extra),
        on_warning=lambda w: None,
    )
    return limiter, log, clock


def view(ip: str = "203.0.113.7", **headers: str) -> BasicRequestView:
    return BasicRequestView(ip=ip, path="/api", headers={k.replace("_", "-"): v for k, v in headers.items()})


def test_one_line_per_decision_in_the_documented_form() -> None:
    limiter, log, clock = setup()
    limiter.check(view(x_request_id="8f1"))
    limiter.check(view(x_request_id="8f2"))
    limiter.check(view(x_request_id="8f3"))
    clock.advance(2000)
    limiter.check(view(x_request_id="2c7"))
    limiter.check(view("127.0.0.1", x_request_id="a40"))
    limiter.check("user:42")
    assert log.lines == [
        ("info", "12:41:01 req_id=8f1 key=ip:203.0.113.7 check=pass remaining=2"),
        ("info", "12:41:01 req_id=8f2 key=ip:203.0.113.7 check=pass remaining=1"),
        ("info", "12:41:01 req_id=8f3 key=ip:203.0.113.7 check=pass remaining=0"),
        # The near-limit signal (80% of the capacity by default): this request took it from 2 of 3 to 3.
        ("warn", "12:41:01 req_id=8f3 key=ip:203.0.113.7 near_limit policy=api remaining=0 limit=3"),
        ("warn", "12:41:03 req_id=2c7 key=ip:203.0.113.7 check=limit remaining=0 retry_after=18"),
        ("info", "12:41:03 req_id=a40 key=ip:127.0.0.1 check=exempt"),
        ("info", "12:41:03 req_id=- key=user:42 check=pass remaining=2"),
    ]


def test_a_request_without_an_id_gets_a_made_up_one_the_same_on_its_near_limit_line() -> None:
    limiter, log, _ = setup(Policy(name="login", limit=1, window=60, block_duration="5m"))
    for _ in range(3):
        limiter.check(view())
    first = re.fullmatch(r"12:41:01 req_id=([0-9a-f]{8}) key=ip:203\.0\.113\.7 check=pass remaining=0", log.lines[0][1])
    assert first is not None
    near = f"12:41:01 req_id={first.group(1)} key=ip:203.0.113.7 near_limit policy=login remaining=0 limit=1"
    assert log.lines[1][1] == near
    assert log.lines[2][1].endswith(" check=limit remaining=0 retry_after=300")
    assert log.lines[3][1].endswith(" check=cooldown remaining=0 retry_after=300")


def test_log_allowed_false_keeps_only_rejections_and_warnings() -> None:
    limiter, log, _ = setup(Policy(name="api", limit=1, window=60), log_allowed=False)
    limiter.check("k")
    limiter.check("k")
    assert [line for _, line in log.lines] == [
        "12:41:01 req_id=- key=k near_limit policy=api remaining=0 limit=1",
        "12:41:01 req_id=- key=k check=limit remaining=0 retry_after=60",
    ]


def test_marks_shadow_and_failure_policy_decisions_and_logs_near_limit_and_store_errors_at_warning() -> None:
    log = Lines()
    t = LoggingTelemetry(logger=log, time_zone="utc", clock=lambda: T)
    d = Decision(False, 10, 0, 0, 4, "new-plan", "limit")
    t.on_check(DecisionEvent("user:7", 1, d, shadow=True, request_id="r1"))
    t.on_near_limit(DecisionEvent("user:7", 1, Decision(True, 10, 2, 0, 0, "new-plan"), request_id="r2"))
    assert log.lines == [
        ("warn", "12:41:01 req_id=r1 key=user:7 check=limit remaining=0 retry_after=4 shadow=true"),
        ("warn", "12:41:01 req_id=r2 key=user:7 near_limit policy=new-plan remaining=2 limit=10"),
    ]
    log.lines.clear()
    limiter = RateLimiter(
        policy=Policy(name="api", limit=5, window=60),
        store=RedisStore(dead_redis()),
        clock=lambda: T,
        telemetry=t,
        on_store_error="closed",
    )
    limiter.check("ip:203.0.113.7")
    assert [level for level, _ in log.lines] == ["warn", "warn"]
    error = log.lines[0][1]
    assert error.startswith("12:41:01 store_error policy=api key=ip:203.0.113.7 operation=check action=closed error=")
    assert "Connection refused" in error or "Error 111" in error
    assert log.lines[1][1] == (
        "12:41:01 req_id=- key=ip:203.0.113.7 check=store_error remaining=0 retry_after=1 store_error=closed"
    )
    log.lines.clear()
    t.on_error(StoreErrorEvent(ConnectionError('connect ECONNREFUSED "x"'), "k", "api", "peek", "open"))
    assert log.lines[0][1].endswith('operation=peek action=open error="connect ECONNREFUSED \\"x\\""')


def test_quotes_values_that_could_break_a_line_and_never_prints_a_raw_api_key() -> None:
    raw = "sk_live_9f8e7d6c5b4a"
    log = Lines()
    limiter = RateLimiter(
        policy=Policy(limit=5, window=60, key_strategy="api_key"),
        telemetry=LoggingTelemetry(logger=log),
        on_warning=lambda w: None,
    )
    limiter.check(view(x_api_key=raw))
    limiter.check(view(authorization=f"Bearer {raw}"))
    limiter.check("tenant 1\nFAKE LINE check=pass")
    limiter.check('a"b=c\\d\x7f\u2028é\ud800')
    assert len(log.lines) == 4
    assert re.search(r" key=apikey:[0-9a-f]{32} check=pass remaining=4$", log.lines[0][1])
    assert ' key="tenant 1\\nFAKE LINE check=pass" check=pass' in log.lines[2][1]
    # As JSON.stringify writes it: quotes and backslashes escaped; DEL, U+2028, non-ASCII kept; lone surrogates escaped.
    assert ' key="a\\"b=c\\\\d\x7f\u2028é\\ud800" check=pass' in log.lines[3][1]
    for _, line in log.lines:
        assert raw not in line and "\n" not in line


def test_local_time_by_default_and_through_logging_by_default() -> None:
    log = Lines()
    e = DecisionEvent("k", 1, Decision(True, 1, 0, 0, 0, "p"))
    LoggingTelemetry(logger=log, clock=lambda: T).on_check(e)
    assert log.lines[0][1][:8] == time.strftime("%H:%M:%S", time.localtime(T / 1000))


def test_the_default_logger_is_halt_telemetry(caplog: pytest.LogCaptureFixture) -> None:
    limiter = RateLimiter(policy=Policy(name="api", limit=1, window=60), telemetry=LoggingTelemetry())
    with caplog.at_level(logging.INFO, logger="halt.telemetry"):
        limiter.check("k")
        limiter.check("k")
    assert [(r.name, r.levelname) for r in caplog.records] == [
        ("halt.telemetry", "INFO"),
        ("halt.telemetry", "WARNING"),  # near limit
        ("halt.telemetry", "WARNING"),  # rejected
    ]
    assert caplog.records[2].getMessage().endswith("key=k check=limit remaining=0 retry_after=60")


def test_rejects_a_logger_without_info_and_warning_an_unknown_time_zone_and_a_bad_clock() -> None:
    class InfoOnly:
        def info(self, m: str) -> None: ...

    for options in ({"logger": InfoOnly()}, {"logger": 5}, {"time_zone": "Europe/Berlin"}, {"clock": 5}):
        with pytest.raises(HaltConfigError) as e:
            LoggingTelemetry(**options)  # type: ignore[arg-type]
        assert e.value.code == "HALT_INVALID_TELEMETRY"
