# Reference model of spec/README.md: the five Halt algorithms plus the common wrapper, in IEEE doubles.
"""Independent, literal reading of spec/README.md (stdlib only, Python 3.11).

Every number is kept as a Python float (IEEE-754 double) and every formula is
evaluated in the order the spec writes it, so that the results match a
JavaScript or Lua implementation bit for bit.  `floor`/`ceil` return floats,
like Math.floor/Math.ceil.  Sums are plain left-to-right loops (never sum(),
which uses compensated summation from Python 3.12 on).

Entry point: evaluate(algorithm, policy, state, t, cost=1, peek=False)
returns (outcome, state_after); state may be None (missing).
"""
import math

EPS = 1e-9
ALGORITHMS = ("token_bucket", "gcra", "fixed_window", "sliding_window", "leaky_bucket")


def floor(x):
    return float(math.floor(x))


def ceil(x):
    return float(math.ceil(x))


class Policy:
    def __init__(self, d):
        self.L = float(d["limit"])
        self.window = float(d["window"])
        self.Wms = self.window * 1000
        self.B = float(d.get("burst", d["limit"]))
        self.block_duration = float(d.get("block_duration", 0))
        self.P = int(d.get("precision", 10))
        self.shaping = bool(d.get("shaping", False))
        self.r = self.L / self.Wms  # units per ms, computed once (bucket algorithms)


def _outcome(allowed, remaining, reset_at_ms, retry_after_ms=0.0, reason=None, delay_ms=0.0):
    return {"allowed": allowed, "remaining": remaining, "reset_at_ms": reset_at_ms,
            "retry_after_ms": retry_after_ms, "reason": reason, "delay_ms": delay_ms}


# ---- token_bucket: [blocked_until, tokens, last_ms] ----

def tb_init(p, now):
    return [0.0, p.B, now]


def tb_step(p, s, now, c):
    B, r = p.B, p.r
    if now > s[2]:
        s[1] = min(B, s[1] + (now - s[2]) * r)
        s[2] = now
    else:
        s[1] = min(B, s[1])  # a state saved under a larger burst (the policy was changed) holds at most B
    tokens = s[1]
    last = s[2]
    wait = last - now if last > now else 0.0  # clock stepped back: refill resumes at last_ms
    allowed, retry, reason = False, 0.0, None
    if c > B:
        reason, retry = "cost_exceeds_capacity", p.Wms
    elif tokens + EPS >= c:
        allowed = True
        s[1] = max(0.0, tokens - c)
    else:
        reason, retry = "limit", wait + ceil((c - tokens - EPS) / r)
    tokens = s[1]
    reset = last if tokens + EPS >= B else last + ceil((B - tokens - EPS) / r)
    return _outcome(allowed, floor(tokens + EPS), reset, retry, reason)


# ---- gcra: [blocked_until, tat] ----

def gcra_init(p, now):
    return [0.0, now]


def gcra_step(p, s, now, c):
    T = p.Wms / p.L
    tau = p.B * T
    S = min(0.001, T * 0.001)
    tat = s[1]
    nowp = max(now, tat - tau)  # clock stepped back: never more than a full bucket ahead
    base = max(tat, nowp)
    left = lambda x: max(0.0, floor((tau - (x - nowp) + S) / T))
    if c > p.B:
        return _outcome(False, left(base), ceil(base), p.Wms, "cost_exceeds_capacity")
    new_tat = base + c * T
    if new_tat - nowp - tau <= S:
        s[1] = new_tat
        return _outcome(True, left(new_tat), ceil(new_tat))
    return _outcome(False, left(base), ceil(base), ceil(new_tat - tau - now - S), "limit")


# ---- fixed_window: [blocked_until, window_start, count] ----

def fw_init(p, now):
    return [0.0, floor(now / p.Wms) * p.Wms, 0.0]


def fw_step(p, s, now, c):
    L, Wms = p.L, p.Wms
    ws = floor(now / Wms) * Wms
    if ws > s[1]:
        s[1], s[2] = ws, 0.0
    allowed, retry, reason = False, 0.0, None
    if c > L:
        reason, retry = "cost_exceeds_capacity", Wms
    elif s[2] + c <= L + EPS:
        allowed = True
        s[2] = s[2] + c
    else:
        reason, retry = "limit", s[1] + Wms - now
    return _outcome(allowed, max(0.0, floor(L - s[2] + EPS)), s[1] + Wms, retry, reason)


# ---- sliding_window: [blocked_until, cur, n_0 .. n_P] ----

def sw_init(p, now):
    b = p.Wms / p.P
    return [0.0, floor(now / b)] + [0.0] * (p.P + 1)


