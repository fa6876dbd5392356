# Hand-written conformance cases; expectations come from reference.py. Writes spec/vectors/*.json (--check: verify).
"""Usage: python3 spec/tools/generate_vectors.py [--check]

Cases (name, description, policy, steps) are written by hand below; `expect`
is filled in by the reference model.  Before writing, the generator asserts
hand-derived values for a few steps per algorithm, invariants on every step,
and a few cross-algorithm properties.  --check exits 1 if the files on disk
differ from what would be written.
"""
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference import ALGORITHMS, EPS, Policy, evaluate  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "vectors"
T0 = 1_700_000_040_000  # ~1.7e12 ms, a multiple of 1, 2.5, 3, 10 and 60 s
IDLE = 86_400_000  # one day


def S(t, cost=1):
    return {"t": t, "cost": cost}


def PEEK(t):
    return {"t": t, "peek": True}


def rep(n, t, cost=1):
    return [S(t, cost) for _ in range(n)]


def C(name, description, policy, *steps, fresh_from=None):
    flat = []
    for s in steps:
        flat.extend(s if isinstance(s, list) else [s])
    return {"name": name, "description": description, "policy": policy, "steps": flat, "_fresh_from": fresh_from}


# ---------------------------------------------------------------- bucket cases (token_bucket, gcra, leaky_bucket)

