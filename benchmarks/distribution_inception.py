"""FID Inception-v3 feature extractor: frames/s on the CPU (or a device), full-size network, random weights.

Weights are random (speed depends on shapes, not values; nothing is downloaded). Frames are uint8 video
frames of ``--height`` x ``--width``; each convention is timed end to end through ``frame_features``
(resize + normalise + network, ``--batch-size`` frames per forward), and its two parts alone: the resize
(clean-fid's per-channel PIL bicubic, or pytorch-fid's bilinear interpolate) and the network forward on
ready 299 x 299 inputs. The ratios say which part bounds the extractor.

    python3 benchmarks/distribution_inception.py                       # 32 frames of 480x832, batch 16
    python3 benchmarks/distribution_inception.py --frames 64 --threads 8 --device cuda
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from vbench_pref.distribution import inception as I


def frames_per_second(fn, n_frames: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return n_frames / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes; the best is reported")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    g = np.random.default_rng(0)
    video = g.integers(0, 256, (args.frames, args.height, args.width, 3), dtype=np.uint8)
    model = I.random_network(seed=0, device=args.device)
    with torch.inference_mode():  # warm-up: kernels, allocator
        model(I.preprocess(video[:2]).to(args.device))
    print(f"FID Inception-v3, random weights, {args.frames} frames {args.height}x{args.width} uint8, batch "
          f"{args.batch_size}, {args.device}, {torch.get_num_threads()} threads")
    ready = torch.rand(args.batch_size, 3, I.INPUT_SIZE, I.INPUT_SIZE, device=args.device) * 2 - 1

    def network_only() -> None:
        with torch.inference_mode():
            for _ in range(0, args.frames, args.batch_size):
                model(ready)

    n_network = -(-args.frames // args.batch_size) * args.batch_size
    network = frames_per_second(network_only, n_network, args.repeats)
    print(f"  network forward alone      {network:8.2f} frames/s")
    for convention in I.CONVENTIONS:
        resize = frames_per_second(lambda: I.resize_frames(video, convention), args.frames, args.repeats)
        total = frames_per_second(
            lambda: I.frame_features(model, video, convention=convention, batch_size=args.batch_size),
            args.frames, args.repeats,
        )
        print(f"  {convention:<12} resize alone {resize:8.2f} frames/s; end to end {total:8.2f} frames/s "
              f"(resize time / network time = {network / resize:.3f}; end to end / network alone = "
              f"{total / network:.3f})")


if __name__ == "__main__":
    main()
