"""QuotaManager on a fake clock: calendar boundaries (months, years, leap years, DST in New York and Berlin), check
without consuming, refunds, the async forms, configuration errors, telemetry, and threads on one key."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timezone
from typing import Any

import pytest

from halt import HaltConfigError, InMemoryStore, Quota, QuotaManager, QuotaPeriod, Telemetry
from halt.core.telemetry import DecisionEvent
from tests.support import FakeClock


def at(*a: int) -> int:
    """Epoch ms of a UTC time (month 1-12, as datetime has it)."""
    return int(datetime(*a, tzinfo=timezone.utc).timestamp() * 1000)  # type: ignore[misc]


def sec(ms: int) -> int:
    return ms // 1000


def manager(start: int, time_zone: str = "UTC", **kw: Any) -> tuple[FakeClock, QuotaManager]:
    clock = FakeClock(start)
    return clock, QuotaManager(InMemoryStore(sweep_interval=0), clock=clock, time_zone=time_zone, **kw)


MONTHLY = Quota(name="calls", limit=3, period=QuotaPeriod.MONTHLY)


def test_takes_units_up_to_the_limit_and_never_beyond() -> None:
    _, quotas = manager(at(2026, 1, 15))
    r = [quotas.consume_quota("user:1", MONTHLY) for _ in range(4)]
    assert [x.allowed for x in r] == [True, True, True, False]
    q = r[3].quota
    assert (q.name, q.limit, q.used, q.remaining) == ("calls", 3, 3, 0)
    assert (q.reset_at, q.period_start) == (sec(at(2026, 2, 1)), sec(at(2026, 1, 1)))
    assert q.retry_after == sec(at(2026, 2, 1) - at(2026, 1, 15))


def test_check_quota_reads_without_consuming_for_a_given_cost() -> None:
    _, quotas = manager(at(2026, 1, 15))
    assert quotas.check_quota("u", MONTHLY).allowed and quotas.check_quota("u", MONTHLY).quota.remaining == 3
    quotas.consume_quota("u", MONTHLY, 2)
    assert quotas.check_quota("u", MONTHLY).allowed and quotas.check_quota("u", MONTHLY).quota.used == 2
    r = quotas.check_quota("u", MONTHLY, 2)
    assert not r.allowed and r.quota.remaining == 1 and r.quota.retry_after > 0
    assert quotas.check_quota("u", MONTHLY).quota.used == 2


def test_a_rejected_consume_takes_nothing_and_a_cost_above_the_limit_is_rejected() -> None:
    _, quotas = manager(at(2026, 1, 15))
    quotas.consume_quota("u", MONTHLY, 2)
    assert not quotas.consume_quota("u", MONTHLY, 2).allowed
    assert quotas.consume_quota("u", MONTHLY, 1).allowed
    r = quotas.consume_quota("v", MONTHLY, 4)
    assert not r.allowed and (r.quota.used, r.quota.remaining) == (0, 3)


def test_refund_gives_units_back_never_below_zero() -> None:
    _, quotas = manager(at(2026, 1, 15))
    quotas.consume_quota("u", MONTHLY, 3)
    r = quotas.refund_quota("u", MONTHLY)
    assert r.allowed and (r.quota.used, r.quota.remaining) == (2, 1)
    assert quotas.refund_quota("u", MONTHLY, 10).quota.used == 0
    assert quotas.consume_quota("u", MONTHLY, 3).allowed


def test_reset_and_separation_of_identities_and_names_and_mappings() -> None:
    _, quotas = manager(at(2026, 1, 15))
    quotas.consume_quota("a", MONTHLY, 3)
    assert quotas.check_quota("b", MONTHLY).quota.used == 0
    assert quotas.check_quota("a", Quota(name="other", limit=3, period="monthly")).quota.used == 0
    assert quotas.check_quota("a", {"name": "calls", "limit": 3, "period": "monthly"}).quota.used == 3
    quotas.reset_quota("a", MONTHLY)
    assert quotas.check_quota("a", MONTHLY).quota.used == 0


def test_async_forms_answer_the_same() -> None:
    _, quotas = manager(at(2026, 1, 15))

    async def run() -> None:
        assert (await quotas.aconsume_quota("u", MONTHLY, 2)).quota.used == 2
        assert (await quotas.acheck_quota("u", MONTHLY)).quota.remaining == 1
        assert (await quotas.arefund_quota("u", MONTHLY)).quota.used == 1
        await quotas.areset_quota("u", MONTHLY)
        assert quotas.check_quota("u", MONTHLY).quota.used == 0

    asyncio.run(run())


def test_a_monthly_quota_resets_on_the_first_at_midnight_not_a_second_earlier() -> None:
    q = Quota(name="m", limit=1, period="monthly")
    clock, quotas = manager(at(2026, 1, 31, 23, 59, 59))
    assert quotas.consume_quota("u", q).allowed
    clock.now = at(2026, 2, 1) - 1
    r = quotas.consume_quota("u", q)
    assert not r.allowed and r.quota.retry_after == 1
    clock.now = at(2026, 2, 1)
    r = quotas.consume_quota("u", q)
    assert r.allowed and r.quota.reset_at == sec(at(2026, 3, 1))


def test_leap_years() -> None:
    q = Quota(name="m", limit=1, period="monthly")
    clock, quotas = manager(at(2028, 2, 29, 12))
    s = quotas.consume_quota("u", q).quota
    assert (s.period_start, s.reset_at) == (sec(at(2028, 2, 1)), sec(at(2028, 3, 1)))
    clock.now = at(2027, 2, 28, 12)
    assert quotas.period(q) == (at(2027, 2, 1), at(2027, 3, 1))
    y = Quota(name="y", limit=2, period="yearly")
    clock.now = at(2028, 12, 31, 23, 59, 59)
    quotas.consume_quota("u", y, 2)
    assert not quotas.consume_quota("u", y).allowed
    p = quotas.period(y)
    assert (p.end_ms - p.start_ms) / 86_400_000 == 366
    clock.now = at(2029, 1, 1)
    s = quotas.consume_quota("u", y).quota
    assert (s.used, s.period_start) == (1, sec(at(2029, 1, 1)))


def test_new_york_months_reset_at_local_midnight_through_the_dst_change() -> None:
    q = Quota(name="ny", limit=1, period="monthly", time_zone="America/New_York")
    clock, quotas = manager(at(2026, 3, 15))
    # March 1st 00:00 EST = 05:00 UTC; April 1st 00:00 EDT = 04:00 UTC.
    assert quotas.period(q) == (at(2026, 3, 1, 5), at(2026, 4, 1, 4))
    assert quotas.consume_quota("u", q).allowed
    clock.now = at(2026, 4, 1, 3, 59, 59)
    assert not quotas.consume_quota("u", q).allowed
    clock.now = at(2026, 4, 1, 4)
    assert quotas.consume_quota("u", q).allowed


def test_berlin_days_last_23_and_25_hours_on_the_changes() -> None:
    q = Quota(name="d", limit=1, period="daily")
    clock, quotas = manager(at(2026, 3, 29, 12), "Europe/Berlin")

    def hours() -> float:
        p = quotas.period(q)
        return (p.end_ms - p.start_ms) / 3_600_000

    assert hours() == 23 and quotas.period(q).start_ms == at(2026, 3, 28, 23)
    clock.now = at(2026, 10, 25, 12)
    assert hours() == 25
    clock.now = at(2026, 10, 26, 12)
    assert hours() == 24


def test_the_manager_time_zone_is_the_default_and_a_quota_may_set_its_own() -> None:
    _, quotas = manager(at(2026, 1, 1, 3), "America/New_York")  # Dec 31st, 22:00 in New York
    assert quotas.period(Quota(name="a", limit=1, period="yearly")).start_ms == at(2025, 1, 1, 5)
    assert quotas.period(Quota(name="b", limit=1, period="yearly", time_zone="UTC")).start_ms == at(2026, 1, 1)


def test_hourly_and_weekly_periods_and_the_namespace() -> None:
    _, quotas = manager(at(2026, 12, 6, 23, 30))  # a Sunday
    assert quotas.period(Quota(name="h", limit=1, period="hourly")) == (at(2026, 12, 6, 23), at(2026, 12, 7))
    assert quotas.period(Quota(name="w", limit=1, period="weekly")) == (at(2026, 11, 30), at(2026, 12, 7))
    ns = quotas.namespace(Quota(name="calls", limit=1, period="monthly", time_zone="Europe/Berlin"))
    assert ns == "quota:calls:monthly:Europe/Berlin:q"


def code(f: Any) -> str:
    with pytest.raises(HaltConfigError) as e:
        f()
    return e.value.code


def test_configuration_errors_have_the_typescript_codes() -> None:
    _, quotas = manager(at(2026, 1, 15))
    q = Quota(name="x", limit=1, period="monthly")
    assert code(lambda: quotas.define(Quota(name="", limit=1, period="monthly"))) == "HALT_INVALID_QUOTA"
    assert code(lambda: quotas.define(Quota(name="x", limit=0, period="monthly"))) == "HALT_INVALID_QUOTA"
    assert code(lambda: quotas.define(Quota(name="x", limit=1, period="fortnightly"))) == "HALT_INVALID_QUOTA"
    assert code(lambda: quotas.define({"name": "x", "limit": 1})) == "HALT_INVALID_QUOTA"
    assert (
        code(lambda: quotas.define({"name": "x", "limit": 1, "period": "daily", "tz": "UTC"})) == "HALT_INVALID_QUOTA"
    )
    bad_zone = Quota(name="x", limit=1, period="monthly", time_zone="Mars/Olympus")
    assert code(lambda: quotas.define(bad_zone)) == "HALT_INVALID_TIME_ZONE"
    assert code(lambda: QuotaManager(InMemoryStore(), time_zone="Nowhere")) == "HALT_INVALID_TIME_ZONE"
    assert code(lambda: QuotaManager(InMemoryStore(), time_zone="")) == "HALT_INVALID_TIME_ZONE"
    assert code(lambda: quotas.define(Quota(name="x", limit=[1], period="daily"))) == "HALT_INVALID_QUOTA"  # type: ignore[arg-type]
    assert (
        code(lambda: quotas.define(Quota(name="x", limit=1, period="daily", time_zone=["UTC"])))
        == "HALT_INVALID_TIME_ZONE"
    )  # type: ignore[arg-type]
    assert code(lambda: quotas.consume_quota("u", q, -1)) == "HALT_INVALID_COST"
    assert code(lambda: quotas.check_quota("u", q, float("nan"))) == "HALT_INVALID_COST"
    assert code(lambda: quotas.consume_quota(42, q)) == "HALT_INVALID_IDENTIFIER"  # type: ignore[arg-type]
    assert code(lambda: QuotaManager(object())) == "HALT_INVALID_STORE"
    assert code(lambda: QuotaManager(clock=5)) == "HALT_INVALID_CLOCK"  # type: ignore[arg-type]


class Seen(Telemetry):
    def __init__(self) -> None:
        self.events: list[DecisionEvent] = []

    def on_check(self, event: DecisionEvent) -> None:
        self.events.append(event)


class Raises(Telemetry):
    def on_blocked(self, event: DecisionEvent) -> None:
        raise RuntimeError("exporter down")


def test_telemetry_sees_every_consume_with_reason_quota_and_a_raising_hook_changes_nothing() -> None:
    seen = Seen()
    _, quotas = manager(at(2026, 1, 15), telemetry=seen)
    q = Quota(name="calls", limit=2, period="monthly")
    assert [quotas.consume_quota("apikey:abc", q).allowed for _ in range(3)] == [True, True, False]
    rows = [
        (e.key, e.decision.policy, e.decision.allowed, e.decision.reason, e.decision.remaining) for e in seen.events
    ]
    assert rows == [
        ("apikey:abc", "calls", True, None, 1),
        ("apikey:abc", "calls", True, None, 0),
        ("apikey:abc", "calls", False, "quota", 0),
    ]
    quotas.check_quota("apikey:abc", q)
    quotas.refund_quota("apikey:abc", q)
    assert len(seen.events) == 3  # reads and corrections are not decisions
    _, loud = manager(at(2026, 1, 15), telemetry=Raises())
    assert [loud.consume_quota("k", q).allowed for _ in range(3)] == [True, True, False]


def test_threads_on_one_key_take_exactly_the_limit() -> None:
    _, quotas = manager(at(2026, 1, 15))
    q = Quota(name="hot", limit=150, period="daily")
    taken = [0] * 8
    start = threading.Barrier(8)

    def lane(i: int) -> None:
        start.wait()
        for _ in range(50):
            taken[i] += quotas.consume_quota("k", q).allowed

    threads = [threading.Thread(target=lane, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(taken) == 150 and quotas.check_quota("k", q).quota.used == 150