def bucket_cases(notes=None):
    """Shared by the three bucket algorithms; `notes` appends algorithm-specific text to a description."""
    cases = [
        C("single requests drain the bucket",
          "5 per 10 s: five unit requests at one instant use the whole capacity, the sixth is rejected with "
          "retry 2000 ms (one unit per 2000 ms). 1 ms before the unit is back: still rejected (retry 1); "
          "exactly then: allowed; 1 ms later: rejected again.",
          dict(limit=5, window=10), rep(6, T0), S(T0 + 1999), S(T0 + 2000), S(T0 + 2001)),
        C("cost above one",
          "10 per 60 s, cost 3: three pass, the fourth needs 3 with 1 left; cost 1 still fits. "
          "12000 ms later only 2 units are back, at 18000 ms three are.",
          dict(limit=10, window=60), rep(4, T0, 3), S(T0, 1), S(T0 + 12000, 3), S(T0 + 18000, 3)),
        C("cost exactly equal to capacity",
          "A cost equal to the capacity passes on a full key and then needs a full refill (60000 ms); "
          "1 ms early it is rejected (retry_after is the ceil of a float quotient, see the note per algorithm).",
          dict(limit=10, window=60), S(T0, 10), S(T0, 10), S(T0 + 59999, 10), S(T0 + 60000, 10), S(T0 + 60001, 10)),
        C("cost above capacity is rejected without consuming",
          "cost 11 and 10.5 > capacity 10: reason cost_exceeds_capacity, retry_after = window ms, nothing consumed "
          "and no cooldown even with block_duration; also on an empty key. A later plain 'limit' rejection does "
          "start the cooldown.",
          dict(limit=10, window=60, block_duration=30),
          S(T0, 11), S(T0, 10.5), S(T0, 10), S(T0 + 1000, 11), S(T0 + 6000, 1), S(T0 + 6000, 1), S(T0 + 7000, 11)),
        C("burst larger than limit",
          "burst 20 with 10 per 60 s: 20 pass at once, then one unit per 6000 ms.",
          dict(limit=10, window=60, burst=20), rep(21, T0), S(T0 + 5999), S(T0 + 6000), S(T0 + 6000)),
        C("burst smaller than limit",
          "burst 2 with 10 per 60 s: only 2 pass at once, then one per 6000 ms; idle time never stores more than 2.",
          dict(limit=10, window=60, burst=2), rep(3, T0), S(T0 + 6000), S(T0 + 6000), S(T0 + 600000), rep(2, T0 + 600000)),
        C("idle refill stops at capacity",
          "4 per 4 s: after 2000 ms of idle two units are back; after a long idle the key holds exactly its "
          "capacity, not more.",
          dict(limit=4, window=4), rep(4, T0), rep(3, T0 + 2000), S(T0 + 100000), PEEK(T0 + 100000), rep(4, T0 + 100000)),
        C("partial refill",
          "3 per 10 s (0.3 units per second): 1000 ms after draining 0.3 units are back (retry 2334 = ceil(0.7/r)); "
          "at 3333 ms 0.9999 (retry 1), at 3334 ms one unit passes; the fraction left over plus refill lets a "
          "cost 0.5 pass at 5000 ms.",
          dict(limit=3, window=10), rep(3, T0), S(T0 + 1000), S(T0 + 3333), S(T0 + 3334), S(T0 + 5000, 0.5),
          S(T0 + 5000, 0.5)),
        C("clock steps backwards",
          "After draining at t=5000, requests stamped earlier refill nothing and are rejected; the stored time is "
          "not moved back, so at 7000 exactly one unit (2000 ms since 5000) is back.",
          dict(limit=5, window=10), rep(5, T0 + 5000), S(T0 + 1000), S(T0 + 4999), S(T0 + 7000), S(T0 + 6000),
          PEEK(T0 + 6000)),
        C("fractional rate 7 per 3 s",
          "7 per 3 s: one unit every 428.57 ms. Unaligned start (t0+17); 428 ms later still rejected, 429 ms later "
          "allowed.",
          dict(limit=7, window=3), rep(8, T0 + 17), S(T0 + 445), S(T0 + 446), S(T0 + 3017), rep(2, T0 + 5017)),
        C("fractional window 1 per 2.5 s",
          "1 per 2.5 s: the unit is back after 2500 ms; half a unit after another 1250 ms.",
          dict(limit=1, window=2.5), S(T0), S(T0 + 2499), S(T0 + 2500), S(T0 + 3750, 0.5), S(T0 + 3750, 0.5),
          S(T0 + 5000, 1)),
        C("limit below one",
          "limit 0.5 per 1 s: cost 1 exceeds the capacity; cost 0.5 passes on a full key; remaining is 0 even "
          "on a full key (floor of 0.5).",
          dict(limit=0.5, window=1), S(T0, 1), S(T0, 0.5), S(T0 + 500, 0.25), S(T0 + 600, 0.25), S(T0 + 1000, 0.25),
          PEEK(T0 + 3000)),
        C("fractional costs",
          "ten costs of 0.1 use up capacity 1 (the float sums are inexact, the state shows the residue); the 11th "
          "is rejected; 100 ms later 0.1 is back.",
          dict(limit=1, window=1), rep(11, T0, 0.1), S(T0 + 100, 0.1), S(T0 + 150, 0.1)),
        C("EPS slack",
          "0.4 + 0.2 + 0.3 + 0.1 is exactly the capacity 1, but not in doubles: the last cost passes only "
          "thanks to EPS; a further 0.1 is rejected.",
          dict(limit=1, window=1), S(T0, 0.4), S(T0, 0.2), S(T0, 0.3), S(T0, 0.1), S(T0, 0.1), S(T0 + 100, 0.1)),
        C("times starting at 0",
          "small times: t starts at 0 (init state [0, ..., 0]).",
          dict(limit=2, window=1), rep(3, 0), S(499), S(500), S(1500), S(1500)),
        C("block_duration cooldown",
          "block 30 s: the 'limit' rejection at t0+1000 sets blocked_until = t0+31000 (retry 30000 > 4000 refill). "
          "During the cooldown every request, also a peek and a cost above capacity, gets reason cooldown and the "
          "state is untouched; at exactly t0+31000 the key works normally (full after the idle).",
          dict(limit=2, window=10, block_duration=30), rep(2, T0), S(T0 + 1000), S(T0 + 5000), S(T0 + 5000, 50),
          PEEK(T0 + 6000), S(T0 + 30999), rep(3, T0 + 31000)),
        C("block shorter than retry_after",
          "block 1 s while a unit takes 60 s: retry_after stays the longer refill time; after the 1 s cooldown "
          "the next request is a fresh 'limit' rejection and restarts the block.",
          dict(limit=1, window=60, block_duration=1), S(T0), S(T0 + 10), S(T0 + 500), S(T0 + 1010), S(T0 + 2010),
          S(T0 + 60000)),
        C("peek does not consume",
          "peeks (cost 0) report the current outcome and leave the state as it was.",
          dict(limit=3, window=3), S(T0), PEEK(T0), PEEK(T0 + 500), S(T0 + 500, 2), PEEK(T0 + 500), S(T0 + 500),
          PEEK(T0 + 1000)),
        C("expired state after long idle equals a fresh key",
          "after a day of idle (far past reset_at_ms and blocked_until) the key behaves exactly like a missing "
          "state: the last six steps have the outcomes of a fresh key.",
          dict(limit=5, window=10, block_duration=5), rep(6, T0), rep(6, T0 + IDLE), fresh_from=6),
        C("cost 0 request",
          "a non-peek cost 0 request is always allowed here, consumes nothing, but brings the stored state up "
          "to now (and is written).",
          dict(limit=2, window=10), S(T0), S(T0 + 1000, 0), S(T0 + 1000, 1), S(T0 + 1000, 0), S(T0 + 1000)),
    ]
    for c in cases:
        c["description"] += (notes or {}).get(c["name"], "")
    return cases


TB_NOTES = {
    "cost exactly equal to capacity": " Token bucket: (10 - 9.99983...) / r = 1.00000000002, so retry 2 at t0+59999.",
}
LEAKY_NOTES = {
    "cost exactly equal to capacity": " Leaky bucket: retry 2 at t0+59999 and 60000 (not 59999) at t0+60001, "
                                      "both from float quotients just above an integer.",
}
GCRA_NOTES = {
    "cost exactly equal to capacity": " GCRA: tat arithmetic is exact here, retry 1.",
    "EPS slack": " GCRA: tat grows by 400 + 200 + 300 + 100 ms, exact, so EPS is not needed here; see "
                 "'EPS slack near t = 0'.",
    "fractional rate 7 per 3 s":
        " GCRA at epoch times: T = 3000/7 is not an integer, tat accumulates rounding at ~1.7e12 (ulp 2.4e-4 ms) "
        "far above the EPS * T = 4.3e-7 ms slack, so the 7th unit of the burst is rejected (retry 1) although a "
        "token bucket admits it, and remaining is one lower than the token bucket's (5 after the first). This "
        "follows the spec as written; see 'fractional rate 7 per 3 s near t = 0' for the same burst without "
        "the rounding.",
    "clock steps backwards":
        " GCRA: retry_after is measured to tat - tau, so it is longer than the token bucket's; the peek at t0+6000 "
        "is a 'limit' rejection because tat - now > tau.",
}


