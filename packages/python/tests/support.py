"""Shared test helpers: the spec vectors, a fake clock, the test servers' addresses."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from halt.core.types import Outcome, Policy

SPEC_DIR = Path(__file__).resolve().parents[3] / "spec"


def load_vectors() -> list[dict[str, Any]]:
    """Every spec/vectors file, sorted by name."""
    return [json.loads(p.read_text()) for p in sorted((SPEC_DIR / "vectors").glob("*.json"))]


def vector_cases() -> list[tuple[str, dict[str, Any]]]:
    """(algorithm, case) pairs of every vector, for parametrize."""
    return [(f["algorithm"], c) for f in load_vectors() for c in f["cases"]]


def case_id(pair: tuple[str, dict[str, Any]]) -> str:
    return f"{pair[0]}: {pair[1]['name']}"


def to_policy(algorithm: str, case: dict[str, Any]) -> Policy:
    """The vector's policy as a Halt policy (cost 0 so that any step's cost fits)."""
    p = case["policy"]
    return Policy(
        name="vector",
        algorithm=algorithm,
        limit=p["limit"],
        window=p["window"],
        burst=p.get("burst"),
        block_duration=p.get("block_duration"),
        precision=p.get("precision"),
        leaky_mode=None if "shaping" not in p else ("shaping" if p["shaping"] else "meter"),
        cost=0,
    )


def outcome_fields(o: Outcome) -> dict[str, Any]:
    """An outcome in the vectors' terms, without the state."""
    return {
        "allowed": o.allowed,
        "remaining": o.remaining,
        "reset_at_ms": o.reset_at_ms,
        "retry_after_ms": o.retry_after_ms,
        "reason": o.reason,
        "delay_ms": o.delay_ms,
    }


def expected_fields(expect: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in expect.items() if k != "state"}


def assert_state(actual: list[float], expected: list[float]) -> None:
    assert len(actual) == len(expected), (actual, expected)
    for a, e in zip(actual, expected):
        assert abs(a - e) <= 1e-9 * max(1.0, abs(e)), (actual, expected)


class FakeClock:
    """Milliseconds that only move when told to."""

    def __init__(self, now: int = 1_700_000_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: float) -> None:
        self.now += ms  # type: ignore[assignment]


def redis_url() -> str | None:
    return os.environ.get("HALT_TEST_REDIS_URL")


def cluster_nodes() -> list[tuple[str, int]]:
    raw = os.environ.get("HALT_TEST_REDIS_CLUSTER_NODES", "")
    out = []
    for part in raw.replace(",", " ").split():
        host, _, port = part.rpartition(":")
        out.append((host or "127.0.0.1", int(port)))
    return out


def set_vector_cases() -> list[dict[str, Any]]:
    """The cases of spec/vectors/sets/limit_sets.json."""
    data = json.loads((SPEC_DIR / "vectors" / "sets" / "limit_sets.json").read_text())
    return list(data["cases"])


def to_set_policies(case: dict[str, Any], prefix: str = "") -> list[Policy]:
    """A set vector's policies as Halt policies (cost 0, as ``to_policy``; ``shadow`` as ``mode='shadow'``)."""
    return [
        dataclasses.replace(
            to_policy(p["algorithm"], {"policy": p}),
            name=f"{prefix}{p['name']}",
            mode="shadow" if p.get("shadow") else None,
        )
        for p in case["policies"]
    ]
