"""The algorithm registry: name -> implementation."""

from __future__ import annotations

from halt.core.algorithms.fixed_window import fixed_window
from halt.core.algorithms.gcra import gcra
from halt.core.algorithms.kernel import EPS, AlgorithmImpl, State, evaluate, expires_at, fits, run_step
from halt.core.algorithms.leaky_bucket import leaky_bucket
from halt.core.algorithms.penalty import penalty_kernel, penalty_rule
from halt.core.algorithms.quota import quota_kernel, quota_rule
from halt.core.algorithms.sliding_window import sliding_window
from halt.core.algorithms.token_bucket import token_bucket

ALGORITHMS: dict[str, AlgorithmImpl] = {
    "token_bucket": token_bucket,
    "fixed_window": fixed_window,
    "sliding_window": sliding_window,
    "leaky_bucket": leaky_bucket,
    "gcra": gcra,
}

#: Every kernel a store may run: the five algorithms, and the quota and penalty kernels of spec/saas (not
#: policy algorithms: QuotaManager and PenaltyManager build their rules).
KERNELS: dict[str, AlgorithmImpl] = {**ALGORITHMS, "quota": quota_kernel, "penalty": penalty_kernel}

__all__ = [
    "ALGORITHMS",
    "EPS",
    "KERNELS",
    "AlgorithmImpl",
    "State",
    "evaluate",
    "expires_at",
    "fits",
    "penalty_kernel",
    "penalty_rule",
    "quota_kernel",
    "quota_rule",
    "run_step",
]