GCRA_EXTRA = [
    C("EPS slack near t = 0",
      "GCRA specific: 3 per 10 s at small times (T = 3333.33 ms), costs 0.3 + 1 + 0.7 + 1 = 3: tat ends at "
      "10000.000000000002, just above tau = 10000, so the last cost passes only thanks to EPS * T.",
      {"limit": 3, "window": 10}, S(0, 0.3), S(0, 1), S(0, 0.7), S(0, 1), S(0, 0.1), S(500, 0.1)),
    C("fractional rate 7 per 3 s near t = 0",
      "GCRA specific: the 7 per 3 s burst at small times, where doubles are precise enough for EPS * T: all 7 "
      "pass, the 8th is rejected.",
      {"limit": 7, "window": 3}, rep(8, 17), S(445), S(446), S(3017)),
    C("clock stepped back after a full burst: cost 0 passes, cost 1 waits",
      "GCRA specific: tat = t0+15000 after a burst at t0+5000. At t0+1000 (clock stepped back), tat - now "
      "exceeds tau; GCRA then reads now as tat - tau (never more than a full bucket ahead), so cost 0 and a "
      "peek pass like in a token bucket, and nothing extra is admitted.",
      {"limit": 5, "window": 10}, rep(5, T0 + 5000), S(T0 + 1000, 0), PEEK(T0 + 1000), S(T0 + 5000, 0),
      S(T0 + 7000)),
    C("cost 0 moves tat up to now",
      "GCRA specific: tat = max(tat, now) + 0, so a cost 0 step writes tat = now when the key is idle.",
      {"limit": 2, "window": 10}, S(T0), S(T0 + 20000, 0), S(T0 + 20000), S(T0 + 20000), S(T0 + 20000)),
]

LEAKY_EXTRA = [
    C("shaping: a burst is spread at the drain rate",
      "shaping, 5 per 10 s: requests at one instant get delays 0, 2000, 4000, 6000, 8000 ms; the sixth is "
      "rejected (delay 0).",
      {"limit": 5, "window": 10, "shaping": True}, rep(6, T0), S(T0 + 2000)),
    C("shaping: drained level shortens the delay",
      "shaping: the delay is ceil(level / r) of the level before this request is added.",
      {"limit": 5, "window": 10, "shaping": True}, S(T0), S(T0 + 500), S(T0 + 500), S(T0 + 10000), S(T0 + 10001)),
    C("shaping with cost above one",
      "shaping, 10 per 60 s, cost 4: delays 0 and 24000; the third does not fit (retry 12000); a cost 2 fits "
      "and waits 48000 ms.",
      {"limit": 10, "window": 60, "shaping": True}, rep(3, T0, 4), S(T0, 2), S(T0 + 12000, 4)),
    C("shaping with fractional rate 7 per 3 s",
      "shaping, 7 per 3 s: delays are ceil(n * 428.57...) ms.",
      {"limit": 7, "window": 3, "shaping": True}, rep(8, T0 + 17), S(T0 + 446), S(T0 + 1000, 0.5)),
    C("shaping: peek reports the delay a request would get",
      "shaping: a peek (cost 0) is allowed and reports delay_ms = ceil(level / r) without adding to the level.",
      {"limit": 4, "window": 4, "shaping": True}, rep(2, T0), PEEK(T0), PEEK(T0 + 1500), S(T0 + 1500)),
    C("shaping with block_duration",
      "shaping, block 30 s: a full queue rejects with 'limit' and starts the cooldown; delays resume after it.",
      {"limit": 2, "window": 10, "shaping": True, "block_duration": 30}, rep(3, T0), S(T0 + 29999),
      S(T0 + 30000), S(T0 + 30000)),
    C("shaping: clock steps backwards",
      "shaping: a request stamped earlier drains nothing; its delay is ceil(level / r) counted from its own "
      "(earlier) now, so it is told to leave before the queue in front of it has drained.",
      {"limit": 5, "window": 10, "shaping": True}, rep(2, T0 + 5000), S(T0 + 1000), S(T0 + 6000)),
]

# ---------------------------------------------------------------- window cases

