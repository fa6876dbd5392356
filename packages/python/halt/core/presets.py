"""Ready-made policies for common endpoints and SaaS plans (the same numbers as the TypeScript SDK)."""

from __future__ import annotations

import json
from typing import Any, Optional, cast

from halt.core.errors import HaltConfigError
from halt.core.types import Policy

#: Public API: 100 requests per minute, bursts of 120.
PUBLIC_API = Policy(name="public_api", limit=100, window=60, burst=120, algorithm="token_bucket")
#: Login, signup, password reset: 5 per minute, bursts of 10, then a 5-minute cooldown.
AUTH_ENDPOINTS = Policy(
    name="auth_endpoints", limit=5, window=60, burst=10, block_duration=300, algorithm="token_bucket"
)
#: Reports, exports, AI calls: 10 units per hour, bursts of 15, each request costs 10.
EXPENSIVE_OPS = Policy(name="expensive_ops", limit=10, window=3600, burst=15, cost=10, algorithm="token_bucket")
#: Strict: 20 per minute, bursts of 25.
STRICT_API = Policy(name="strict_api", limit=20, window=60, burst=25, algorithm="token_bucket")
#: Generous: 1000 per minute, bursts of 1200.
GENEROUS_API = Policy(name="generous_api", limit=1000, window=60, burst=1200, algorithm="token_bucket")

#: A limit set: 10 per second (bursts of 20) and 10,000 per UTC day, decided as one
#: (``RateLimiter(policy=presets.PER_SECOND_AND_DAY)``).
PER_SECOND_AND_DAY: tuple[Policy, ...] = (
    Policy(name="per_second", limit=10, window=1, burst=20, algorithm="token_bucket"),
    Policy(name="per_day", limit=10_000, window=86_400, algorithm="fixed_window"),
)

# Plan limits per hour.
PLAN_FREE = Policy(name="plan_free", limit=100, window=3600, algorithm="token_bucket")
PLAN_STARTER = Policy(name="plan_starter", limit=500, window=3600, algorithm="token_bucket")
PLAN_PRO = Policy(name="plan_pro", limit=2000, window=3600, algorithm="token_bucket")
PLAN_BUSINESS = Policy(name="plan_business", limit=5000, window=3600, algorithm="token_bucket")
PLAN_ENTERPRISE = Policy(name="plan_enterprise", limit=20000, window=3600, algorithm="token_bucket")

PLANS: dict[str, Policy] = {
    "free": PLAN_FREE,
    "starter": PLAN_STARTER,
    "pro": PLAN_PRO,
    "business": PLAN_BUSINESS,
    "enterprise": PLAN_ENTERPRISE,
}


def get_plan_policy(plan: str, table: Optional[Any] = None) -> Policy:
    """The policy of a plan, by name, case-insensitive.

    Example::

        get_plan_policy("Pro")  # PLAN_PRO: 2000 per hour
        get_plan_policy("team", plans)  # your own table (define_plans)
    """
    if table is not None:
        return cast(Policy, table.policy(plan))
    p = PLANS.get(plan.strip().lower()) if isinstance(plan, str) else None
    if p is None:
        shown = json.dumps(plan) if isinstance(plan, (str, int, float, type(None))) else repr(plan)
        raise HaltConfigError(
            "HALT_UNKNOWN_PLAN",
            f"unknown plan {shown}. Fix: use one of {', '.join(PLANS)}, or pass your own policy.",
        )
    return p


__all__ = [
    "AUTH_ENDPOINTS",
    "EXPENSIVE_OPS",
    "GENEROUS_API",
    "PER_SECOND_AND_DAY",
    "PLANS",
    "PLAN_BUSINESS",
    "PLAN_ENTERPRISE",
    "PLAN_FREE",
    "PLAN_PRO",
    "PLAN_STARTER",
    "PUBLIC_API",
    "STRICT_API",
    "get_plan_policy",
]
