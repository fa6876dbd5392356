"""The README's SaaS example (examples/saas_platform.py), as the TypeScript saas-api.mjs is tested: plan limits from a
user table, penalties, a monthly quota, Prometheus metrics over HTTP, one log line per decision, no API key in logs
or metrics."""

from __future__ import annotations

import re

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.examples.support import StartExample

LOG_TIME = r"\d\d:\d\d:\d\d"


def test_plans_penalties_a_monthly_quota_metrics_and_log_lines(start_example: StartExample) -> None:
    example = start_example("saas_platform.py")
    with httpx.Client(base_url=example.url) as http:

        def get(key: str) -> httpx.Response:
            return http.get("/api/report", headers={"x-api-key": key})

        # pro: its plan's limit.
        bob = get("sk_test_bob")
        assert bob.status_code == 200
        assert bob.headers["ratelimit-limit"] == "100"
        assert bob.json() == {"user": "bob", "plan": "pro", "report": "ok"}

        # free: 5 a minute, then 429; the rejections build an abuse score until a penalty halves the limit.
        alice = [get("sk_test_alice") for _ in range(12)]
        assert [r.status_code for r in alice] == [200] * 5 + [429] * 7
        assert alice[0].headers["ratelimit-limit"] == "5"
        assert alice[11].json()["error"] == "rate_limit_exceeded"
        assert alice[11].headers["ratelimit-limit"] == "2"  # penalised: 5 x 0.5, whole units

        # trial: 3 calls a month; the 4th is over the quota until the 1st of next month, 00:00 UTC.
        carol = [get("sk_test_carol") for _ in range(4)]
        assert [r.status_code for r in carol] == [200, 200, 200, 429]
        over = carol[3].json()
        assert over["error"] == "quota_exceeded"
        assert re.fullmatch(r"\d{4}-\d\d-01T00:00:00Z", over["reset_at"])
        assert int(carol[3].headers["retry-after"]) == over["retry_after"] > 0

        unknown = get("sk_unknown")
        assert unknown.status_code == 401
        assert "ratelimit-limit" not in unknown.headers

        scrape = http.get("/metrics")
        assert scrape.status_code == 200
        metrics = scrape.text

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
    }

    def decisions(policy: str, outcome: str, reason: str) -> float:
        labels = {"policy": policy, "outcome": outcome, "reason": reason, "shadow": "false"}
        return samples.get(("halt_decisions_total", tuple(sorted(labels.items()))), 0)

    assert decisions("plan_pro", "allowed", "none") == 1
    assert decisions("plan_free", "allowed", "none") == 5
    limited = decisions("plan_free", "blocked", "limit")
    penalised = decisions("plan_free", "blocked", "penalty")
    assert limited >= 3
    assert penalised >= 1
    assert limited + penalised == 7
    assert samples[("halt_check_duration_seconds_count", (("policy", "plan_trial"),))] == 4
    # The quota's decisions reach the same sinks, under the quota's name.
    assert decisions("calls_trial", "allowed", "none") == 3
    assert decisions("calls_trial", "blocked", "quota") == 1

    # Every decision logged: 1 + 12 + 4 by the limiter, and 1 + 5 + 4 quota decisions for the requests it admitted;
    # and one near-limit warning: alice's 4th call took her to 80% of 5.
    logs = [line for line in example.until(lambda ls: sum(" req_id=" in x for x in ls) >= 28) if " req_id=" in line]
    assert len(logs) == 28, logs
    assert re.search(
        rf"^{LOG_TIME} req_id=[0-9a-f]{{8}} key=user:alice check=penalty remaining=0 retry_after=\d+$",
        "\n".join(logs),
        re.M,
    )
    # The quota's line carries the request's id: the same as the limiter's line for that request.
    quota_line = next(
        line for line in logs if re.search(r" key=user:carol check=quota remaining=0 retry_after=\d+$", line)
    )
    request_id = re.fullmatch(rf"{LOG_TIME} req_id=([0-9a-f]{{8}}) .*", quota_line)
    assert request_id is not None, quota_line
    same = [line.split(" ")[3] for line in logs if f" req_id={request_id[1]} key=user:carol " in line]
    assert same == ["check=pass", "check=quota"]
    near = [line for line in logs if " near_limit " in line]
    assert len(near) == 1
    assert near[0].endswith(" key=user:alice near_limit policy=plan_free remaining=1 limit=5")
    assert "sk_test_" not in "\n".join(logs) + metrics