FIXED = [
    C("single requests drain the window",
      "3 per 60 s: the fourth request in the window is rejected until the window ends (retry = window end - now).",
      {"limit": 3, "window": 60}, rep(4, T0 + 1000), S(T0 + 59999), S(T0 + 60000)),
    C("cost above one",
      "10 per 60 s, cost 4: two pass, the third would make 12; cost 2 still fits; a new window starts empty.",
      {"limit": 10, "window": 60}, rep(3, T0, 4), S(T0, 2), S(T0 + 60000, 4)),
    C("cost exactly equal to limit",
      "a cost equal to the limit passes in an empty window, then nothing passes until the next window.",
      {"limit": 10, "window": 60}, S(T0 + 5, 10), S(T0 + 5, 10), S(T0 + 59999, 1), S(T0 + 60000, 10)),
    C("cost above limit is rejected without consuming",
      "cost 11 and 10.000001 > limit 10: cost_exceeds_capacity, retry_after = 60000, count unchanged, no cooldown "
      "even with block_duration; a later 'limit' rejection starts the cooldown.",
      {"limit": 10, "window": 60, "block_duration": 30},
      S(T0, 11), S(T0, 10.000001), S(T0, 10), S(T0 + 1000, 11), S(T0 + 1000, 1), S(T0 + 2000, 11)),
    C("window boundary: just before, exactly at, just after",
      "2 per 10 s: at window end - 1 ms retry is 1; exactly at the boundary a new window starts; 1 ms later the "
      "new window fills and retry is 9999.",
      {"limit": 2, "window": 10}, rep(3, T0 + 9999), S(T0 + 10000), S(T0 + 10001), S(T0 + 10001)),
    C("up to twice the limit around a boundary",
      "documented: 5 at the last ms of a window and 5 at the first ms of the next pass (10 in 2 ms).",
      {"limit": 5, "window": 60}, rep(6, T0 + 59999), rep(6, T0 + 60000)),
    C("idle windows reset the count",
      "after idle windows the count starts from 0 in the window containing now.",
      {"limit": 3, "window": 10}, rep(3, T0), S(T0 + 35000), S(T0 + 39999), rep(2, T0 + 39999)),
    C("clock steps back into an earlier window",
      "the stored (later) window is kept: requests stamped in the earlier window count against it, and a "
      "rejection's retry runs to the stored window's end.",
      {"limit": 2, "window": 10}, S(T0 + 10000), S(T0 + 9999), S(T0 + 9999), S(T0 + 5000), S(T0 + 20000)),
    C("clock steps back within a window",
      "an earlier timestamp in the same window just counts in that window.",
      {"limit": 3, "window": 10}, S(T0 + 5000), S(T0 + 2000), S(T0 + 9000), S(T0 + 1000), S(T0 + 10000)),
    C("fractional rate 7 per 3 s",
      "7 per 3 s, aligned windows of 3000 ms.",
      {"limit": 7, "window": 3}, rep(8, T0 + 100), S(T0 + 2999), S(T0 + 3000)),
    C("fractional window 1 per 2.5 s",
      "windows of 2500 ms: boundaries at multiples of 2500.",
      {"limit": 1, "window": 2.5}, S(T0 + 1), S(T0 + 2499), S(T0 + 2500), S(T0 + 4999), S(T0 + 5000)),
    C("limit below one",
      "limit 0.5: cost 1 exceeds the limit; cost 0.5 fits once per window; remaining is always 0.",
      {"limit": 0.5, "window": 1}, S(T0), S(T0, 0.5), S(T0 + 999, 0.5), rep(3, T0 + 1000, 0.25)),
    C("fractional costs",
      "ten costs of 0.1 use up limit 1 (the count is 0.9999999999999999); the 11th is rejected.",
      {"limit": 1, "window": 1}, rep(11, T0, 0.1), S(T0 + 1000, 0.1)),
    C("EPS slack",
      "0.4 + 0.2 + 0.3 + 0.1 is exactly the limit 1, but the double count is 1.0000000000000002 after the last "
      "cost: it passes only thanks to EPS; a further 0.1 is rejected.",
      {"limit": 1, "window": 1}, S(T0, 0.4), S(T0, 0.2), S(T0, 0.3), S(T0, 0.1), S(T0, 0.1)),
    C("fractional limit floors remaining",
      "limit 2.5: remaining is floor(2.5 - count); a cost 0.5 uses the last half unit.",
      {"limit": 2.5, "window": 10}, rep(2, T0), S(T0, 1), S(T0, 0.5), S(T0, 0.5)),
    C("times starting at 0",
      "small times: the first window is [0, 1000).",
      {"limit": 2, "window": 1}, S(0), S(999), S(999), S(1000), S(2500)),
    C("block_duration cooldown",
      "block 30 s: the 'limit' rejection starts a cooldown longer than the window; requests during it are "
      "rejected with reason cooldown and leave the state alone; after it the key works normally.",
      {"limit": 2, "window": 10, "block_duration": 30}, rep(3, T0 + 1000), S(T0 + 15000), S(T0 + 15000, 50),
      PEEK(T0 + 20000), S(T0 + 30999), rep(3, T0 + 31000)),
    C("block shorter than retry_after",
      "block 1 s inside a 60 s window: retry_after stays the window end; after the cooldown the next request "
      "is a fresh 'limit' rejection.",
      {"limit": 1, "window": 60, "block_duration": 1}, S(T0), S(T0 + 10), S(T0 + 500), S(T0 + 1010), S(T0 + 60000)),
    C("peek does not consume",
      "peeks (cost 0) report the current outcome and leave the state as it was.",
      {"limit": 3, "window": 10}, S(T0), PEEK(T0), S(T0, 2), PEEK(T0 + 5000), S(T0 + 5000), PEEK(T0 + 10000)),
    C("expired state after long idle equals a fresh key",
      "after a day of idle the key behaves exactly like a missing state: the last four steps have the "
      "outcomes of a fresh key.",
      {"limit": 3, "window": 10, "block_duration": 5}, rep(4, T0), rep(4, T0 + IDLE + 1234), fresh_from=4),
    C("cost 0 request",
      "a non-peek cost 0 request is allowed even on a full window and rolls the stored window forward.",
      {"limit": 2, "window": 10}, S(T0), S(T0, 0), S(T0), S(T0, 0), S(T0 + 10000, 0), S(T0 + 10000)),
]

