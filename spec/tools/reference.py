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