def sw_step(p, s, now, c):
    L, P = p.L, p.P
    b = p.Wms / P
    slot = lambda i: 2 + int(i) % (P + 1)  # mathematical modulo: i may be negative near t = 0
    k = floor(now / b)
    cur = s[1]
    if k > cur:
        for i in range(int(cur) + 1, int(min(k, cur + P + 1)) + 1):
            s[slot(i)] = 0.0
        s[1] = cur = k
    elif k < cur:
        k = cur
    used = 0.0
    for j in range(P + 1):  # slot order n_0 .. n_P
        used = used + s[2 + j]
    allowed, retry, reason = False, 0.0, None
    if c > L:
        reason, retry = "cost_exceeds_capacity", p.Wms
        rem = max(0.0, floor(L - used + EPS))
    elif used + c <= L + EPS:
        allowed = True
        s[slot(k)] += c
        rem = max(0.0, floor(L - used - c + EPS))
    else:
        reason = "limit"
        rem = max(0.0, floor(L - used + EPS))
        i = k - P
        while True:
            assert i <= k, "retry loop ran past the newest bucket"
            used = used - s[slot(i)]
            if used + c <= L + EPS:
                retry = ceil((i + P + 1) * b - now)
                break
            i += 1
    reset = now
    for n in range(int(k), int(k) - P - 1, -1):
        if s[slot(n)] != 0:
            reset = ceil((n + P + 1) * b)
            break
    return _outcome(allowed, rem, reset, retry, reason)


# ---- leaky_bucket: [blocked_until, level, last_ms] ----

def lb_init(p, now):
    return [0.0, 0.0, now]


def lb_step(p, s, now, c):
    B, r = p.B, p.r
    if now > s[2]:
        s[1] = max(0.0, s[1] - (now - s[2]) * r)
        s[2] = now
    level = s[1]
    last = s[2]
    wait = last - now if last > now else 0.0  # clock stepped back: draining resumes at last_ms
    drained = lambda l: 0.0 if l <= EPS else ceil((l - EPS) / r)
    allowed, retry, reason, delay = False, 0.0, None, 0.0
    if c > B:
        reason, retry = "cost_exceeds_capacity", p.Wms
    elif level + c <= B + EPS:
        allowed = True
        if p.shaping:
            delay = wait + drained(level)
        s[1] = level + c
    else:
        reason, retry = "limit", wait + ceil((level + c - B - EPS) / r)
    level = s[1]
    return _outcome(allowed, max(0.0, floor(B - level + EPS)), last + drained(level), retry, reason, delay)


IMPL = {
    "token_bucket": (tb_init, tb_step, lambda p: 3),
    "gcra": (gcra_init, gcra_step, lambda p: 2),
    "fixed_window": (fw_init, fw_step, lambda p: 3),
    "sliding_window": (sw_init, sw_step, lambda p: p.P + 3),
    "leaky_bucket": (lb_init, lb_step, lambda p: 3),
}


def evaluate(algorithm, policy, state, t, cost=1, peek=False):
    """One wrapped step. Returns (outcome, state_after); a peek returns `state` untouched."""
    init, step, size = IMPL[algorithm]
    p = Policy(policy)
    now = float(t)
    c = 0.0 if peek else float(cost)
    if state is None or len(state) != size(p):
        s = init(p, now)
    else:
        s = [float(x) for x in state]
    if now < s[0]:  # 1. cooldown: reject, state unchanged; the step on a copy covers the algorithm's own wait
        probe = step(p, list(s), now, c)
        out = _outcome(False, 0.0, max(s[0], probe["reset_at_ms"]), max(s[0] - now, probe["retry_after_ms"]), "cooldown")
    else:
        out = step(p, s, now, c)  # 2./3. algorithm step incl. cost-above-capacity
        if out["reason"] == "limit" and p.block_duration > 0:  # 4. block
            s[0] = now + p.block_duration * 1000
            out["retry_after_ms"] = max(out["retry_after_ms"], s[0] - now)
            out["reset_at_ms"] = max(out["reset_at_ms"], s[0])
    if peek:
        return out, (None if state is None else list(state))
    return out, s


# ---- spec/saas/README.md: the quota and penalty kernels (same wrapper; blocked_until stays 0) ----

HOUR_MS = 3600000.0


def quota_step(q, s, now, c):
    """q: limit, start (ms), end (ms), refund. State [blocked_until, period_start, period_end, used]."""
    L, S, E = float(q["limit"]), float(q["start"]), float(q["end"])
    if S > s[1] or now >= s[2]:  # a later period, or an expired state, starts afresh; a later period's state is kept
        s[1], s[2], s[3] = S, E, 0.0
    end, used = s[2], s[3]
    allowed, reason, retry = True, None, 0.0
    if q.get("refund"):
        if s[1] == S:
            used = max(0.0, used - c)
            s[3] = used
    elif c > L:
        allowed, reason, retry = False, "cost_exceeds_capacity", E - S
    elif used + c <= L + EPS:
        used = used + c
        s[3] = used
    else:
        allowed, reason, retry = False, "limit", end - now
    return _outcome(allowed, max(0.0, floor(L - used + EPS)), end, retry, reason)