SLIDING = [
    C("single requests, default precision",
      "3 per 10 s, precision omitted (10, buckets of 1000 ms): a unit admitted at t0+500 counts until "
      "t0+11000 (window + one bucket); 1 ms before that retry is 1.",
      {"limit": 3, "window": 10}, rep(4, T0 + 500), S(T0 + 10999), S(T0 + 11000), S(T0 + 11000)),
    C("precision 1",
      "one bucket per window: units count for up to two windows (ring of 2 slots).",
      {"limit": 2, "window": 10, "precision": 1}, rep(2, T0 + 9000), S(T0 + 10000), S(T0 + 19999),
      S(T0 + 20000), S(T0 + 20000), S(T0 + 20000)),
    C("precision 4",
      "buckets of 2500 ms: one unit per bucket fills the limit of 4; the oldest bucket leaves at t0+12500.",
      {"limit": 4, "window": 10, "precision": 4}, S(T0), S(T0 + 2500), S(T0 + 5000), S(T0 + 7500), S(T0 + 9999),
      S(T0 + 12499), S(T0 + 12500), S(T0 + 12500)),
    C("precision 10",
      "explicit precision 10, units spread over several buckets; each rejection waits for just enough of the "
      "oldest buckets to leave.",
      {"limit": 5, "window": 10, "precision": 10}, rep(2, T0 + 100), rep(2, T0 + 3100), S(T0 + 6100),
      S(T0 + 9000), S(T0 + 10999), S(T0 + 11000), S(T0 + 11000), S(T0 + 11000), S(T0 + 14000, 2)),
    C("precision 60",
      "5 per 60 s with 1000 ms buckets.",
      {"limit": 5, "window": 60, "precision": 60}, S(T0 + 10), rep(4, T0 + 30500), S(T0 + 59999),
      S(T0 + 60999), S(T0 + 61000), S(T0 + 61000)),
    C("never more than limit in any window-length interval",
      "3 per 10 s, precision 4: a request every 1250 ms for 30 s; no interval of 10000 ms ever holds more "
      "than 3 admitted units (the generator checks every interval).",
      {"limit": 3, "window": 10, "precision": 4}, [S(T0 + 1250 * i) for i in range(25)]),
    C("rejection waits for enough buckets to expire",
      "3 per 10 s, precision 4: cost 2 against three units in three buckets must wait for the two oldest "
      "buckets; cost 1 only for the oldest.",
      {"limit": 3, "window": 10, "precision": 4}, S(T0), S(T0 + 2500), S(T0 + 5000), S(T0 + 5000, 2),
      S(T0 + 5000, 1), S(T0 + 14999, 2), S(T0 + 15000, 2)),
    C("cost above one",
      "10 per 60 s, cost 4: two pass, the third would make 12; cost 2 fits.",
      {"limit": 10, "window": 60}, rep(3, T0, 4), S(T0, 2), S(T0 + 66000, 4)),
    C("cost exactly equal to limit",
      "a cost equal to the limit passes on an empty key and blocks everything for window + one bucket.",
      {"limit": 10, "window": 60, "precision": 6}, S(T0 + 5, 10), S(T0 + 5, 1), S(T0 + 69999, 10),
      S(T0 + 70000, 10)),
    C("cost above limit is rejected without consuming",
      "cost 11 > limit 10: cost_exceeds_capacity, retry_after = 60000, nothing consumed, no cooldown even with "
      "block_duration; a later 'limit' rejection starts the cooldown.",
      {"limit": 10, "window": 60, "block_duration": 30}, S(T0, 11), S(T0, 10), S(T0 + 1000, 11),
      S(T0 + 1000, 1)),
    C("idle gaps clear part or all of the ring",
      "precision 4: a gap of two buckets clears just the buckets that left the window; a gap longer than the "
      "ring clears everything.",
      {"limit": 4, "window": 10, "precision": 4}, S(T0), S(T0 + 2500), S(T0 + 5000), S(T0 + 7500),
      S(T0 + 12600), S(T0 + 12600), S(T0 + 15000), S(T0 + 100000)),
    C("clock steps backwards",
      "a request stamped before the newest written bucket is counted in that newest bucket; retry_after is "
      "measured from the (earlier) now.",
      {"limit": 4, "window": 10}, rep(3, T0 + 5000), S(T0 + 1000), S(T0 + 1000), S(T0 + 4000), S(T0 + 15999),
      S(T0 + 16000)),
    C("fractional rate 7 per 3 s",
      "7 per 3 s, precision 4: buckets of 750 ms.",
      {"limit": 7, "window": 3, "precision": 4}, rep(4, T0 + 100), rep(4, T0 + 800), S(T0 + 3749), S(T0 + 3750),
      S(T0 + 3750)),
    C("fractional window 1 per 2.5 s",
      "1 per 2.5 s, precision 4: buckets of 625 ms.",
      {"limit": 1, "window": 2.5, "precision": 4}, S(T0 + 1), S(T0 + 2500), S(T0 + 3124), S(T0 + 3125)),
    C("limit below one",
      "limit 0.5: cost 1 exceeds the limit; cost 0.5 fills the window; remaining is always 0.",
      {"limit": 0.5, "window": 1, "precision": 4}, S(T0), S(T0, 0.5), S(T0 + 999, 0.25), S(T0 + 1250, 0.25),
      S(T0 + 1250, 0.25)),
    C("fractional costs",
      "ten costs of 0.1 use up limit 1 (the bucket holds 0.9999999999999999); the 11th is rejected.",
      {"limit": 1, "window": 1}, rep(11, T0, 0.1), S(T0 + 1100, 0.1)),
    C("EPS slack",
      "0.4 + 0.2 + 0.3 + 0.1 is exactly the limit 1, but the double sum is 1.0000000000000002 after the last "
      "cost: it passes only thanks to EPS; a further 0.1 is rejected.",
      {"limit": 1, "window": 1}, S(T0, 0.4), S(T0, 0.2), S(T0, 0.3), S(T0, 0.1), S(T0, 0.1)),
    C("times starting at 0",
      "small times, precision 4 (buckets of 250 ms): the rejection scans bucket indices -4 .. 0, so the ring "
      "index must be a non-negative modulo.",
      {"limit": 2, "window": 1, "precision": 4}, rep(3, 0), S(300), S(1249), S(1250)),
    C("fractional bucket width",
      "2 per 1 s with precision 60: buckets of 16.666... ms, so retry/reset are ceil of non-integers.",
      {"limit": 2, "window": 1, "precision": 60}, S(T0 + 7), S(T0 + 500), S(T0 + 600), S(T0 + 1016),
      S(T0 + 1017)),
    C("block_duration cooldown",
      "block 30 s: the 'limit' rejection starts a cooldown; requests during it get reason cooldown and leave "
      "the state alone; after it the key works normally.",
      {"limit": 2, "window": 10, "block_duration": 30}, rep(3, T0 + 1000), S(T0 + 15000), S(T0 + 15000, 50),
      PEEK(T0 + 20000), S(T0 + 30999), rep(3, T0 + 31000)),
    C("peek does not consume",
      "peeks (cost 0) report the current outcome and leave the state as it was.",
      {"limit": 3, "window": 10}, S(T0), PEEK(T0), S(T0, 2), PEEK(T0 + 5000), S(T0 + 5000), PEEK(T0 + 11000)),
    C("expired state after long idle equals a fresh key",
      "after a day of idle the key behaves exactly like a missing state: the last four steps have the "
      "outcomes of a fresh key.",
      {"limit": 3, "window": 10, "block_duration": 5}, rep(4, T0), rep(4, T0 + IDLE + 1234), fresh_from=4),
    C("cost 0 request",
      "a non-peek cost 0 request is allowed on a full window and moves cur forward (clearing buckets).",
      {"limit": 2, "window": 10}, S(T0), S(T0), S(T0, 0), S(T0 + 5000, 0), S(T0 + 5000), S(T0 + 11000, 0)),
]

