# Hand-written cases for spec/saas (quota and penalty kernels, calendar periods); expectations from reference.py.
"""Usage: python3 spec/tools/generate_saas_vectors.py [--check]

Writes spec/saas/vectors/quota.json, penalty.json and calendar.json. Before
writing it asserts hand-derived values and invariants; --check exits 1 when a
file on disk differs from what would be written.
"""
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate_vectors import dump, number  # noqa: E402
from reference import evaluate_kernel, period_bounds  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "saas" / "vectors"


def ms(*a):
    return int(datetime(*a, tzinfo=timezone.utc).timestamp() * 1000)


def iso(t):
    return datetime.fromtimestamp(t / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


JAN, FEB, MAR = ms(2026, 1, 1), ms(2026, 2, 1), ms(2026, 3, 1)
FEB28, MAR28 = ms(2028, 2, 1), ms(2028, 3, 1)
HOUR, MIN = 3_600_000, 60_000


def Q(t, cost=1, period=(JAN, FEB), refund=False, peek=False):
    s = {"t": t, "cost": cost, "start": period[0], "end": period[1]}
    if refund:
        s["refund"] = True
    if peek:
        s = {"t": t, "start": period[0], "end": period[1], "peek": True}
    return s


def P(t, cost=1, peek=False):
    return {"t": t, "peek": True} if peek else {"t": t, "cost": cost}


T0 = JAN + 10 * HOUR
QUOTA = [
    ("consume up to the limit",
     "limit 3 for January: three units pass, the fourth is rejected with retry = period end - now; used stays 3.",
     {"limit": 3}, [Q(T0), Q(T0), Q(T0), Q(T0), Q(T0 + 1000, peek=True)]),
    ("a new period starts afresh",
     "January used up; the first step with February's bounds replaces the state: used 1 of 3, reset at March 1st.",
     {"limit": 3}, [Q(T0), Q(T0), Q(T0), Q(FEB - 1), Q(FEB, period=(FEB, MAR)), Q(FEB + 1, period=(FEB, MAR))]),
    ("weighted and fractional costs",
     "limit 10: 4 + 4 pass, 4 does not fit (2 left), 2 passes, 0.5 does not fit; remaining is whole units.",
     {"limit": 10}, [Q(T0, 4), Q(T0, 4), Q(T0, 4), Q(T0, 2), Q(T0, 0.5)]),
    ("fractional usage",
     "limit 2: 0.5 leaves 1.5 (remaining 1); 1.5 more fits exactly.",
     {"limit": 2}, [Q(T0, 0.5), Q(T0, 1.5), Q(T0, 0.001)]),
    ("cost above the limit",
     "cost 11 > limit 10: cost_exceeds_capacity, retry = the period's length, nothing taken; also on a missing key.",
     {"limit": 10}, [Q(T0, 11), Q(T0, 10), Q(T0, 11)]),
    ("refund gives units back, never below 0",
     "3 used, refund 2 leaves 1, refund 5 leaves 0; a refund is always allowed.",
     {"limit": 3}, [Q(T0), Q(T0), Q(T0), Q(T0, 2, refund=True), Q(T0, 5, refund=True), Q(T0)]),
    ("refund on a missing key",
     "A refund with no state creates the period's state with used 0.",
     {"limit": 3}, [Q(T0, 1, refund=True), Q(T0, 0, peek=True)]),
    ("refund of an earlier period changes nothing",
     "The state is February's; a refund computed for January (a caller whose clock is behind) leaves it.",
     {"limit": 3}, [Q(FEB, period=(FEB, MAR)), Q(FEB, period=(FEB, MAR)), Q(FEB - 5, 2, period=(JAN, FEB), refund=True),
                    Q(FEB + 1, 0, period=(FEB, MAR))]),
    ("a state of a later period is kept",
     "The state is February's; a consume computed for January counts into it (reset at February's end).",
     {"limit": 3}, [Q(FEB, period=(FEB, MAR)), Q(FEB - 10, period=(JAN, FEB)), Q(FEB - 10, period=(JAN, FEB))]),
    ("a state whose period is over is fresh",
     "A step at or after the state's period end (its expiry) decides as on a missing key, even with the old bounds "
     "(a caller that computed the period from another clock).",
     {"limit": 1}, [Q(T0), Q(FEB - 1), Q(FEB), Q(FEB + 50)]),
    ("cost 0 reads",
     "A cost 0 step is allowed even when the quota is used up; it writes the period's state.",
     {"limit": 1}, [Q(T0, 0), Q(T0), Q(T0, 0)]),
    ("peek writes nothing",
     "A peek on a missing key says allowed, remaining = limit; the state stays missing.",
     {"limit": 5}, [Q(T0, peek=True), Q(T0), Q(T0, peek=True)]),
    ("leap February",
     "February 2028 has 29 days: the period is [2028-02-01, 2028-03-01), retry from Feb 29 12:00 is 12 h.",
     {"limit": 1}, [Q(ms(2028, 2, 29, 12), period=(FEB28, MAR28)), Q(ms(2028, 2, 29, 12), period=(FEB28, MAR28))]),
    ("a big monthly quota",
     "limit 1e6, cost 999999 then 1 then 1.",
     {"limit": 1000000}, [Q(T0, 999999), Q(T0), Q(T0)]),
]

P0 = JAN + 10 * HOUR
BASE = {"threshold": 3, "duration_ms": 60000, "decay_rate": 1, "max_duration_ms": 240000}
PENALTY = [
    ("reaching the threshold starts a penalty",
     "threshold 3: the third violation at one instant starts a 60 s penalty (retry 60000, offences 1).",
     BASE, [P(P0), P(P0), P(P0), P(P0 + 1000, peek=True)]),
    ("violations during a penalty add score, not time",
     "A fourth and fifth violation while the penalty runs raise the score to 5; penalty_until is unchanged.",
     BASE, [P(P0, 3), P(P0 + 1000), P(P0 + 2000)]),
    ("continuous decay",
     "decay 6 per hour: 5 points at t0 are 2 points 30 minutes later (5 - 0.5 h x 6), 0 after 50 minutes.",
     {"threshold": 10, "duration_ms": 60000, "decay_rate": 6, "max_duration_ms": 60000},
     [P(P0, 5), P(P0 + 30 * MIN, peek=True), P(P0 + 30 * MIN, 0), P(P0 + 50 * MIN, peek=True)]),
    ("fractional decay",
     "decay 1 per hour: 1 point at t0 is 1 - 1/3600 one second later.",
     BASE, [P(P0), P(P0 + 1000, 0)]),
    ("repeat offences double, capped",
     "threshold 2, decay 1/h, 60 s doubling to at most 200 s: offences 1, 2, 3, 4 last 60, 120, 200, 200 s.",
     {"threshold": 2, "duration_ms": 60000, "decay_rate": 1, "max_duration_ms": 200000},
     [P(P0, 2), P(P0 + 60000), P(P0 + 180000), P(P0 + 380000), P(P0 + 580000, peek=True)]),
    ("a severe violation crosses at once",
     "severity 5 with threshold 3: the penalty starts on the first violation.",
     BASE, [P(P0, 5)]),
    ("forgiven when the score has decayed and no penalty runs",
     "decay 60/h: 3 points are gone 3 minutes later; the penalty (60 s) ended before, so offences start again at 1.",
     {"threshold": 3, "duration_ms": 60000, "decay_rate": 60, "max_duration_ms": 240000},
     [P(P0, 3), P(P0 + 60000, 3), P(P0 + 180000 + 120000, peek=True), P(P0 + 600000, 3)]),
    ("not forgiven while the score lasts",
     "decay 1/h: after the 60 s penalty the score (still about 3) plus one violation is a second offence: 120 s.",
     BASE, [P(P0, 3), P(P0 + 61000)]),
    ("severity 0 only decays",
     "A cost 0 step applies the decay and writes it; it never starts a penalty, even at the threshold.",
     BASE, [P(P0, 2.5), P(P0 + HOUR, 0), P(P0 + HOUR, 0)]),
    ("peek never starts a penalty",
     "A peek at a score above the threshold after a penalty ended reports no penalty and writes nothing.",
     BASE, [P(P0, 3), P(P0 + 61000, peek=True), P(P0 + 61000, peek=True)]),
    ("a clock that steps back does not decay",
     "A step 10 s before the last one leaves the score undecayed and last_ms unchanged.",
     BASE, [P(P0, 1), P(P0 - 10000), P(P0 + 1000, 0)]),
    ("the forgiven time is when the state is fresh again",
     "reset_at_ms is max(last + ceil(score * 3600000 / rate), penalty_until); from then on the steps decide as on a "
     "missing key.",
     {"threshold": 4, "duration_ms": 60000, "decay_rate": 7, "max_duration_ms": 240000},
     [P(P0, 1.5), P(P0 + 771429), P(P0 + 771429, 0.25)]),
    ("peek of a missing key",
     "No state: score 0, no penalty, offences 0; nothing is written.",
     BASE, [P(P0, peek=True)]),
]

CAL = [
    ("monthly", "UTC", ms(2026, 2, 14, 12), "February 2026: 28 days"),
    ("monthly", "UTC", ms(2028, 2, 29, 23, 59, 59), "February 2028: a leap year, 29 days"),
    ("monthly", "UTC", ms(2026, 3, 1), "the boundary itself belongs to the new period"),
    ("monthly", "UTC", ms(2026, 3, 1) - 1, "1 ms before the boundary belongs to the old period"),
    ("monthly", "UTC", ms(2026, 12, 31, 23, 59, 59), "December: the period ends on January 1st of the next year"),
    ("yearly", "UTC", ms(2028, 7, 1), "2028: 366 days"),
    ("yearly", "Europe/Berlin", ms(2026, 12, 31, 23, 30), "23:30 UTC on Dec 31 is already 2027 in Berlin"),
    ("daily", "UTC", ms(2026, 6, 1, 0, 0, 1), "a UTC day"),
    ("hourly", "UTC", ms(2026, 6, 1, 13, 59, 59), "a UTC hour"),
    ("weekly", "UTC", ms(2026, 12, 6, 23), "Sunday belongs to the week that started on Monday"),
    ("weekly", "UTC", ms(2026, 12, 7), "Monday 00:00 starts a week"),
    ("daily", "America/New_York", ms(2026, 3, 8, 12), "DST starts: the day has 23 hours"),
    ("daily", "America/New_York", ms(2026, 11, 1, 12), "DST ends: the day has 25 hours"),
    ("hourly", "America/New_York", ms(2026, 11, 1, 5, 30), "first 01:30 of the repeated hour: the period runs from the earlier 01:00 to 02:00"),
    ("hourly", "America/New_York", ms(2026, 11, 1, 6, 30), "second 01:30: the same two-hour period"),
    ("hourly", "America/New_York", ms(2026, 3, 8, 6, 30), "01:30 before the gap: the hour ends at 03:00 EDT"),
    ("hourly", "America/New_York", ms(2026, 3, 8, 7, 30), "03:30 EDT just after the gap"),
    ("monthly", "America/New_York", ms(2026, 3, 15), "March spans the DST change: 31 days less one hour"),
    ("monthly", "America/New_York", ms(2026, 1, 1, 3), "03:00 UTC on Jan 1 is still December in New York"),
    ("weekly", "America/New_York", ms(2026, 3, 10), "the week of the DST change"),
    ("daily", "Europe/Berlin", ms(2026, 3, 29, 12), "Berlin DST starts: 23 hours"),
    ("daily", "Europe/Berlin", ms(2026, 10, 25, 12), "Berlin DST ends: 25 hours"),
    ("monthly", "Europe/Berlin", ms(2026, 10, 15), "October in Berlin ends in winter time"),
    ("monthly", "Europe/Berlin", ms(2026, 2, 28, 23, 30), "23:30 UTC on Feb 28 is March 1st in Berlin"),
    ("weekly", "Europe/Berlin", ms(2026, 12, 1), "a Berlin week: Monday 00:00 CET"),
    ("hourly", "Asia/Kolkata", ms(2026, 6, 1, 10, 15), "UTC+05:30: hours start at :30 UTC"),
    ("monthly", "Asia/Kolkata", ms(2026, 1, 31, 19), "19:00 UTC on Jan 31 is Feb 1st 00:30 in Kolkata"),
    ("daily", "America/Santiago", ms(2026, 9, 6, 12), "midnight is skipped (00:00 -> 01:00): the day starts at 01:00"),
    ("daily", "America/Santiago", ms(2026, 4, 4, 12), "clocks go back at midnight: 23:00-24:00 repeats, 25 hours"),
    ("hourly", "Australia/Lord_Howe", ms(2026, 10, 3, 15, 45), "a 30-minute DST shift (02:00 -> 02:30): the hour starts at the end of the gap"),
    ("yearly", "Pacific/Kiritimati", ms(2026, 12, 31, 10, 30), "UTC+14: the year turns at 10:00 UTC on Dec 31"),
]


def run_kernel(kernel, params, steps):
    state, out = None, []
    for st in steps:
        p = dict(params)
        if kernel == "quota":
            p.update(start=st["start"], end=st["end"], refund=st.get("refund", False))
        before = state
        o, state = evaluate_kernel(kernel, p, state, st["t"], st.get("cost", 1), st.get("peek", False))
        if st.get("peek"):
            assert state == before
        expect = {k: o[k] for k in ("allowed", "remaining", "reset_at_ms", "retry_after_ms", "reason")}
        expect["delay_ms"] = o["delay_ms"]
        expect = {k: number(v) if isinstance(v, float) else v for k, v in expect.items()}
        expect["state"] = None if state is None else [number(x) for x in state]
        out.append({**st, "expect": expect})
    return out


def build_kernel(kernel, cases):
    built = []
    for name, description, params, steps in cases:
        built.append({"name": name, "description": description, "params": params, "steps": run_kernel(kernel, params, steps)})
    names = [c["name"] for c in built]
    assert len(names) == len(set(names))
    return {"kernel": kernel, "cases": built}


def by_name(f, name):
    return next(c for c in f["cases"] if c["name"] == name)


def check_hand(q, p, cal):
    s = by_name(q, "consume up to the limit")["steps"]
    assert [x["expect"]["allowed"] for x in s[:4]] == [True, True, True, False]
    assert s[3]["expect"]["retry_after_ms"] == FEB - T0 and s[3]["expect"]["reset_at_ms"] == FEB
    s = by_name(q, "a new period starts afresh")["steps"]
    assert s[3]["expect"]["allowed"] is False and s[4]["expect"]["remaining"] == 2 and s[4]["expect"]["reset_at_ms"] == MAR
    s = by_name(q, "refund gives units back, never below 0")["steps"]
    assert [x["expect"]["remaining"] for x in s] == [2, 1, 0, 2, 3, 2]
    s = by_name(q, "leap February")["steps"]
    assert s[1]["expect"]["retry_after_ms"] == 12 * HOUR
    s = by_name(p, "reaching the threshold starts a penalty")["steps"]
    assert [x["expect"]["retry_after_ms"] for x in s] == [0, 0, 60000, 59000] and s[2]["expect"]["remaining"] == 1
    s = by_name(p, "continuous decay")["steps"]
    assert abs(s[1]["expect"]["delay_ms"] - 2) < 1e-9 and s[3]["expect"]["delay_ms"] == 0
    s = by_name(p, "repeat offences double, capped")["steps"]
    assert [x["expect"]["retry_after_ms"] for x in s[:4]] == [60000, 120000, 200000, 200000]
    assert [x["expect"]["remaining"] for x in s[:4]] == [1, 2, 3, 4]
    s = by_name(p, "forgiven when the score has decayed and no penalty runs")["steps"]
    assert s[3]["expect"]["remaining"] == 1
    s = by_name(p, "not forgiven while the score lasts")["steps"]
    assert s[1]["expect"]["remaining"] == 2 and s[1]["expect"]["retry_after_ms"] == 120000
    # At the forgiven time the state decides as a missing one.
    c = by_name(p, "the forgiven time is when the state is fresh again")
    assert c["steps"][0]["expect"]["reset_at_ms"] == c["steps"][1]["t"]
    fresh = run_kernel("penalty", c["params"], c["steps"][1:])
    assert [x["expect"] for x in fresh][:-1] == [x["expect"] for x in c["steps"][1:]][:-1]
    hours = {(x["period"], x["time_zone"], x["t"]): (x["end"] - x["start"]) / HOUR for x in cal["cases"]}
    assert hours[("daily", "America/New_York", ms(2026, 3, 8, 12))] == 23
    assert hours[("daily", "America/New_York", ms(2026, 11, 1, 12))] == 25
    assert hours[("hourly", "America/New_York", ms(2026, 11, 1, 6, 30))] == 2
    assert hours[("daily", "Europe/Berlin", ms(2026, 3, 29, 12))] == 23
    assert hours[("monthly", "UTC", ms(2028, 2, 29, 23, 59, 59))] == 29 * 24
    assert hours[("yearly", "UTC", ms(2028, 7, 1))] == 366 * 24


def build_calendar():
    cases = []
    for period, tz, t, description in CAL:
        start, end = period_bounds(period, t, tz)
        assert start <= t < end, (period, tz, iso(t))
        cases.append({"description": description, "period": period, "time_zone": tz, "t": t, "t_iso": iso(t),
                      "start": start, "end": end, "start_iso": iso(start), "end_iso": iso(end)})
    return {"cases": cases}


def main(argv):
    files = {"quota": build_kernel("quota", QUOTA), "penalty": build_kernel("penalty", PENALTY), "calendar": build_calendar()}
    check_hand(files["quota"], files["penalty"], files["calendar"])
    stale = []
    for name, data in files.items():
        path, text = OUT / f"{name}.json", dump(data) + "\n"
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
        print(f"{name}: {len(data['cases'])} cases")
    if stale:
        print("out of date (run spec/tools/generate_saas_vectors.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
