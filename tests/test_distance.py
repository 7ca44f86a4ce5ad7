"""The distance math: Fréchet distance against scipy, KID by hand, the bootstrap's fast paths, the warning."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from vbench_pref.distribution import distance
from vbench_pref.distribution.distance import (
    _FixedReferenceFrechet,
    _VideoKernel,
    bootstrap_frechet,
    bootstrap_kid,
    frechet_distance,
    gaussian_stats,
    kid,
    small_sample_warning,
)

scipy_linalg = pytest.importorskip("scipy.linalg")


def scipy_frechet(x: np.ndarray, y: np.ndarray) -> float:
    """The formula as pytorch-fid writes it: scipy's sqrtm of the non-symmetric product, real part."""
    mu1, mu2 = x.mean(axis=0), y.mean(axis=0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root = scipy_linalg.sqrtm(s1 @ s2)
    root = root.real if np.iscomplexobj(root) else root
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(root))


def gaussians(seed: int, n: int, d: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d)) / np.sqrt(d)
    return rng.normal(size=(n, d)) @ mixing * scale + shift


@pytest.mark.parametrize("d", [8, 64])
def test_frechet_distance_equals_scipy_on_random_gaussians(d: int) -> None:
    x, y = gaussians(0, 500, d), gaussians(1, 700, d, shift=0.3, scale=1.5)
    ours = frechet_distance(gaussian_stats(x), gaussian_stats(y))
    assert ours == pytest.approx(scipy_frechet(x, y), rel=1e-9, abs=1e-9)
    assert ours > 0.1
    assert frechet_distance(gaussian_stats(y), gaussian_stats(x)) == pytest.approx(ours, rel=1e-9)


@pytest.mark.parametrize("n,d", [(300, 32), (20, 64)])  # the second: a singular covariance (n < d)
def test_frechet_distance_of_a_set_with_itself_is_zero(n: int, d: int) -> None:
    x = gaussians(2, n, d, shift=5.0, scale=3.0)
    assert frechet_distance(gaussian_stats(x), gaussian_stats(x)) == pytest.approx(0.0, abs=1e-6)


