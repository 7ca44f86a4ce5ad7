"""Summary statistics of per-video scores: mean, std, counts and a bootstrap confidence interval."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0


def bootstrap_ci(
    values: np.ndarray,
    level: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean; NaN bounds when fewer than two values."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, values.size, size=(resamples, values.size))
    means = values[picks].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return (float(low), float(high))


def summarize(values: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> dict[str, Any]:
    """Mean, sample std (ddof=1), n, n_missing and the 95% bootstrap CI of one score column."""
    values = np.asarray(values, dtype=np.float64)
    present = values[~np.isnan(values)]
    n = int(present.size)
    mean = float(present.mean()) if n else math.nan
    std = float(present.std(ddof=1)) if n > 1 else math.nan
    low, high = bootstrap_ci(present, resamples=resamples, seed=seed)
    return {
        "mean": mean,
        "std": std,
        "n": n,
        "n_missing": int(values.size - n),
        "ci95": [low, high],
    }
