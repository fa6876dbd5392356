"""PenaltyManager on a fake clock (continuous decay, progressive and capped penalties, forgiveness) and a RateLimiter
given ``penalties`` (violations recorded by itself, the limit scaled while penalised, reason 'penalty')."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from halt import HaltConfigError, InMemoryStore, PenaltyConfig, PenaltyManager, Policy, RateLimiter
from tests.support import FakeClock

T0 = 1_700_000_000_000
HOUR = 3_600_000


def penalties(**config: Any) -> tuple[FakeClock, PenaltyManager]:
    clock = FakeClock(T0)
    c = {"threshold": 10, "duration": 60, "decay_rate": 5, **config}
    return clock, PenaltyManager(PenaltyConfig(**c), store=InMemoryStore(sweep_interval=0), clock=clock)


def test_crossing_the_threshold_starts_a_penalty_of_duration_seconds() -> None:
    clock, pm = penalties()
    for _ in range(9):
        assert not pm.record_violation("ip:1").is_active()
    p = pm.record_violation("ip:1")
    assert (p.abuse_score, p.offences, p.penalty_until_ms, p.penalty_until) == (
        10,
        1,
        T0 + 60_000,
        (T0 + 60_000) // 1000,
    )
    assert p.is_active()
    clock.advance(59_999)
    assert p.is_active() and pm.get_penalty("ip:1").is_active()
    clock.advance(1)
    assert not p.is_active() and not pm.get_penalty("ip:1").is_active()


def test_the_score_decays_continuously() -> None:
    clock, pm = penalties(decay_rate=6)
    pm.record_violation("k", 5)
    clock.advance(HOUR / 2)
    assert pm.get_penalty("k").abuse_score == pytest.approx(2, abs=1e-12)
    clock.advance(HOUR / 6)
    assert pm.get_penalty("k").abuse_score == pytest.approx(1, abs=1e-12)
    clock.advance(HOUR)
    assert pm.get_penalty("k").abuse_score == 0


def test_severity_weighs_a_violation() -> None:
    _, pm = penalties()
    assert pm.record_violation("k", 4).abuse_score == 4
    assert pm.record_violation("k", 6).is_active()


def test_repeat_offences_double_the_penalty_up_to_max_duration() -> None:
    clock, pm = penalties(threshold=2, duration=60, max_duration=200, decay_rate=1)
    lengths = []
    pm.record_violation("k", 2)
    for _ in range(4):
        p = pm.get_penalty("k")
        lengths.append((p.penalty_until_ms - clock.now) / 1000)
        clock.now = p.penalty_until_ms  # type: ignore[assignment]
        pm.record_violation("k")
    assert lengths == [60, 120, 200, 200]
    assert pm.get_penalty("k").offences == 5


def test_violations_during_a_penalty_do_not_lengthen_it() -> None:
    clock, pm = penalties()
    pm.record_violation("k", 10)
    clock.advance(10_000)
    p = pm.record_violation("k", 10)
    assert (p.penalty_until_ms, p.offences) == (T0 + 60_000, 1)


def test_forgiveness_and_clear() -> None:
    clock, pm = penalties(threshold=3, decay_rate=60)
    pm.record_violation("k", 3)
    clock.advance(61_000)
    assert pm.record_violation("k", 3).offences == 2
    clock.advance(HOUR)
    p = pm.get_penalty("k")
    assert (p.abuse_score, p.offences, p.penalty_until_ms) == (0, 0, 0)
    p = pm.record_violation("k", 3)
    assert (p.offences, p.penalty_until_ms) == (1, clock.now + 60_000)
    pm.clear_penalty("k")
    p = pm.get_penalty("k")
    assert (p.abuse_score, p.offences) == (0, 0)


def test_defaults_and_a_mapping_config() -> None:
    pm = PenaltyManager({"threshold": 4, "duration": "5m"})
    assert pm.config == PenaltyConfig(4, 300, 0.5, 4, 4800, "penalty")
    assert pm.rule.ns == "penalty:pen"
    assert PenaltyManager(PenaltyConfig(threshold=1, duration=1, name="abuse")).rule.ns == "abuse:pen"


@pytest.mark.parametrize(
    "config",
    [
        {"threshold": 0, "duration": 60},
        {"threshold": 1, "duration": 0},
        {"threshold": 1, "duration": 60, "multiplier": 0},
        {"threshold": 1, "duration": 60, "multiplier": 2},
        {"threshold": 1, "duration": 60, "decay_rate": 0},
        {"threshold": 1, "duration": 60, "max_duration": 30},
        {"threshold": 1, "duration": 60, "name": ""},
        {"threshold": 1},
        {"threshold": 1, "duration": 60, "unknown": 1},
    ],
)
def test_bad_configuration_is_halt_invalid_penalty(config: dict[str, Any]) -> None:
    with pytest.raises(HaltConfigError) as e:
        PenaltyManager(config)
    assert e.value.code == "HALT_INVALID_PENALTY"


def test_bad_calls() -> None:
    pm = PenaltyManager(PenaltyConfig(threshold=1, duration="5m"))
    with pytest.raises(HaltConfigError, match="HALT_INVALID_COST"):
        pm.record_violation("k", -1)
    with pytest.raises(HaltConfigError, match="HALT_INVALID_IDENTIFIER"):
        pm.get_penalty(None)  # type: ignore[arg-type]
    with pytest.raises(HaltConfigError, match="HALT_INVALID_PENALTY"):
        RateLimiter(policy=Policy(limit=1, window=60), penalties=object())  # type: ignore[arg-type]


def test_concurrent_violations_are_all_counted() -> None:
    _, pm = penalties(threshold=10_000)
    start = threading.Barrier(8)

    def lane() -> None:
        start.wait()
        for _ in range(50):
            pm.record_violation("hot")

    threads = [threading.Thread(target=lane) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert pm.get_penalty("hot").abuse_score == 400


def setup(multiplier: float = 0.5) -> tuple[FakeClock, PenaltyManager, RateLimiter]:
    clock = FakeClock(T0)
    store = InMemoryStore(sweep_interval=0)
    pm = PenaltyManager(
        PenaltyConfig(threshold=3, duration=600, multiplier=multiplier, decay_rate=1), store=store, clock=clock
    )
    limiter = RateLimiter(
        store=store,
        clock=clock,
        penalties=pm,
        policy=Policy(name="api", limit=10, window=60, algorithm="fixed_window"),
    )
    return clock, pm, limiter


def test_the_limiter_records_a_violation_for_every_blocked_request() -> None:
    _, pm, limiter = setup()
    for _ in range(10):
        assert limiter.check("ip:1").allowed
    assert pm.get_penalty("ip:1").abuse_score == 0
    for _ in range(2):
        d = limiter.check("ip:1")
        assert not d.allowed and d.reason == "limit"
    assert pm.get_penalty("ip:1").abuse_score == 2
    limiter.check("ip:1")
    assert pm.get_penalty("ip:1").is_active()


def test_a_penalised_identity_gets_the_scaled_limit_and_reason_penalty() -> None:
    clock, pm, limiter = setup(0.5)
    pm.record_violation("ip:2", 3)
    d = [limiter.check("ip:2") for _ in range(6)]
    assert [x.allowed for x in d] == [True] * 5 + [False]
    assert d[0].limit == 5 and d[5].reason == "penalty"
    assert limiter.check("ip:3").limit == 10
    clock.advance(600_000)
    d2 = limiter.check("ip:2")
    assert d2.allowed and d2.limit == 10


def test_the_scaled_rule_shares_the_state_and_is_compiled_once() -> None:
    _, pm, limiter = setup(0.5)
    for _ in range(8):
        limiter.check("ip:4")
    pm.record_violation("ip:4", 3)
    d = limiter.check("ip:4")
    assert (d.allowed, d.reason, d.limit) == (False, "penalty", 5)
    assert pm.penalised(limiter.rule) is pm.penalised(limiter.rule)
    assert pm.penalised(limiter.rule).ns == limiter.rule.ns
    assert pm.is_penalised_rule(pm.penalised(limiter.rule)) and not pm.is_penalised_rule(limiter.rule)


def test_bucket_capacity_never_drops_below_the_cost() -> None:
    _, pm = penalties(multiplier=0.1)
    limiter = RateLimiter(policy=Policy(name="b", limit=10, window=60, cost=3), penalties=pm)
    r = pm.penalised(limiter.rule)
    assert (r.limit, r.burst, r.capacity) == (1, 3, 3)


def test_the_request_path_and_acheck_apply_penalties_too() -> None:
    _, pm, limiter = setup(0.5)
    pm.record_violation("ip:203.0.113.9", 3)
    view = type("View", (), {"ip": "203.0.113.9", "method": "GET", "path": "/", "header": lambda s, n: None})()
    d = limiter.check(view)
    assert d.allowed and d.limit == 5
    assert asyncio.run(limiter.acheck("ip:203.0.113.9")).limit == 5


def test_peek_says_what_a_check_would_under_the_penalty_and_records_no_violation() -> None:
    clock, pm, limiter = setup(0.5)
    for _ in range(6):
        limiter.check("ip:5")
    d = limiter.peek("ip:5")
    assert (d.allowed, d.limit, d.remaining) == (True, 10, 4)
    pm.record_violation("ip:5", 3)
    d = limiter.peek("ip:5")
    assert (d.allowed, d.reason, d.limit, d.remaining) == (False, "penalty", 5, 0)
    view = type("View", (), {"ip": "203.0.113.5", "method": "GET", "path": "/", "header": lambda s, n: None})()
    assert limiter.peek(view).limit == 10
    assert pm.get_penalty("ip:5").abuse_score == 3
    assert asyncio.run(limiter.apeek("ip:5")).reason == "penalty"
    clock.advance(600_000)
    d = limiter.peek("ip:5")
    assert (d.allowed, d.limit) == (True, 10)
