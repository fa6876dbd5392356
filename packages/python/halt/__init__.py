"""Halt: rate limiting with one behaviour in Python and TypeScript.

Example::

    from halt import RateLimiter, presets

    limiter = RateLimiter(policy=presets.PUBLIC_API)
    d = limiter.check("user:42")
    if not d.allowed:
        print(f"retry in {d.retry_after}s")
"""

from __future__ import annotations

from halt.core import presets
from halt.core.calendar import QuotaPeriod
from halt.core.errors import HaltConfigError, RateLimitExceeded
from halt.core.limiter import KeyExplanation, LimiterStats, RateLimiter
from halt.core.penalty import Penalty, PenaltyConfig, PenaltyManager
from halt.core.plans import PlanTable, define_plans
from halt.core.policy import Rule, compile_policy
from halt.core.presets import get_plan_policy
from halt.core.quota import Quota, QuotaManager, QuotaResult, QuotaState
from halt.core.sets import SetResult, evaluate_set
from halt.core.store import AsyncSetStore, AsyncStore, SetStore, Store
from halt.core.telemetry import DecisionEvent, LoggingTelemetry, MetricsTelemetry, StoreErrorEvent, Telemetry
from halt.core.types import Algorithm, Decision, KeyStrategy, Outcome, Policy
from halt.stores.memory import InMemoryStore

__version__ = "0.1.0"

__all__ = [
    "Algorithm",
    "AsyncSetStore",
    "AsyncStore",
    "Decision",
    "DecisionEvent",
    "HaltConfigError",
    "InMemoryStore",
    "KeyExplanation",
    "KeyStrategy",
    "LimiterStats",
    "LoggingTelemetry",
    "MetricsTelemetry",
    "Outcome",
    "Penalty",
    "PenaltyConfig",
    "PenaltyManager",
    "PlanTable",
    "Policy",
    "Quota",
    "QuotaManager",
    "QuotaPeriod",
    "QuotaResult",
    "QuotaState",
    "RateLimitExceeded",
    "RateLimiter",
    "Rule",
    "SetResult",
    "SetStore",
    "Store",
    "StoreErrorEvent",
    "Telemetry",
    "compile_policy",
    "define_plans",
    "evaluate_set",
    "get_plan_policy",
    "presets",
]
