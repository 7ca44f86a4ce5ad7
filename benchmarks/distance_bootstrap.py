"""Cost of the distances' bootstrap intervals: one replicate of the fast path against the direct computation.

A Fréchet replicate with the reference fixed maps the generated rows through ``sqrt(S_ref)`` once, so each
replicate is one eigenvalue problem of size min(n, d) instead of a fresh matrix square root of a d x d
matrix plus the product's eigenvalues; KID replicates reuse per-video kernel sums. Prints seconds per
replicate and the ratios.

    python3 benchmarks/distance_bootstrap.py                       # FVD-sized: 2048 videos, d=400 (I3D logits)
    python3 benchmarks/distance_bootstrap.py --dim 2048 --videos 512 --frames 4   # FID-like per-frame rows
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from vbench_pref.distribution.distance import (
    _FixedReferenceFrechet,
    _VideoKernel,
    frechet_distance,
    gaussian_stats,
    mmd2_unbiased,
)


def timed(function, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=2048)
    parser.add_argument("--frames", type=int, default=1, help="feature rows per video")
    parser.add_argument("--dim", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.videos * args.frames
    gen = rng.normal(size=(n, args.dim)) @ rng.normal(size=(args.dim, args.dim)) / np.sqrt(args.dim)
    ref = rng.normal(size=(n, args.dim)) @ rng.normal(size=(args.dim, args.dim)) / np.sqrt(args.dim)
    groups = np.repeat(np.arange(args.videos), args.frames)
    ref_stats = gaussian_stats(ref)

    def weights() -> np.ndarray:
        return np.bincount(rng.integers(0, args.videos, args.videos), minlength=args.videos)[groups].astype(float)

    fast = _FixedReferenceFrechet(gen, ref_stats)
    fast_s = timed(lambda: fast(weights()), args.repeats)
    direct_s = timed(lambda: frechet_distance(gaussian_stats(gen, weights()), ref_stats), args.repeats)
    print(f"{args.videos} videos x {args.frames} rows, d={args.dim}")
    print(f"frechet replicate: direct {direct_s:.3f} s, fast {fast_s:.3f} s, ratio {direct_s / fast_s:.1f}x")

    start = time.perf_counter()
    kernel = _VideoKernel(gen, groups, ref, groups)
    setup_s = time.perf_counter() - start
    every = np.ones(args.videos)
    kid_fast_s = timed(lambda: kernel.mmd2(np.bincount(rng.integers(0, args.videos, args.videos), minlength=args.videos).astype(float), every), args.repeats)

    def kid_direct() -> None:
        picks = np.repeat(np.arange(n), weights().astype(int))
        mmd2_unbiased(gen[picks][:n], ref)

    kid_direct_s = timed(kid_direct, args.repeats)
    print(f"kid replicate: direct {kid_direct_s:.3f} s, fast {kid_fast_s:.4f} s (after {setup_s:.2f} s of kernel sums), "
          f"ratio {kid_direct_s / kid_fast_s:.0f}x")


if __name__ == "__main__":
    main()
