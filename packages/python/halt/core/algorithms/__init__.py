"""The algorithm registry: name -> implementation."""

from __future__ import annotations

from halt.core.algorithms.fixed_window import fixed_window
from halt.core.algorithms.gcra import gcra
from halt.core.algorithms.kernel import EPS, AlgorithmImpl, State, evaluate, expires_at, fits, run_step
from halt.core.algorithms.leaky_bucket import leaky_bucket
from halt.core.algorithms.sliding_window import sliding_window
from halt.core.algorithms.token_bucket import token_bucket

ALGORITHMS: dict[str, AlgorithmImpl] = {
    "token_bucket": token_bucket,
    "fixed_window": fixed_window,
    "sliding_window": sliding_window,
    "leaky_bucket": leaky_bucket,
    "gcra": gcra,
}

__all__ = ["ALGORITHMS", "EPS", "AlgorithmImpl", "State", "evaluate", "expires_at", "fits", "run_step"]
