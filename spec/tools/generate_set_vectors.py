# Hand-written limit-set cases; expectations come from reference.evaluate_set. Writes spec/vectors/sets/limit_sets.json.
"""Usage: python3 spec/tools/generate_set_vectors.py [--check]

A limit set is several policies of one identity decided as one (spec/README.md §4). Each case lists its
policies (with `algorithm`, `name` and optionally `shadow`) and steps of (t, cost); the reference model fills
in `expect`: whether the request passes, and per policy the outcome and the state after the step (null while
the policy has no state). Before writing, invariants are asserted on every step. --check exits 1 when the
file on disk differs from what would be written.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate_vectors import T0, as_int, dump, number  # noqa: E402
from reference import evaluate, evaluate_set  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "vectors" / "sets" / "limit_sets.json"
DAY = 86_400


def P(name, algorithm, limit, window, **kw):
    return {"name": name, "algorithm": algorithm, "limit": limit, "window": window, **kw}


def S(t, cost=1):
    return {"t": t, "cost": cost}


def rep(n, t, cost=1):
    return [S(t, cost) for _ in range(n)]


def C(name, description, policies, *steps):
    flat = []
    for s in steps:
        flat.extend(s if isinstance(s, list) else [s])
    return {"name": name, "description": description, "policies": policies, "steps": flat}


SEC = P("per_second", "fixed_window", 3, 1)
DAY_FW = P("per_day", "fixed_window", 5, DAY)

CASES = [
    C("all or nothing over two fixed windows",
      "3 per second and 5 per day: three pass and take one unit from each; the fourth is rejected by "
      "per_second and per_day keeps its 2 units (it reports them). A second later two more pass; then per_day "
      "rejects and per_second keeps its last unit.",
      [SEC, DAY_FW], rep(4, T0), rep(3, T0 + 1000)),
    C("a token bucket per second and a sliding window per minute",
      "A bucket of 2 refilling 2 per second beside 5 per minute in 5 sub-buckets: the bucket binds first, "
      "then the window; units the window rejects are not taken from the bucket.",
      [P("burst", "token_bucket", 2, 1), P("minute", "sliding_window", 5, 60, precision=5)],
      rep(3, T0), rep(2, T0 + 1000), rep(2, T0 + 2000), S(T0 + 3000), S(T0 + 61000)),
    C("a cooldown started by one policy, the other untouched",
      "1 per second with a 10 s block beside 100 per hour: the second request starts the block (its step is "
      "kept), the hour policy gives nothing; during the cooldown nothing changes.",
      [P("burst", "token_bucket", 1, 1, block_duration=10), P("hour", "fixed_window", 100, 3600)],
      S(T0), S(T0 + 1), S(T0 + 5000), S(T0 + 10001)),
    C("both policies reject",
      "Each rejecting policy keeps its own rejection step: both blocks start.",
      [P("a", "fixed_window", 1, 1, block_duration=2), P("b", "gcra", 1, 10, block_duration=5)],
      S(T0), S(T0 + 1), S(T0 + 2500), S(T0 + 5001), S(T0 + 10000)),
    C("cost above one policy's capacity",
      "A cost of 4 is above per_second's limit of 3: rejected as cost_exceeds_capacity, nothing taken from "
      "per_day. Cost 0 passes and takes nothing.",
      [SEC, DAY_FW], S(T0, 2), S(T0, 4), S(T0, 0), S(T0, 1)),
    C("a policy with no state yet keeps none",
      "The first request is rejected by a cost above the small policy's capacity: the large one, never "
      "stepped for real, still has no state (null).",
      [P("small", "token_bucket", 2, 1), P("large", "leaky_bucket", 50, 60)], S(T0, 3), S(T0, 1)),
    C("leaky bucket shaping beside a fixed window",
      "Two admitted requests: the shaping delay is the leaky bucket's; when the window rejects, the bucket "
      "keeps its level (no delay is promised for a rejected request).",
      [P("shape", "leaky_bucket", 2, 1, shaping=True, burst=4), P("cap", "fixed_window", 3, 10)],
      rep(4, T0), S(T0 + 10000)),
    C("a shadow policy never decides",
      "100 per minute enforced beside a shadow trial of 2 per minute: every request passes; the trial admits "
      "two and would reject the rest. It counts only what it admitted.",
      [P("api", "fixed_window", 100, 60), P("trial", "fixed_window", 2, 60, shadow=True)], rep(4, T0)),
    C("a shadow policy counts only served requests",
      "Enforced 2 per minute, shadow 10 per minute: requests the enforced policy rejects are not counted by "
      "the shadow one.",
      [P("api", "fixed_window", 2, 60), P("trial", "token_bucket", 10, 60, shadow=True)], rep(4, T0)),
    C("every policy shadow",
      "A limiter in shadow mode: the set always passes; the shadow policies are all or nothing among "
      "themselves, as if enforced (per_day counts only what per_second admitted).",
      [dict(SEC, shadow=True), dict(DAY_FW, shadow=True)], rep(4, T0), rep(3, T0 + 1000)),
    C("one enforced policy is the algorithm alone",
      "A set of one enforced policy decides exactly as the policy's algorithm.",
      [P("solo", "gcra", 2, 1)], rep(3, T0), S(T0 + 499), S(T0 + 500)),
    C("three policies, the middle one binds",
      "10 per second, 4 per minute, 100 per hour: the minute policy rejects the fifth request; the second "
      "and the hour policy report their state as it was.",
      [P("s", "token_bucket", 10, 1), P("m", "sliding_window", 4, 60, precision=6), P("h", "gcra", 100, 3600)],
      rep(5, T0), S(T0 + 60000)),
]


def check_case(case, steps):
    members = case["policies"]
    for i, step in enumerate(steps):
        where = f"{case['name']} / step {i}"
        exp = step["expect"]
        enforced = [o for p, o in zip(members, exp["policies"]) if not p.get("shadow")]
        assert exp["allowed"] == all(o["allowed"] for o in enforced), where
        before = [None] * len(members) if i == 0 else [o["state"] for o in steps[i - 1]["expect"]["policies"]]
        every = all(o["allowed"] for o in exp["policies"])
        for p, o, b in zip(members, exp["policies"], before):
            kept = every if p.get("shadow") else exp["allowed"]
            if o["allowed"] and not kept:
                assert o["state"] == b, f"{where}: {p['name']} consumed for a request that did not pass"


def build():
    cases = []
    for case in CASES:
        members = [(p["algorithm"], {k: v for k, v in p.items() if k not in ("name", "algorithm", "shadow")},
                    bool(p.get("shadow"))) for p in case["policies"]]
        states = [None] * len(members)
        steps = []
        for step in case["steps"]:
            allowed, outs, states = evaluate_set(members, states, step["t"], step["cost"])
            policies = []
            for out, st in zip(outs, states):
                e = {"allowed": out["allowed"]}
                for f in ("remaining", "reset_at_ms", "retry_after_ms"):
                    e[f] = as_int(out[f], f)
                e["reason"] = out["reason"]
                e["delay_ms"] = as_int(out["delay_ms"], "delay_ms")
                e["state"] = None if st is None else [number(x) for x in st]
                policies.append(e)
            steps.append({**step, "expect": {"allowed": allowed, "policies": policies}})
        check_case(case, steps)
        if len(members) == 1 and not members[0][2]:
            state = None
            for step in steps:
                out, state = evaluate(members[0][0], members[0][1], state, step["t"], step["cost"])
                assert out["allowed"] == step["expect"]["allowed"], case["name"]
        cases.append({"name": case["name"], "description": case["description"], "policies": case["policies"],
                      "steps": steps})
    names = [c["name"] for c in cases]
    assert len(names) == len(set(names))
    # Hand-derived values.
    first = cases[0]["steps"]
    assert [s["expect"]["allowed"] for s in first] == [True, True, True, False, True, True, False]
    assert first[3]["expect"]["policies"][1]["remaining"] == 2 and first[3]["expect"]["policies"][1]["state"][2] == 3
    assert first[6]["expect"]["policies"][0]["remaining"] == 1
    trial = cases[7]["steps"]
    assert all(s["expect"]["allowed"] for s in trial) and trial[3]["expect"]["policies"][1]["state"][2] == 2
    return {
        "about": "Limit sets (spec/README.md §4): one request against several policies of one identity. Each step "
                 "runs every policy at t with cost; expect.allowed is the set's answer, expect.policies[i] policy "
                 "i's outcome and its state after the step (null: none stored yet).",
        "cases": cases,
    }


def main(argv):
    text = dump(build()) + "\n"
    if "--check" in argv:
        if not OUT.exists() or OUT.read_text() != text:
            print("out of date (run spec/tools/generate_set_vectors.py): " + str(OUT), file=sys.stderr)
            return 1
    else:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(text)
    print(f"limit_sets: {len(CASES)} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
