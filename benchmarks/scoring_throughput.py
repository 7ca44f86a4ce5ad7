"""Engine vs naive loop: decodes per video and wall time, measured in one run on the same videos.

The naive loop is how VBench runs its dimensions: each evaluator opens and decodes every video itself,
one video at a time. The engine decodes each video once into every evaluator's frame view, batches
views across videos and decodes ahead in threads while evaluators compute.

Three evaluators: the built-in ``temporal_flicker`` (all frames, native size) and two light per-frame
evaluators defined here as stand-ins for CLIP-family models (8 frames at 224 px; 16 frames at 112 px),
so that the measurement is about the pipeline rather than about one model's FLOPs.
``--raft`` adds ``warp_flicker`` with a random-weight raft_small (explicit smoke-test weights) as a
fourth, compute-heavy evaluator.

The engine's overhead is its scoring time (evaluators loaded, decode and compute, journal and results
written) over the least that work can cost done by hand: one decode of each video into every view plus
each evaluator's compute alone on those views, in the engine's batches, one after the other (goal <= 1.2;
below 1 when decoding in threads overlaps compute). Naive over that least cost is the ceiling of the
speed-up for an engine that does not overlap decoding with compute. ``--repeats`` runs the three in turn several times, so
that machine load shows as spread between the runs rather than as a bias of one ratio.

    python3 benchmarks/scoring_throughput.py [--videos 24] [--frames 33] [--size 256] [--raft] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
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


class Clock:
    """Wall and CPU seconds (every thread of this process) since ``start``: on a machine shared with other
    work, wall time favours whatever runs more threads; CPU time shows the work done."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def one_decode_and_compute(
    evaluators: list[Evaluator], paths: list[Path], batch_size: int
) -> tuple[tuple[float, float], dict[str, tuple[float, float]]]:
    """((wall, CPU) seconds to decode each video once into every view, the same of each evaluator's compute)."""
    specs = list(dict.fromkeys(e.frame_spec() for e in evaluators))
    clock = Clock()
    prepared = []
    for path in paths:
        decoded = decode_video(path, specs)
        prepared.append((path, decoded.fps, {spec: decoded.view(spec) for spec in specs}))
    decode = clock.lap()
    compute: dict[str, tuple[float, float]] = {}
    for evaluator in evaluators:
        spec = evaluator.frame_spec()
        samples = [VideoSample(video=path.name, frames=views[spec][0], timestamps=views[spec][1], fps=fps, prompt="")
                   for path, fps, views in prepared]
        clock = Clock()
        for i in range(0, len(samples), batch_size):
            evaluator.score(samples[i : i + batch_size])
        compute[evaluator.name] = clock.lap()
    return decode, compute


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--frames", type=int, default=33)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--raft", action="store_true", help="add warp_flicker (random raft_small weights)")
    parser.add_argument("--repeats", type=int, default=1, help="measure everything this many times, in turn")
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
        ratios: dict[str, list[float]] = {
            "speed-up": [], "overhead": [], "ceiling": [], "speed-up CPU": [], "overhead CPU": [], "ceiling CPU": [],
        }
        for repeat in range(args.repeats):
            video.DECODES.clear()
            clock = Clock()
            naive_loop(evaluators, paths)
            naive = clock.lap()
            naive_decodes = sum(video.DECODES.values()) / len(paths)

            video.DECODES.clear()
            started: list[Clock] = []
            clock = Clock()
            run_scoring(ScoreOptions(videos=Path(tmp) / "videos", out=Path(tmp) / f"run{repeat}", evaluators=names,
                                     evaluator_options=options, device="cpu", batch_size=args.batch_size),
                        on_start=lambda *_: started.append(Clock()))
            engine, engine_run = clock.lap(), started[0].lap()
            engine_decodes = sum(video.DECODES.values()) / len(paths)

            decode, compute = one_decode_and_compute(evaluators, paths, args.batch_size)
            floor = tuple(decode[i] + sum(c[i] for c in compute.values()) for i in (0, 1))
            for suffix, i in (("", 0), (" CPU", 1)):
                ratios["speed-up" + suffix].append(naive[i] / engine[i])
                ratios["overhead" + suffix].append(engine_run[i] / floor[i])
                ratios["ceiling" + suffix].append(naive[i] / floor[i])
            print(f"\nrun {repeat + 1}/{args.repeats} (seconds: wall / CPU)")
            print(f"naive loop : {naive_decodes:.2f} decodes/video, {naive[0]:7.2f} / {naive[1]:7.2f}")
            print(f"engine     : {engine_decodes:.2f} decodes/video, {engine[0]:7.2f} / {engine[1]:7.2f}  (includes loading "
                  f"evaluators and writing the run; {engine_run[0]:.2f} / {engine_run[1]:.2f} after loading)")
            print(f"by hand    : one decode {decode[0]:.2f} / {decode[1]:.2f} + compute "
                  + " + ".join(f"{name} {c[0]:.2f} / {c[1]:.2f}" for name, c in compute.items())
                  + f" = {floor[0]:.2f} / {floor[1]:.2f}")
            print(f"speed-up   : {ratios['speed-up'][-1]:.2f}x wall, {ratios['speed-up CPU'][-1]:.2f}x CPU "
                  "(naive / engine, same run)")
            print(f"overhead   : {ratios['overhead'][-1]:.2f} wall, {ratios['overhead CPU'][-1]:.2f} CPU "
                  "(engine after loading / (one decode + each evaluator alone))")
            print(f"ceiling    : {ratios['ceiling'][-1]:.2f}x wall, {ratios['ceiling CPU'][-1]:.2f}x CPU (naive / (one decode + "
                  "each evaluator alone): the speed-up of an engine with no overhead and no overlap)")

    if args.repeats > 1:
        print()
        for label, values in ratios.items():
            print(f"{label:<13}: median {statistics.median(values):.2f}, min {min(values):.2f}, max {max(values):.2f} "
                  f"over {len(values)} runs")


if __name__ == "__main__":
    main()
