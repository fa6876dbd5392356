"""Helpers for the HTTP tests: spec/http cases, plain request views, limiters on a fake clock that collect warnings."""

from __future__ import annotations

import json
from typing import Any, Optional

from halt.core.limiter import RateLimiter
from halt.core.types import Decision, Policy
from halt.http.request import BasicRequestView
from halt.http.warnings import HaltWarning
from halt.stores.memory import InMemoryStore
from tests.support import SPEC_DIR

T0 = 1_700_000_000_000
HTTP_SPEC = SPEC_DIR / "http"


class FakeClock:
    """Milliseconds that move only when told to."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, ms: float) -> None:
        self.now += ms


def load_spec(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((HTTP_SPEC / name).read_text(encoding="utf-8"))
    return data


def http_limiter(policy: Any = None, **options: Any) -> tuple[RateLimiter, FakeClock, list[HaltWarning]]:
    """A limiter on a fake clock and a sweep-less memory store, collecting its warnings."""
    clock = FakeClock()
    warnings: list[HaltWarning] = []
    options.setdefault("store", InMemoryStore(sweep_interval=0))
    options.setdefault("on_warning", warnings.append)
    limiter = RateLimiter(
        policy if policy is not None else Policy(name="api", limit=100, window=60), clock=clock, **options
    )
    return limiter, clock, warnings


def view(
    ip: Optional[str] = "203.0.113.7",
    path: str = "/api/items",
    headers: Optional[dict[str, Any]] = None,
    user: Any = None,
    method: str = "GET",
) -> BasicRequestView:
    return BasicRequestView(ip=ip, method=method, path=path, headers=headers, user=user)


def spec_limiter(case: dict[str, Any]) -> RateLimiter:
    cfg = case.get("config", {})
    strategy = case.get("policy", {}).get("key_strategy")
    limiter, _, _ = http_limiter(
        Policy(name="spec", limit=100, window=60, key_strategy=strategy),
        trusted_proxies=cfg.get("trusted_proxies"),
        proxy_header=cfg.get("proxy_header"),
        exempt_private_ips=cfg.get("exempt_private_ips"),
        exempt_health_checks=cfg.get("exempt_health_checks"),
        exemptions=cfg.get("exemptions"),
        ipv6_prefix=cfg.get("ipv6_prefix"),
        on_missing_identity=cfg.get("on_missing_identity"),
        api_key_secret=cfg.get("api_key_secret"),
    )
    return limiter


def spec_view(case: dict[str, Any]) -> BasicRequestView:
    r = case["request"]
    return view(ip=r["peer"], method=r["method"], path=r["path"], headers=r["headers"], user=r.get("user"))


def to_decision(d: dict[str, Any]) -> Decision:
    return Decision(
        allowed=d["allowed"],
        limit=d["limit"],
        remaining=d["remaining"],
        reset_at=d["reset_at"],
        retry_after=d["retry_after"],
        policy=d["policy"],
        reason=d["reason"],
        delay=d["delay"],
    )
