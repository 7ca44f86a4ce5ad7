"""Distances between two sets of feature vectors: Fréchet distance, KID, their bootstrap intervals.

Pure numpy in float64; no model, no files.

Fréchet distance (FVD, FID): ``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2)`` between the Gaussians
fitted to the two sets (mean, covariance with ``ddof=1`` as ``np.cov`` gives it). The trace of the matrix
square root is taken as ``tr sqrt(R S2 R)`` with ``R = sqrt(S1)`` from a symmetric eigen-decomposition:
``S1 S2`` and ``R S2 R`` have the same eigenvalues, but ``R S2 R`` is symmetric positive semi-definite, so
``eigvalsh`` gives its real eigenvalues in a backward-stable way, negative round-off is clipped to 0, and a
singular covariance (fewer samples than dimensions, the usual case below 2,048 videos) needs no special
case. pytorch-fid and clean-fid instead call ``scipy.linalg.sqrtm`` on the non-symmetric ``S1 S2``, drop the
imaginary part it may return, and retry with ``eps * I`` added to both covariances when the result is not
finite; on well-conditioned covariances both give the same number (to ~1e-9 relative), on singular ones
the eigen form is the exact value of the formula, the offset one a perturbed one.

KID (Bińkowski et al. 2018, "Demystifying MMD GANs"): the unbiased estimator of the squared MMD with the
cubic polynomial kernel ``k(x, y) = (x.y / d + 1)^3``, averaged over ``subsets`` random pairs of subsets of
``min(n_generated, n_reference, subset_size)`` rows drawn without replacement, as clean-fid's
``kernel_distance`` and torch-fidelity do (100 subsets of at most 1,000). Subsets are drawn with
``np.random.RandomState(seed)``, reference subset first, then generated, each pair in turn: the order
clean-fid draws them from numpy's global state, so ``np.random.seed(seed)`` before clean-fid's call
reproduces them. The spread reported with it is the standard deviation of the subset estimates
(torch-fidelity's ``kernel_inception_distance_std``) and its standard error (``std / sqrt(subsets)``).

Bootstrap intervals (``bootstrap_frechet``, ``bootstrap_kid``): the generated set is resampled with
replacement by **video** (all feature rows of a video go together: frames of one video are not independent
samples), optionally the reference set too; seeded. A resample holds only ~63% distinct videos, and both
the Fréchet distance and a with-replacement MMD grow as the number of distinct samples shrinks, so the
replicates sit above the estimate and a plain percentile interval would often not contain it. The interval
reported is therefore the percentile interval of the replicates shifted by their median bias: ``[d +
(q_low - median), d + (q_high - median)]`` (clipped at 0 for the Fréchet distance), the sampling spread of
the distance at this sample size placed around the estimate. It says how much the value moves with the
sample; it does not correct the small-sample bias (``small_sample_warning``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

DISTANCE_RESAMPLES = 100  # bootstrap replicates of a distance: each costs an eigen-decomposition
DISTANCE_SEED = 0
KID_SUBSETS = 100  # clean-fid's and torch-fidelity's defaults
KID_SUBSET_SIZE = 1000
_BLOCK_ROWS = 2048  # rows per kernel block (bounds memory of the video-level kernel sums)


@dataclass(frozen=True)
class GaussianStats:
    """Mean and covariance (float64, ``ddof=1``) of ``n`` feature rows."""

    mean: np.ndarray
    cov: np.ndarray
    n: int

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])


@dataclass(frozen=True)
class Interval:
    """A bootstrap interval of a distance: bounds, level, replicates, seed and what was resampled."""

    low: float
    high: float
    level: float
    resamples: int
    seed: int
    resampled: str  # "generated" or "generated+reference"
    method: str = "percentile, shifted by the replicates' median bias"

    def describe(self) -> dict[str, object]:
        return {"level": self.level, "resamples": self.resamples, "seed": self.seed, "unit": "video",
                "resampled": self.resampled, "method": self.method}


@dataclass(frozen=True)
class KidResult:
    """KID as the mean of the subset estimates, their standard deviation and standard error."""

    value: float
    std: float  # of the subset estimates (ddof=0, torch-fidelity's kid_std)
    stderr: float  # std (ddof=1) / sqrt(subsets); 0 with one subset
    subsets: int
    subset_size: int


def as_rows(features: np.ndarray) -> np.ndarray:
    """Features as a float64 (n, d) array; refuses anything else in one line."""
    rows = np.asarray(features, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[0] == 0:
        raise ValueError(f"features must be a non-empty (n, d) array, got shape {rows.shape}")
    if not np.isfinite(rows).all():
        raise ValueError("features hold NaN or infinite values")
    return rows


def gaussian_stats(features: np.ndarray, weights: np.ndarray | None = None) -> GaussianStats:
    """Mean and covariance (``ddof=1``) of the rows, each counted ``weights[i]`` times when weights are given."""
    rows = as_rows(features)
    w = np.ones(rows.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    total = float(w.sum())
    if total < 2:
        raise ValueError(f"a covariance needs at least 2 feature rows, got {total:g}")
    mean = w @ rows / total
    centred = rows - mean
    cov = (centred * w[:, None]).T @ centred / (total - 1.0)
    return GaussianStats(mean, (cov + cov.T) / 2.0, int(round(total)))


def sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix (negative round-off → 0)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def trace_sqrt_product(root1: np.ndarray, cov2: np.ndarray) -> float:
    """``tr sqrt(S1 S2)`` from ``root1 = sqrt(S1)``: the eigenvalues of the symmetric ``root1 S2 root1``."""
    middle = root1 @ cov2 @ root1
    values = np.linalg.eigvalsh((middle + middle.T) / 2.0)
    return float(np.sqrt(np.clip(values, 0.0, None)).sum())


def frechet_distance(a: GaussianStats, b: GaussianStats) -> float:
    """The Fréchet distance between two Gaussians, in float64 (module docstring: the square root)."""
    if a.dim != b.dim:
        raise ValueError(f"feature dimensions differ: {a.dim} and {b.dim}")
    diff = a.mean - b.mean
    value = float(diff @ diff) + float(np.trace(a.cov)) + float(np.trace(b.cov))
    value -= 2.0 * trace_sqrt_product(sqrt_psd(b.cov), a.cov)
    return max(value, 0.0)  # round-off can take an exact 0 a hair below


# --------------------------------------------------------------------------------------------- KID
def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(x.y / d + 1)^3`` for every pair of rows."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased squared MMD of two equal-size sets under the polynomial kernel."""
    m = x.shape[0]
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within - 2.0 * kxy.sum() / (m * m))


