"""Paired permutation test: hand-computed exact p-values, and Monte Carlo against an independent exact count."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vbench_pref.stats import EXACT_PERMUTATION_MAX_N, paired_permutation_test


@pytest.mark.parametrize(
    ("a", "b", "p"),
    [
        # differences 1, 2, 3: of the 8 sign patterns only +++ and --- reach |mean| 2
        ([1.0, 2.0, 3.0], [0.0, 0.0, 0.0], 2 / 8),
        # differences 3, 1: |mean| of ++, +-, -+, -- is 2, 1, 1, 2
        ([3.0, 1.0], [0.0, 0.0], 2 / 4),
        # six equal differences: 2 of 64 patterns
        ([0.6] * 6, [0.5] * 6, 2 / 64),
        # the observed mean is 0: every pattern is as extreme
        ([1.0, 0.0], [0.0, 1.0], 1.0),
        # five prompts can never give p < 0.05 (2 / 32 at best)
        ([0.9483] * 5, [0.9482] * 5, 2 / 32),
    ],
)
def test_exact_p_values_by_hand(a: list[float], b: list[float], p: float) -> None:
    result = paired_permutation_test(np.array(a), np.array(b))
    assert result.exact and result.n == len(a)
    assert result.p_value == pytest.approx(p, abs=1e-12)
    assert result.mean_difference == pytest.approx(np.mean(np.array(a) - np.array(b)))


def test_nan_pairs_left_out_and_lengths_checked() -> None:
    result = paired_permutation_test(np.array([1.0, np.nan, 2.0, 3.0]), np.array([0.0, 5.0, 0.0, np.nan]))
    assert result.n == 2 and result.p_value == pytest.approx(0.5)  # differences 1, 2
    assert math.isnan(paired_permutation_test(np.array([np.nan]), np.array([1.0])).p_value)
    with pytest.raises(ValueError):
        paired_permutation_test(np.zeros(3), np.zeros(4))


def _exact_by_counting(diffs: list[int]) -> float:
    """Independent exact p for integer differences: the distribution of the signed sum by convolution."""
    counts = {0: 1}
    for d in diffs:
        nxt: dict[int, int] = {}
        for total, ways in counts.items():
            for signed in (d, -d):
                nxt[total + signed] = nxt.get(total + signed, 0) + ways
        counts = nxt
    observed = abs(sum(diffs))
    return sum(w for total, w in counts.items() if abs(total) >= observed) / 2 ** len(diffs)


def test_monte_carlo_agrees_with_exact_count_and_is_seeded() -> None:
    rng = np.random.default_rng(7)
    diffs = [int(x) for x in rng.integers(-3, 6, size=EXACT_PERMUTATION_MAX_N + 9)]  # 25 units: sampled
    a = np.array(diffs, dtype=np.float64)
    b = np.zeros_like(a)
    exact = _exact_by_counting(diffs)
    first = paired_permutation_test(a, b)
    assert not first.exact and first.n == 25
    # 10000 draws: the standard error of p is at most 0.005
    assert abs(first.p_value - exact) < 4 * math.sqrt(exact * (1 - exact) / 10000) + 1e-4
    assert paired_permutation_test(a, b).p_value == first.p_value  # deterministic
    assert paired_permutation_test(a, b, seed=1).p_value != first.p_value or exact in (0.0, 1.0)


def test_exact_enumeration_agrees_with_exact_count() -> None:
    diffs = [1, -2, 3, 3, 0, 1, -1, 2, 2, 1, 4, -1]
    result = paired_permutation_test(np.array(diffs, dtype=np.float64), np.zeros(len(diffs)))
    assert result.exact and result.p_value == pytest.approx(_exact_by_counting(diffs), abs=1e-12)


def test_clear_separation_on_many_prompts() -> None:
    a = np.linspace(0.5, 0.6, 40)
    result = paired_permutation_test(a + 0.01, a)
    assert result.p_value == pytest.approx(1 / 10001)  # no sampled pattern reaches all-positive
