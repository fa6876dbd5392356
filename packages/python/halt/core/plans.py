"""Plan tables: a SaaS's plans mapped to policies (and quotas), and the policy(req) resolver that picks one per request.

A port of packages/typescript/src/saas/plans.ts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Union

from halt.core.errors import HaltConfigError
from halt.core.policy import PolicyLike, compile_policy, to_policy
from halt.core.quota import Quota, QuotaLike, validate_quota
from halt.core.types import Policy

__all__ = ["PlanEntry", "PlanTable", "define_plans"]

#: Names the plan of a request (None: the default plan).
PlanOf = Callable[[Any], Optional[str]]


@dataclass(frozen=True)
class PlanEntry:
    """One plan: its rate-limit policy, and optionally its quota."""

    policy: Policy
    quota: Optional[Quota] = None


def _norm(plan: str) -> str:
    return plan.strip().lower()


class PlanTable:
    """The plans of a product, validated when defined (see :func:`define_plans`)."""

    __slots__ = ("_entries", "_fallback", "default_plan", "names")

    def __init__(self, entries: dict[str, PlanEntry], names: tuple[str, ...], default_plan: str) -> None:
        self._entries = entries
        #: Plan names as given (lookups ignore case and surrounding spaces).
        self.names = names
        #: The plan used when a request's plan is missing or unknown.
        self.default_plan = default_plan
        self._fallback = entries[_norm(default_plan)]

    def policy(self, plan: str) -> Policy:
        """The policy of ``plan`` (case-insensitive); HALT_UNKNOWN_PLAN for a plan not in the table."""
        return self._entry(plan).policy

    def quota(self, plan: str) -> Optional[Quota]:
        """The quota of ``plan``, if it has one; HALT_UNKNOWN_PLAN for a plan not in the table."""
        return self._entry(plan).quota

    def has(self, plan: str) -> bool:
        """Whether ``plan`` is in the table."""
        return isinstance(plan, str) and _norm(plan) in self._entries

    def resolver(self, plan_of: PlanOf) -> Callable[[Any], Policy]:
        """A ``policy`` function for RateLimiter: the policy of the plan ``plan_of(req)`` names, the default plan's
        when it names none or an unknown one. Pass ``default_policy=table.policy(table.default_plan)`` with it."""
        _check_fn(plan_of)
        return lambda req: self._lookup(plan_of, req).policy

    def quota_resolver(self, plan_of: PlanOf) -> Callable[[Any], Optional[Quota]]:
        """The same for quotas (the HTTP ``quota`` option takes it): the plan's quota, or the default plan's."""
        _check_fn(plan_of)
        return lambda req: self._lookup(plan_of, req).quota

    def _entry(self, plan: str) -> PlanEntry:
        e = self._entries.get(_norm(plan)) if isinstance(plan, str) else None
        if e is None:
            raise HaltConfigError(
                "HALT_UNKNOWN_PLAN",
                f"unknown plan {plan!r}. Fix: use one of {', '.join(self.names)}, or add it to the table.",
            )
        return e

    def _lookup(self, plan_of: PlanOf, req: Any) -> PlanEntry:
        plan = plan_of(req)
        e = self._entries.get(_norm(plan)) if isinstance(plan, str) else None
        return self._fallback if e is None else e


def _check_fn(plan_of: object) -> None:
    if not callable(plan_of):
        raise HaltConfigError(
            "HALT_INVALID_PLANS",
            "plans.resolver(plan_of): plan_of must be a function of the request returning a plan name.",
        )


def define_plans(
    table: Mapping[str, Union[PolicyLike, PlanEntry, Mapping[str, Any]]], default_plan: Optional[str] = None
) -> PlanTable:
    """Define a plan table. Every policy is compiled (and every quota checked) now, so a mistake is a
    HaltConfigError at startup. A plan maps to a policy, a PlanEntry, or a mapping ``{"policy": ..., "quota": ...}``.

    Example::

        plans = define_plans({
            "free": {"policy": presets.PLAN_FREE, "quota": Quota(name="calls_free", limit=1_000, period="monthly")},
            "pro": {"policy": presets.PLAN_PRO, "quota": Quota(name="calls_pro", limit=100_000, period="monthly")},
        }, default_plan="free")
        limiter = RateLimiter(
            policy=plans.resolver(lambda req: plan_by_key.get(req.header("x-api-key") or "")),
            default_policy=plans.policy("free"),
        )
    """
    if not isinstance(table, Mapping) or len(table) == 0:
        raise HaltConfigError(
            "HALT_INVALID_PLANS",
            "define_plans: pass a mapping of plans, e.g. {'free': presets.PLAN_FREE, 'pro': presets.PLAN_PRO}.",
        )
    entries: dict[str, PlanEntry] = {}
    names: list[str] = []
    policy_names: dict[str, str] = {}
    for plan, value in table.items():
        key = _norm(plan) if isinstance(plan, str) else ""
        if len(key) == 0 or key in entries:
            raise HaltConfigError(
                "HALT_INVALID_PLANS",
                f"define_plans: plan names must be non-empty and distinct ignoring case, got {plan!r} twice or empty.",
            )
        if isinstance(value, PlanEntry):
            raw_policy: Any = value.policy
            raw_quota: Optional[QuotaLike] = value.quota
        elif isinstance(value, Mapping) and "policy" in value:
            raw_policy, raw_quota = value["policy"], value.get("quota")
        else:
            raw_policy, raw_quota = value, None
        try:
            policy = to_policy(raw_policy)
            rule = compile_policy(policy)
        except HaltConfigError as e:
            raise HaltConfigError("HALT_INVALID_PLANS", f"define_plans: plan '{plan}': {e}") from e
        other = policy_names.get(rule.name)
        if other is not None:
            raise HaltConfigError(
                "HALT_INVALID_PLANS",
                f"define_plans: plans '{other}' and '{plan}' use the policy name '{rule.name}', so they would share "
                "counters. Fix: give each plan's policy its own name.",
            )
        policy_names[rule.name] = plan
        quota = None if raw_quota is None else validate_quota(raw_quota)
        entries[key] = PlanEntry(policy, quota)
        names.append(plan)
    chosen = names[0] if default_plan is None else default_plan
    if not isinstance(chosen, str) or _norm(chosen) not in entries:
        raise HaltConfigError(
            "HALT_UNKNOWN_PLAN", f"define_plans: default_plan {chosen!r} is not one of {', '.join(names)}."
        )
    return PlanTable(entries, tuple(names), chosen)