CASES = {
    "token_bucket": bucket_cases(TB_NOTES),
    "gcra": bucket_cases(GCRA_NOTES) + GCRA_EXTRA,
    "fixed_window": FIXED,
    "sliding_window": SLIDING,
    "leaky_bucket": bucket_cases(LEAKY_NOTES) + LEAKY_EXTRA,
}

# ---------------------------------------------------------------- hand-derived expectations
# (case name, step index, fields) worked out on paper from spec/README.md, not from the model.
K4 = T0 // 2500  # sliding precision 4, window 10 s: bucket index of t0 (680000016, slot K4 % 5 = 1)
HAND = {
    "token_bucket": [  # 5 per 10 s: r = 0.0005/ms, 2000 ms per unit
        ("single requests drain the bucket", 0, dict(allowed=True, remaining=4, reset_at_ms=T0 + 2000, state=[0, 4, T0])),
        ("single requests drain the bucket", 5, dict(allowed=False, reason="limit", retry_after_ms=2000,
                                                     remaining=0, reset_at_ms=T0 + 10000)),
        ("single requests drain the bucket", 6, dict(allowed=False, retry_after_ms=1)),
        ("single requests drain the bucket", 7, dict(allowed=True, remaining=0, reset_at_ms=T0 + 12000,
                                                     state=[0, 0, T0 + 2000])),
        ("block_duration cooldown", 2, dict(reason="limit", retry_after_ms=30000, reset_at_ms=T0 + 31000,
                                            state=[T0 + 31000, 0.2, T0 + 1000])),
        ("block_duration cooldown", 3, dict(reason="cooldown", retry_after_ms=26000, reset_at_ms=T0 + 31000,
                                            remaining=0, state=[T0 + 31000, 0.2, T0 + 1000])),
    ],
    "gcra": [  # T = 2000 ms, tau = 10000 ms
        ("single requests drain the bucket", 0, dict(allowed=True, remaining=4, reset_at_ms=T0 + 2000, state=[0, T0 + 2000])),
        ("single requests drain the bucket", 5, dict(allowed=False, reason="limit", retry_after_ms=2000,
                                                     remaining=0, reset_at_ms=T0 + 10000, state=[0, T0 + 10000])),
        ("single requests drain the bucket", 6, dict(allowed=False, retry_after_ms=1)),
        ("single requests drain the bucket", 7, dict(allowed=True, remaining=0, reset_at_ms=T0 + 12000)),
        ("clock stepped back after a full burst: cost 0 passes, cost 1 waits", 5,
         dict(allowed=True, reason=None, retry_after_ms=0, remaining=0, reset_at_ms=T0 + 15000)),
    ],
    "fixed_window": [  # 2 per 10 s, window [t0, t0+10000)
        ("window boundary: just before, exactly at, just after", 0,
         dict(allowed=True, remaining=1, reset_at_ms=T0 + 10000, state=[0, T0, 1])),
        ("window boundary: just before, exactly at, just after", 2,
         dict(allowed=False, reason="limit", remaining=0, retry_after_ms=1, reset_at_ms=T0 + 10000)),
        ("window boundary: just before, exactly at, just after", 3,
         dict(allowed=True, remaining=1, reset_at_ms=T0 + 20000, state=[0, T0 + 10000, 1])),
        ("window boundary: just before, exactly at, just after", 5,
         dict(allowed=False, retry_after_ms=9999)),
    ],
    "sliding_window": [  # 4 per 10 s, precision 4: b = 2500, ring of 5
        ("precision 4", 0, dict(allowed=True, remaining=3, reset_at_ms=T0 + 12500, state=[0, K4, 0, 1, 0, 0, 0])),
        ("precision 4", 4, dict(allowed=False, reason="limit", remaining=0, retry_after_ms=2501,
                                reset_at_ms=T0 + 20000)),
        ("precision 4", 5, dict(allowed=False, retry_after_ms=1)),
        ("precision 4", 6, dict(allowed=True, remaining=0, reset_at_ms=T0 + 25000,
                                state=[0, K4 + 5, 0, 1, 1, 1, 1])),
        ("times starting at 0", 2, dict(allowed=False, retry_after_ms=1250, reset_at_ms=1250)),
    ],
    "leaky_bucket": [  # shaping, 5 per 10 s: 2000 ms per unit
        ("shaping: a burst is spread at the drain rate", 0,
         dict(allowed=True, delay_ms=0, remaining=4, reset_at_ms=T0 + 2000, state=[0, 1, T0])),
        ("shaping: a burst is spread at the drain rate", 1, dict(delay_ms=2000, remaining=3, reset_at_ms=T0 + 4000)),
        ("shaping: a burst is spread at the drain rate", 4, dict(delay_ms=8000, remaining=0, reset_at_ms=T0 + 10000)),
        ("shaping: a burst is spread at the drain rate", 5,
         dict(allowed=False, reason="limit", retry_after_ms=2000, delay_ms=0)),
        ("shaping: drained level shortens the delay", 1, dict(delay_ms=1500, remaining=3)),
        ("single requests drain the bucket", 0, dict(allowed=True, delay_ms=0, remaining=4, state=[0, 1, T0])),
    ],
}


