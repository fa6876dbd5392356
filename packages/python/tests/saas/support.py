"""spec/saas/vectors (quota and penalty kernels, calendar periods) and the kernel rule of a step, for any store."""

from __future__ import annotations

import json
from typing import Any

from halt.core.algorithms import penalty_rule, quota_rule
from halt.core.policy import Rule
from tests.support import SPEC_DIR

_DIR = SPEC_DIR / "saas" / "vectors"


def _load(name: str) -> dict[str, Any]:
    return json.loads((_DIR / f"{name}.json").read_text())  # type: ignore[no-any-return]


def kernel_cases() -> list[tuple[str, dict[str, Any]]]:
    """(kernel, case) pairs of quota.json and penalty.json, for parametrize."""
    return [(f["kernel"], c) for f in (_load("quota"), _load("penalty")) for c in f["cases"]]


def calendar_cases() -> list[dict[str, Any]]:
    return list(_load("calendar")["cases"])


def kernel_id(pair: tuple[str, dict[str, Any]]) -> str:
    return f"{pair[0]}: {pair[1]['name']}"


def kernel_rule(kernel: str, case: dict[str, Any], step: dict[str, Any], name: str = "vector") -> Rule:
    """The rule a step runs under (namespace ``<name>:q`` or ``<name>:pen``)."""
    p = case["params"]
    if kernel == "quota":
        return quota_rule(name, p["limit"], step["start"], step["end"], step.get("refund", False) is True)
    return penalty_rule(name, p["threshold"], p["duration_ms"], p["decay_rate"], p["max_duration_ms"])


def concurrency_rule(kernel: str, name: str, start: float) -> Rule:
    """The rules of the concurrency tests: a daily quota of 150 from ``start``, or a penalty that never starts nor
    decays noticeably (each step adds its cost to the score). Worker processes build them from the job's fields."""
    if kernel == "quota":
        return quota_rule(name, 150, start, start + 86_400_000, False)
    return penalty_rule(name, 1e9, 60_000, 1e-6, 960_000)