def kid(
    generated: np.ndarray,
    reference: np.ndarray,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = DISTANCE_SEED,
) -> KidResult:
    """KID: the mean over ``subsets`` subset pairs of the unbiased squared MMD (module docstring)."""
    gen, ref = as_rows(generated), as_rows(reference)
    if gen.shape[1] != ref.shape[1]:
        raise ValueError(f"feature dimensions differ: {gen.shape[1]} and {ref.shape[1]}")
    m = min(gen.shape[0], ref.shape[0], subset_size)
    if m < 2:
        raise ValueError(f"KID needs at least 2 feature rows in each set, got {gen.shape[0]} and {ref.shape[0]}")
    rng = np.random.RandomState(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        ref_pick = rng.choice(ref.shape[0], m, replace=False)
        gen_pick = rng.choice(gen.shape[0], m, replace=False)
        values[i] = mmd2_unbiased(ref[ref_pick], gen[gen_pick])
    stderr = float(values.std(ddof=1) / math.sqrt(subsets)) if subsets > 1 else 0.0
    return KidResult(float(values.mean()), float(values.std()), stderr, subsets, m)


# --------------------------------------------------------------------------------------------- bootstrap
def _groups(groups: Sequence[object] | np.ndarray | None, n: int) -> tuple[np.ndarray, int]:
    """Row → video number (0..V-1) and V; without groups every row is its own video."""
    if groups is None:
        return np.arange(n), n
    labels = np.asarray(groups)
    if labels.shape != (n,):
        raise ValueError(f"groups must give one video per feature row: {labels.shape} for {n} rows")
    _, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(-1), int(inverse.max()) + 1


def _video_weights(rng: np.random.Generator, row_video: np.ndarray, n_videos: int) -> np.ndarray:
    """Row weights of one resample: each video drawn with replacement, its rows counted as often as it is."""
    counts = np.bincount(rng.integers(0, n_videos, size=n_videos), minlength=n_videos).astype(np.float64)
    return counts[row_video]


def shifted_interval(estimate: float, replicates: np.ndarray, level: float, floor: float | None) -> tuple[float, float]:
    """The replicates' percentile interval moved by their median bias so that it sits around ``estimate``."""
    tail = (1.0 - level) / 2.0
    low, median, high = np.quantile(replicates, [tail, 0.5, 1.0 - tail])
    bounds = (estimate + low - median, estimate + high - median)
    if floor is not None:
        bounds = (max(bounds[0], floor), max(bounds[1], floor))
    return float(bounds[0]), float(bounds[1])


class _FixedReferenceFrechet:
    """Fréchet distances of reweighted generated rows to a fixed reference, one eigen-decomposition each.

    With ``R = sqrt(S_ref)`` computed once and the rows mapped to ``Z = (X - mean) R``, the product
    ``R S* R`` of a resample is the weighted covariance of ``Z``; its non-zero eigenvalues are those of the
    smaller of the d x d scatter and the Gram matrix of the drawn rows, so a replicate costs
    ``min(n, d)^3`` instead of a matrix square root.
    """

    def __init__(self, rows: np.ndarray, reference: GaussianStats) -> None:
        self.centre = rows.mean(axis=0)
        self.x = rows - self.centre
        self.z = self.x @ sqrt_psd(reference.cov)
        self.reference = reference
        self.norms = np.einsum("ij,ij->i", self.x, self.x)

    def __call__(self, w: np.ndarray) -> float:
        total = float(w.sum())
        mean_x = w @ self.x / total
        trace = (float(w @ self.norms) - total * float(mean_x @ mean_x)) / (total - 1.0)
        diff = mean_x + self.centre - self.reference.mean
        keep = w > 0
        z, wk = self.z[keep], w[keep]
        mean_z = wk @ z / total
        centred = z - mean_z
        if z.shape[0] <= z.shape[1]:
            scaled = centred * np.sqrt(wk)[:, None]
            middle = scaled @ scaled.T
        else:
            middle = (centred * wk[:, None]).T @ centred
        values = np.linalg.eigvalsh((middle + middle.T) / 2.0 / (total - 1.0))
        root_trace = float(np.sqrt(np.clip(values, 0.0, None)).sum())
        value = float(diff @ diff) + trace + float(np.trace(self.reference.cov)) - 2.0 * root_trace
        return max(value, 0.0)


def bootstrap_frechet(
    generated: np.ndarray,
    reference: np.ndarray | GaussianStats,
    generated_groups: Sequence[object] | np.ndarray | None = None,
    reference_groups: Sequence[object] | np.ndarray | None = None,
    resamples: int = DISTANCE_RESAMPLES,
    seed: int = DISTANCE_SEED,
    level: float = 0.95,
    resample_reference: bool = False,
) -> tuple[float, Interval]:
    """The Fréchet distance of the two sets and its bootstrap interval (module docstring).

    ``reference`` is the reference rows, or only its statistics when it is not resampled.
    """
    gen = as_rows(generated)
    if resample_reference and isinstance(reference, GaussianStats):
        raise ValueError("resampling the reference needs its feature rows, not only its statistics")
    ref_rows = None if isinstance(reference, GaussianStats) else as_rows(reference)
    ref_stats = reference if isinstance(reference, GaussianStats) else gaussian_stats(ref_rows)
    estimate = frechet_distance(gaussian_stats(gen), ref_stats)
    rng = np.random.default_rng(seed)
    gen_video, gen_n = _groups(generated_groups, gen.shape[0])
    replicates = np.empty(resamples)
    if not resample_reference:
        replicate = _FixedReferenceFrechet(gen, ref_stats)
        for i in range(resamples):
            replicates[i] = replicate(_video_weights(rng, gen_video, gen_n))
    else:
        assert ref_rows is not None
        ref_video, ref_n = _groups(reference_groups, ref_rows.shape[0])
        for i in range(resamples):
            gen_w = _video_weights(rng, gen_video, gen_n)
            ref_w = _video_weights(rng, ref_video, ref_n)
            replicates[i] = frechet_distance(gaussian_stats(gen, gen_w), gaussian_stats(ref_rows, ref_w))
    low, high = shifted_interval(estimate, replicates, level, floor=0.0)
    resampled = "generated+reference" if resample_reference else "generated"
    return estimate, Interval(low, high, level, resamples, seed, resampled)


def _video_kernel_sums(x: np.ndarray, x_video: np.ndarray, nx: int, y: np.ndarray, y_video: np.ndarray, ny: int) -> np.ndarray:
    """``B[u, v]`` = the kernel summed over the rows of video u of x and of video v of y, block by block.

    Rows must be sorted by video (``_by_video``) so a block's rows of one video are contiguous.
    """
    sums = np.zeros((nx, ny))
    for start in range(0, x.shape[0], _BLOCK_ROWS):
        xs = slice(start, start + _BLOCK_ROWS)
        x_ids, x_starts = np.unique(x_video[xs], return_index=True)
        for other in range(0, y.shape[0], _BLOCK_ROWS):
            ys = slice(other, other + _BLOCK_ROWS)
            y_ids, y_starts = np.unique(y_video[ys], return_index=True)
            block = np.add.reduceat(polynomial_kernel(x[xs], y[ys]), x_starts, axis=0)
            sums[np.ix_(x_ids, y_ids)] += np.add.reduceat(block, y_starts, axis=1)
    return sums


def _by_video(rows: np.ndarray, groups: Sequence[object] | np.ndarray | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows sorted by video (stable), their video numbers and the number of videos."""
    video, n = _groups(groups, rows.shape[0])
    order = np.argsort(video, kind="stable")
    return rows[order], video[order], n


def _self_kernel_diagonal(x: np.ndarray, x_video: np.ndarray, nx: int) -> np.ndarray:
    """Per video, the sum of ``k(r, r)`` over its rows (the pairs an unbiased estimator leaves out)."""
    return np.bincount(x_video, weights=(np.einsum("ij,ij->i", x, x) / x.shape[1] + 1.0) ** 3, minlength=nx)


class _VideoKernel:
    """The unbiased MMD^2 of two sets whose videos are counted with multiplicities, from per-video kernel sums.

    The kernel sums are aggregated per video once (``V x V`` matrices), so a replicate is a few matrix-vector
    products. With multiplicities ``w`` the unbiased within-set term of the resampled set is
    ``(w'Bw - w'diag) / (W (W - 1))`` (every pair of distinct positions, copies of one row included) and the
    cross term ``w'C v / (W V)``, ``W``, ``V`` the resampled row counts.
    """

    def __init__(self, gen: np.ndarray, gen_groups: object, ref: np.ndarray, ref_groups: object) -> None:
        gen, gen_video, self.n_gen = _by_video(gen, gen_groups)  # type: ignore[arg-type]
        ref, ref_video, self.n_ref = _by_video(ref, ref_groups)  # type: ignore[arg-type]
        self.gen_rows = np.bincount(gen_video, minlength=self.n_gen).astype(np.float64)
        self.ref_rows = np.bincount(ref_video, minlength=self.n_ref).astype(np.float64)
        self.b_gen = _video_kernel_sums(gen, gen_video, self.n_gen, gen, gen_video, self.n_gen)
        self.b_ref = _video_kernel_sums(ref, ref_video, self.n_ref, ref, ref_video, self.n_ref)
        self.cross = _video_kernel_sums(gen, gen_video, self.n_gen, ref, ref_video, self.n_ref)
        self.d_gen = _self_kernel_diagonal(gen, gen_video, self.n_gen)
        self.d_ref = _self_kernel_diagonal(ref, ref_video, self.n_ref)

    @staticmethod
    def _within(b: np.ndarray, diag: np.ndarray, counts: np.ndarray, w: np.ndarray) -> tuple[float, float]:
        total = float(w @ counts)
        return (float(w @ b @ w) - float(w @ diag)) / (total * (total - 1.0)), total

    def mmd2(self, w: np.ndarray, v: np.ndarray) -> float:
        """The unbiased MMD^2 with generated video ``i`` counted ``w[i]`` times and reference video ``j`` ``v[j]``."""
        kgg, total_g = self._within(self.b_gen, self.d_gen, self.gen_rows, w)
        krr, total_r = self._within(self.b_ref, self.d_ref, self.ref_rows, v)
        return kgg + krr - 2.0 * float(w @ self.cross @ v) / (total_g * total_r)


def bootstrap_kid(
    generated: np.ndarray,
    reference: np.ndarray,
    generated_groups: Sequence[object] | np.ndarray | None = None,
    reference_groups: Sequence[object] | np.ndarray | None = None,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    resamples: int = DISTANCE_RESAMPLES,
    seed: int = DISTANCE_SEED,
    level: float = 0.95,
    resample_reference: bool = False,
) -> tuple[KidResult, Interval]:
    """KID (the subset estimate) and a bootstrap interval, from replicates of the full-set unbiased MMD^2
    over videos drawn with replacement, placed around the estimate (module docstring)."""
    gen, ref = as_rows(generated), as_rows(reference)
    result = kid(gen, ref, subsets, subset_size, seed)
    kernel = _VideoKernel(gen, generated_groups, ref, reference_groups)
    rng = np.random.default_rng(seed)
    every_ref = np.ones(kernel.n_ref)
    replicates = np.empty(resamples)
    for i in range(resamples):
        w = np.bincount(rng.integers(0, kernel.n_gen, size=kernel.n_gen), minlength=kernel.n_gen).astype(np.float64)
        v = every_ref
        if resample_reference:
            v = np.bincount(rng.integers(0, kernel.n_ref, size=kernel.n_ref), minlength=kernel.n_ref).astype(np.float64)
        replicates[i] = kernel.mmd2(w, v)
    low, high = shifted_interval(result.value, replicates, level, floor=None)
    resampled = "generated+reference" if resample_reference else "generated"
    return result, Interval(low, high, level, resamples, seed, resampled)


# --------------------------------------------------------------------------------------------- warnings
def small_sample_warning(
    column: str, kind: str, n_generated: int, n_reference: int, sample_size: int | None, unit: str
) -> str | None:
    """One line when either set has fewer rows than the size the metric's users report with; else None."""
    if sample_size is None or min(n_generated, n_reference) >= sample_size:
        return None
    sets = f"{n_generated} generated and {n_reference} reference {unit}"
    if kind == "kid":
        return (f"{column}: {sets}, fewer than the {sample_size} it is usually reported with: KID is unbiased at "
                "any size, but its interval is wide at this size")
    return (f"{column}: {sets}, fewer than the {sample_size} its users report with: a Fréchet distance from n "
            "samples is biased upward, by an amount that shrinks about as 1/n (FID_n ≈ FID_∞ + k/n, Chong & "
            f"Forsyth 2020), so this value is higher than it would be at n={sample_size} and comparable only with "
            "values at the same n; KID is unbiased at any n")