# ---------------------------------------------------------------- run, check, write

def run(algorithm, policy, steps, state=None):
    results = []
    for step in steps:
        out, state = evaluate(algorithm, policy, state, step["t"], step.get("cost", 1), step.get("peek", False))
        results.append((out, state))
    return results


def as_int(x, what):
    assert float(x).is_integer() and abs(x) < 2**53, f"{what} is not an integer: {x}"
    return int(x)


def number(x):
    return int(x) if isinstance(x, float) and x.is_integer() and abs(x) < 2**53 else x


def check_step(alg, case, i, before, out, after):
    where = f"{alg} / {case['name']} / step {i}"
    step, policy = case["steps"][i], Policy(case["policy"])
    assert out["remaining"] >= 0, where
    assert (out["retry_after_ms"] == 0) == out["allowed"], where
    assert (out["reason"] is None) == out["allowed"], where
    assert out["retry_after_ms"] >= 0 and out["reset_at_ms"] >= step["t"], where
    for f in ("remaining", "reset_at_ms", "retry_after_ms", "delay_ms"):
        as_int(out[f], f"{where}: {f}")
    if not (alg == "leaky_bucket" and policy.shaping and out["allowed"]):
        assert out["delay_ms"] == 0, where
    if step.get("peek") or out["reason"] == "cooldown":
        assert after == before, f"{where}: state changed"
    if out["reason"] == "cost_exceeds_capacity":
        assert out["retry_after_ms"] == policy.Wms and after[0] == (before[0] if before else 0), where


