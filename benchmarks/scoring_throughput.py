"""Engine vs naive loop: decodes per video and wall time, measured in one run on the same videos.

The naive loop is how VBench runs its dimensions: each evaluator opens and decodes every video itself,
one video at a time. The engine decodes each video once into every evaluator's frame view, batches
views across videos and decodes ahead in threads while evaluators compute.

Three evaluators: the built-in ``temporal_flicker`` (all frames, native size) and two light per-frame
evaluators defined here as stand-ins for CLIP-family models (8 frames at 224 px; 16 frames at 112 px),
so that the measurement is about the pipeline rather than about one model's FLOPs.
``--raft`` adds ``warp_flicker`` with a random-weight raft_small (explicit smoke-test weights) as a
fourth, compute-heavy evaluator.

    python3 benchmarks/scoring_throughput.py [--videos 24] [--frames 33] [--size 256] [--raft]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vbench_pref import registry, video
from vbench_pref.evaluator import Evaluator, ScoreSpec, VideoSample
from vbench_pref.scoring import ScoreOptions, run_scoring
from vbench_pref.synthetic import flickering, smooth_motion
from vbench_pref.video import FrameSpec, decode_video, write_video


class Colourfulness(Evaluator):
    """Hasler-Süsstrunk colourfulness of 8 frames at 224 px (a stand-in for a per-frame image model)."""

    name = "bench_colourfulness"
    version = "1"
    scores = (ScoreSpec("colourfulness", True, (0.0, float("inf"))),)
    frames = FrameSpec(sampling="count", count=8, resize="short_side_crop", size=224)
    reference = "Hasler & Süsstrunk 2003"

    def score(self, batch):
        values = []
        for sample in batch:
            rgb = sample.frames.float()
            rg = rgb[..., 0] - rgb[..., 1]
            yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
            spread = torch.sqrt(rg.var() + yb.var())
            centre = torch.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
            values.append(float(spread + 0.3 * centre))
        return {"colourfulness": np.array(values)}


class TinyConvEmbedding(Evaluator):
    """A fixed random 3-layer conv net on 16 frames at 112 px, batched across videos."""

    name = "bench_conv_embedding"
    version = "1"
    scores = (ScoreSpec("norm", True),)
    frames = FrameSpec(sampling="count", count=16, resize="short_side_crop", size=112)
    reference = "benchmark stand-in"

    def load(self, device="cpu", dtype=torch.float32):
        super().load(device, dtype)
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, stride=2), torch.nn.ReLU(),
            torch.nn.Conv2d(16, 32, 3, stride=2), torch.nn.ReLU(),
            torch.nn.Conv2d(32, 64, 3, stride=2), torch.nn.AdaptiveAvgPool2d(1),
        ).eval()

    @torch.inference_mode()
    def score(self, batch):
        frames = torch.cat([s.frames for s in batch]).permute(0, 3, 1, 2).float() / 255.0
        embeddings = self.net(frames).flatten(1).reshape(len(batch), -1, 64).mean(dim=1)
        return {"norm": embeddings.norm(dim=1).numpy()}


def make_videos(directory: Path, count: int, frames: int, size: int) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        maker = smooth_motion if i % 2 == 0 else flickering
        array = maker(frames, size, size, seed=i)
        path = directory / f"video_{i:03d}.mp4"
        write_video(path, array, fps=16)
        paths.append(path)
    return paths


def naive_loop(evaluators: list[Evaluator], paths: list[Path]) -> None:
    """Each evaluator decodes every video itself, one video at a time."""
    for evaluator in evaluators:
        spec = evaluator.frame_spec()
        for path in paths:
            decoded = decode_video(path, [spec])
            frames, stamps = decoded.view(spec)
            sample = VideoSample(video=path.name, frames=frames, timestamps=stamps, fps=decoded.fps, prompt="")
            evaluator.score([sample])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--frames", type=int, default=33)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--raft", action="store_true", help="add warp_flicker (random raft_small weights)")
    args = parser.parse_args()

    registry.register(Colourfulness)
    registry.register(TinyConvEmbedding)
    names = ["temporal_flicker", "bench_colourfulness", "bench_conv_embedding"]
    options: dict[str, dict[str, str]] = {}
    if args.raft:
        names.append("warp_flicker")
        options["warp_flicker"] = {"model": "raft_small", "weights": "random"}

    with tempfile.TemporaryDirectory() as tmp:
        paths = make_videos(Path(tmp) / "videos", args.videos, args.frames, args.size)
        print(f"{len(paths)} videos, {args.frames} frames, {args.size}x{args.size}; evaluators: {', '.join(names)}"
              + ("  [warp_flicker: RANDOM weights, smoke test]" if args.raft else ""))

        evaluators = [registry.get(n)(**options.get(n, {})) for n in names]
        for evaluator in evaluators:
            evaluator.load("cpu")
        video.DECODES.clear()
        start = time.perf_counter()
        naive_loop(evaluators, paths)
        naive_s = time.perf_counter() - start
        naive_decodes = sum(video.DECODES.values()) / len(paths)

        video.DECODES.clear()
        start = time.perf_counter()
        run_scoring(ScoreOptions(videos=Path(tmp) / "videos", out=Path(tmp) / "run", evaluators=names,
                                 evaluator_options=options, device="cpu", batch_size=args.batch_size))
        engine_s = time.perf_counter() - start
        engine_decodes = sum(video.DECODES.values()) / len(paths)

    print(f"naive loop : {naive_decodes:.2f} decodes/video, {naive_s:7.2f} s")
    print(f"engine     : {engine_decodes:.2f} decodes/video, {engine_s:7.2f} s  (includes loading evaluators and writing the run)")
    print(f"speed-up   : {naive_s / engine_s:.2f}x (naive / engine, same run)")


if __name__ == "__main__":
    main()