def penalty_step(p, s, now, c):
    """p: threshold, duration_ms, decay_rate (points/hour), max_duration_ms. State [0, score, last_ms, until, offences]."""
    T, D, R, MAX = float(p["threshold"]), float(p["duration_ms"]), float(p["decay_rate"]), float(p["max_duration_ms"])
    if now > s[2]:
        score = s[1] - (now - s[2]) * R / HOUR_MS
        s[1] = 0.0 if score < EPS else score
        s[2] = now
    if s[1] == 0.0 and now >= s[3]:  # forgiven
        s[3], s[4] = 0.0, 0.0
    if c > 0:
        s[1] = s[1] + c
        if now >= s[3] and s[1] + EPS >= T:
            s[4] = s[4] + 1
            s[3] = now + min(MAX, D * 2.0 ** min(s[4] - 1, 52))
    zero = s[2] + ceil(s[1] * HOUR_MS / R) if s[1] > 0 else s[2]
    out = _outcome(True, s[4], max(zero, s[3]), s[3] - now if s[3] > now else 0.0)
    out["delay_ms"] = s[1]  # the score rides in delay_ms
    return out


KERNELS = {
    "quota": (lambda q, now: [0.0, float(q["start"]), float(q["end"]), 0.0], quota_step, 4),
    "penalty": (lambda p, now: [0.0, 0.0, now, 0.0, 0.0], penalty_step, 5),
}


def evaluate_kernel(kernel, params, state, t, cost=1, peek=False):
    """One step of a spec/saas kernel, with the wrapper's rules (missing state -> init; peek writes nothing)."""
    init, step, size = KERNELS[kernel]
    now = float(t)
    c = 0.0 if peek else float(cost)
    s = init(params, now) if state is None or len(state) != size else [float(x) for x in state]
    out = step(params, s, now, c)
    if peek:
        return out, (None if state is None else list(state))
    return out, s


def period_bounds(period, t_ms, tz):
    """spec/saas/README.md §1: [start, end) of the calendar period holding t_ms in IANA zone tz (zoneinfo)."""
    from datetime import datetime, timedelta, timezone
    from zoneinfo import ZoneInfo
    zone = ZoneInfo(tz)
    local = datetime.fromtimestamp(t_ms // 1000, tz=timezone.utc).astimezone(zone).replace(tzinfo=None)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "hourly":
        start = local.replace(minute=0, second=0, microsecond=0)
        end = start + timedelta(hours=1)
    elif period == "daily":
        start, end = day, day + timedelta(days=1)
    elif period == "weekly":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    elif period == "monthly":
        start = day.replace(day=1)
        end = start.replace(year=start.year + (start.month == 12), month=start.month % 12 + 1)
    elif period == "yearly":
        start = day.replace(month=1, day=1)
        end = start.replace(year=start.year + 1)
    else:
        raise ValueError(period)
    return first_instant_at_or_after(start, zone), first_instant_at_or_after(end, zone)


def first_instant_at_or_after(wall, zone):
    """The earliest instant (ms) whose wall-clock time in `zone` is >= `wall` (naive datetime)."""
    from datetime import timezone
    cands = []
    for fold in (0, 1):
        u = wall.replace(tzinfo=zone, fold=fold).astimezone(timezone.utc)
        if u.astimezone(zone).replace(tzinfo=None) == wall:
            cands.append(int(u.timestamp()) * 1000)
    if cands:
        return min(cands)
    # In a gap: binary search on whole seconds between the two readings of `wall`.
    lo = int(wall.replace(tzinfo=zone, fold=1).astimezone(timezone.utc).timestamp())
    hi = int(wall.replace(tzinfo=zone, fold=0).astimezone(timezone.utc).timestamp())
    lo, hi = min(lo, hi), max(lo, hi)
    from datetime import datetime
    local_at = lambda sec: datetime.fromtimestamp(sec, tz=timezone.utc).astimezone(zone).replace(tzinfo=None)
    lo -= 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if local_at(mid) >= wall:
            hi = mid
        else:
            lo = mid
    return hi * 1000


def evaluate_set(members, states, t, cost=1):
    """A limit set (spec/README.md §4): one request against several policies of one identity.

    `members` is a list of (algorithm, policy, shadow); `states` the matching states (None: missing).
    Returns (allowed, outcomes, states_after). Every member steps on its own state. The enforced members
    admit only if each admits; then each keeps its step, else a member that admitted keeps its state and
    reports a peek. Shadow members follow the same rule in the world where they were enforced too: they keep
    their step only if every member admits.
    """
    steps = [evaluate(alg, pol, st, t, cost) for (alg, pol, _), st in zip(members, states)]
    enforced = True
    shadow_ok = True
    for (_, _, shadow), (out, _) in zip(members, steps):
        if not out["allowed"]:
            if shadow:
                shadow_ok = False
            else:
                enforced = False
    every = enforced and shadow_ok
    outcomes, after = [], []
    for (alg, pol, shadow), st, (out, s) in zip(members, states, steps):
        if out["allowed"] and not (every if shadow else enforced):
            out, s = evaluate(alg, pol, st, t, 0, peek=True)[0], st
        outcomes.append(out)
        after.append(None if s is None else list(s))
    return enforced, outcomes, after
