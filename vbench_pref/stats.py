"""Summary statistics of per-video scores (mean, std, counts, a bootstrap confidence interval) and the
paired permutation test the leaderboard uses to tell a best value from a tie."""

from __future__ import annotations

import math
from dataclasses import dataclass
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


PERMUTATION_RESAMPLES = 10000
PERMUTATION_SEED = 0
EXACT_PERMUTATION_MAX_N = 16  # 2**16 sign patterns: enumerated, no sampling error


@dataclass(frozen=True)
class PairedComparison:
    """Two methods scored on the same units (prompts): the mean of ``a - b`` and a two-sided p-value."""

    n: int
    mean_difference: float
    p_value: float
    exact: bool  # every sign pattern enumerated (else Monte Carlo)


def paired_permutation_test(
    a: np.ndarray,
    b: np.ndarray,
    resamples: int = PERMUTATION_RESAMPLES,
    seed: int = PERMUTATION_SEED,
) -> PairedComparison:
    """Paired sign-flip permutation test of ``mean(a - b) == 0``, two-sided.

    Under the null each unit's difference is as likely to be ``+d`` as ``-d``; the p-value is the share
    of the 2**n sign patterns whose mean difference is at least as far from 0 as the observed one.
    Up to ``EXACT_PERMUTATION_MAX_N`` units every pattern is enumerated; beyond, ``resamples`` random
    patterns (seeded) give ``(1 + hits) / (1 + resamples)``, which never reports 0. Units where either
    value is NaN are left out; with none left the p-value is NaN.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"paired values need equal lengths, got {a.size} and {b.size}")
    keep = ~(np.isnan(a) | np.isnan(b))
    diffs = a[keep] - b[keep]
    n = int(diffs.size)
    if n == 0:
        return PairedComparison(0, math.nan, math.nan, True)
    observed = abs(float(diffs.mean()))
    # float sums of the same numbers in another order differ in the last bits: count those as equal
    threshold = observed - 1e-12 * max(1.0, float(np.abs(diffs).sum()) / n)
    if n <= EXACT_PERMUTATION_MAX_N:
        patterns = np.arange(2**n, dtype=np.int64)[:, None] >> np.arange(n, dtype=np.int64)
        signs = 1.0 - 2.0 * (patterns & 1)
        hits = int((np.abs(signs @ diffs) / n >= threshold).sum())
        return PairedComparison(n, float(diffs.mean()), hits / 2**n, True)
    rng = np.random.default_rng(seed)
    hits = 0
    chunk = max(1, 4_000_000 // n)  # bounds memory for long suites
    for start in range(0, resamples, chunk):
        rows = min(chunk, resamples - start)
        signs = 1.0 - 2.0 * rng.integers(0, 2, size=(rows, n))
        hits += int((np.abs(signs @ diffs) / n >= threshold).sum())
    return PairedComparison(n, float(diffs.mean()), (1 + hits) / (1 + resamples), False)