def test_gaussian_stats_are_float64_with_ddof_1_and_weights_count_rows_again() -> None:
    x = gaussians(3, 40, 5).astype(np.float32)
    stats = gaussian_stats(x)
    assert stats.mean.dtype == np.float64 and stats.cov.dtype == np.float64 and stats.n == 40
    np.testing.assert_allclose(stats.cov, np.cov(x.astype(np.float64), rowvar=False), rtol=1e-12)
    w = np.arange(40) % 3
    repeated = gaussian_stats(np.repeat(x, w, axis=0))
    weighted = gaussian_stats(x, w)
    np.testing.assert_allclose(weighted.cov, repeated.cov, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(weighted.mean, repeated.mean, rtol=1e-12)
    with pytest.raises(ValueError, match="NaN"):
        gaussian_stats(np.array([[1.0, np.nan], [0.0, 1.0]]))


def hand_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 written out pair by pair with k(a, b) = (a.b/d + 1)^3 (any set sizes)."""
    d = x.shape[1]

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return (float(a @ b) / d + 1.0) ** 3

    m, n = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    kyy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
    kxy = sum(k(a, b) for a in x for b in y) / (m * n)
    return kxx + kyy - 2 * kxy


def test_kid_equals_a_hand_computation_on_tiny_sets() -> None:
    x = np.array([[0.0, 1.0], [1.0, 2.0], [2.0, 0.5]])
    y = np.array([[1.0, 1.0], [3.0, -1.0], [0.0, 0.0]])
    # every subset of 3 out of 3 is the whole set: the estimate is the full-set unbiased MMD^2, spread 0
    result = kid(x, y, subsets=4)
    assert result.value == pytest.approx(hand_mmd2(x, y), rel=1e-12)
    assert result.std == pytest.approx(0.0, abs=1e-12) and result.subset_size == 3
    # k = (x.y/2 + 1)^3 by hand for the first pair of rows: x0.y0 = 1 -> 1.5^3
    assert distance.polynomial_kernel(x[:1], y[:1])[0, 0] == pytest.approx(3.375)
    # a set against itself: the unbiased estimate is not exactly 0, but symmetric
    assert kid(y, x, subsets=1).value == pytest.approx(hand_mmd2(y, x), rel=1e-12)


def test_kid_subsets_are_drawn_as_clean_fid_draws_them() -> None:
    gen, ref = gaussians(4, 30, 6), gaussians(5, 25, 6, shift=0.2)
    m, subsets = 10, 7
    np.random.seed(11)  # clean-fid draws from numpy's global state: reference subset, then generated
    values = []
    for _ in range(subsets):
        r = ref[np.random.choice(len(ref), m, replace=False)]
        g = gen[np.random.choice(len(gen), m, replace=False)]
        values.append(hand_mmd2(r, g))
    result = kid(gen, ref, subsets=subsets, subset_size=m, seed=11)
    assert result.value == pytest.approx(np.mean(values), rel=1e-10)
    assert result.std == pytest.approx(np.std(values), rel=1e-10)
    assert result.stderr == pytest.approx(np.std(values, ddof=1) / np.sqrt(subsets), rel=1e-10)


@pytest.mark.parametrize("n,d", [(12, 20), (60, 6)])  # the Gram route (n <= d) and the d x d route
def test_bootstrap_frechet_replicate_equals_the_distance_of_the_resampled_set(n: int, d: int) -> None:
    gen, ref = gaussians(6, n, d, shift=0.5), gaussians(7, 80, d)
    ref_stats = gaussian_stats(ref)
    replicate = _FixedReferenceFrechet(gen, ref_stats)
    rng = np.random.default_rng(0)
    for _ in range(3):
        w = np.bincount(rng.integers(0, n, size=n), minlength=n).astype(float)
        direct = frechet_distance(gaussian_stats(np.repeat(gen, w.astype(int), axis=0)), ref_stats)
        assert replicate(w) == pytest.approx(direct, rel=1e-8)


def test_video_kernel_mmd_equals_the_unbiased_mmd_of_the_resampled_sets() -> None:
    gen, ref = gaussians(8, 9, 4), gaussians(9, 8, 4, shift=0.4)
    gen_videos = np.array([0, 0, 1, 2, 2, 2, 3, 4, 4])  # several rows per video, as per-frame features
    ref_videos = np.array(["a", "b", "b", "c", "d", "d", "e", "f"])
    kernel = _VideoKernel(gen, gen_videos, ref, ref_videos)
    w, v = np.array([2.0, 0.0, 1.0, 1.0, 1.0]), np.array([1.0, 2.0, 0.0, 1.0, 1.0, 1.0])
    gen_rows = np.repeat(gen, w[gen_videos].astype(int), axis=0)
    ref_rows = np.repeat(ref, v[np.unique(ref_videos, return_inverse=True)[1]].astype(int), axis=0)
    assert kernel.mmd2(w, v) == pytest.approx(hand_mmd2(gen_rows, ref_rows), rel=1e-10)


def test_bootstrap_intervals_hold_the_estimate_and_are_seeded() -> None:
    gen, ref = gaussians(10, 60, 5, shift=0.5), gaussians(11, 80, 5)
    groups = np.repeat(np.arange(20), 3)  # 20 videos of 3 rows
    value, interval = bootstrap_frechet(gen, gaussian_stats(ref), groups, resamples=50, seed=3)
    assert value == pytest.approx(frechet_distance(gaussian_stats(gen), gaussian_stats(ref)))
    assert 0.0 <= interval.low < value < interval.high
    assert bootstrap_frechet(gen, gaussian_stats(ref), groups, resamples=50, seed=3) == (value, interval)
    assert bootstrap_frechet(gen, gaussian_stats(ref), groups, resamples=50, seed=4)[1] != interval
    both_value, both = bootstrap_frechet(gen, ref, groups, resamples=30, seed=3, resample_reference=True)
    assert both_value == pytest.approx(value) and both.resampled == "generated+reference"
    assert both.high - both.low > 0
    result, kid_interval = bootstrap_kid(gen, ref, groups, subsets=10, subset_size=20, resamples=50)
    assert kid_interval.low < result.value < kid_interval.high
    with pytest.raises(ValueError, match="feature rows"):
        bootstrap_frechet(gen, gaussian_stats(ref), resample_reference=True)


def test_small_sample_warning_says_how_biased_the_distance_is() -> None:
    text = small_sample_warning("fvd", "frechet", 100, 5000, 2048, "videos")
    assert text is not None and "100 generated" in text and "2048" in text and "1/n" in text and "upward" in text
    assert small_sample_warning("fvd", "frechet", 3000, 1000, 2048, "videos") is not None  # the reference counts too
    assert small_sample_warning("fvd", "frechet", 2048, 2048, 2048, "videos") is None
    assert small_sample_warning("fid", "frechet", 10, 10, None, "frames") is None
    assert "unbiased" in small_sample_warning("kid", "kid", 10, 10, 1000, "frames")