def admitted_in_any_window(case, results):
    """Max admitted units in any interval [s, s + Wms) (only meaningful for a monotonic clock)."""
    adm = [(s["t"], s.get("cost", 1)) for s, (o, _) in zip(case["steps"], results) if o["allowed"] and not s.get("peek")]
    Wms = Policy(case["policy"]).Wms
    return max((sum(c for u, c in adm if t <= u < t + Wms) for t, _ in adm), default=0)


def build(alg):
    cases = []
    for case in CASES[alg]:
        results = run(alg, case["policy"], case["steps"])
        befores = [None] + [st for _, st in results[:-1]]
        for i, (out, after) in enumerate(results):
            check_step(alg, case, i, befores[i], out, after)
        if case["_fresh_from"] is not None:
            k = case["_fresh_from"]
            fresh = run(alg, case["policy"], case["steps"][k:])
            assert [o for o, _ in fresh] == [o for o, _ in results[k:]], f"{alg} / {case['name']}: not like fresh"
        ts = [s["t"] for s in case["steps"]]
        if alg == "sliding_window" and ts == sorted(ts):
            assert admitted_in_any_window(case, results) <= Policy(case["policy"]).L + EPS, case["name"]
        steps = []
        for step, (out, after) in zip(case["steps"], results):
            expect = {"allowed": out["allowed"]}
            for f in ("remaining", "reset_at_ms", "retry_after_ms"):
                expect[f] = as_int(out[f], f)
            expect["reason"] = out["reason"]
            expect["delay_ms"] = as_int(out["delay_ms"], "delay_ms")
            expect["state"] = [number(x) for x in after]
            steps.append({**step, "expect": expect})
        cases.append({"name": case["name"], "description": case["description"], "policy": case["policy"],
                      "steps": steps})
    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)) and len(names) >= 18, f"{alg}: duplicate names or too few cases"
    assert any(s.get("cost") == 0 for c in cases for s in c["steps"]), f"{alg}: no cost 0 step"
    return {"algorithm": alg, "cases": cases}


def check_hand(files):
    for alg, checks in HAND.items():
        by_name = {c["name"]: c for c in files[alg]["cases"]}
        for name, i, fields in checks:
            got = by_name[name]["steps"][i]["expect"]
            for f, want in fields.items():
                if f == "state":
                    assert len(got[f]) == len(want) and all(abs(a - b) <= 1e-9 for a, b in zip(got[f], want)), \
                        f"hand check {alg} / {name} / {i}: state {got[f]} != {want}"
                else:
                    assert got[f] == want, f"hand check {alg} / {name} / {i}: {f} = {got[f]!r}, by hand {want!r}"


# The spec as written breaks "GCRA admits what a token bucket admits" here (see GCRA_NOTES).
KNOWN_DIVERGENCES = set()


def check_bucket_equivalence(files):
    """The spec says GCRA and leaky meter admit what the token bucket admits (checked on a monotonic clock)."""
    tb = {c["name"]: c for c in files["token_bucket"]["cases"]}
    diverging = set()
    for alg in ("gcra", "leaky_bucket"):
        for c in files[alg]["cases"]:
            ts = [s["t"] for s in c["steps"]]
            if c["name"] in tb and ts == sorted(ts):
                a = [s["expect"]["allowed"] for s in c["steps"]]
                if a != [s["expect"]["allowed"] for s in tb[c["name"]]["steps"]]:
                    diverging.add((alg, c["name"]))
    assert diverging == KNOWN_DIVERGENCES, f"admission differs from token_bucket: {diverging}"


def dump(v, ind=0):
    """JSON, 2-space indent, arrays of scalars on one line."""
    pad = "  " * ind
    if isinstance(v, dict):
        body = ",\n".join(f"{pad}  {json.dumps(k)}: {dump(x, ind + 1)}" for k, x in v.items())
        return "{\n" + body + "\n" + pad + "}" if v else "{}"
    if isinstance(v, list):
        if all(not isinstance(x, (dict, list)) for x in v):
            return "[" + ", ".join(dump(x) for x in v) + "]"
        return "[\n" + ",\n".join(pad + "  " + dump(x, ind + 1) for x in v) + "\n" + pad + "]"
    assert not (isinstance(v, float) and not math.isfinite(v))
    return json.dumps(v)


def main(argv):
    check = "--check" in argv
    files = {alg: build(alg) for alg in ALGORITHMS}
    check_hand(files)
    check_bucket_equivalence(files)
    stale = []
    for alg, data in files.items():
        path, text = OUT / f"{alg}.json", dump(data) + "\n"
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
        print(f"{alg}: {len(data['cases'])} cases, {sum(len(c['steps']) for c in data['cases'])} steps")
    if stale:
        print("out of date (run spec/tools/generate_vectors.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
