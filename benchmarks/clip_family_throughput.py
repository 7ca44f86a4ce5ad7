"""CLIP-family evaluators: frames/s of each, and what the shared backbone saves, measured in one run.

Weights are random (``weights=random``, explicit and labelled in the run outputs): throughput depends on
the architecture, not on the values of the weights, and nothing is downloaded. Every measurement goes
through the real engine (decode once, batching, one residency group on the device at a time).

1. Each evaluator alone: frames/s = frames scored / wall time of its run (decode included), and on CUDA
   the peak device memory.
2. Shared backbone: ``clip_score`` with ViT-L-14 (``view=tensor``, aesthetic's frame view) and
   ``aesthetic`` scored together in one run, against the same two scored in two runs; the ratio of wall
   times and of image-encoder passes.

Full size (what the GPU check uses):

    python3 benchmarks/clip_family_throughput.py --device cuda --dtype bfloat16 --videos 100 --frames 16

On a CPU, smaller backbones keep it to a minute (the ratio is about the pipeline, not the model):

    python3 benchmarks/clip_family_throughput.py --clip-model ViT-B-32 --hps-model ViT-B-32 --videos 8
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import torch

from vbench_pref.openclip import ClipBackbone
from vbench_pref.scoring import ScoreOptions, run_scoring
from vbench_pref.synthetic import smooth_motion
from vbench_pref.video import write_video


def make_videos(directory: Path, n: int, frames: int, size: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        write_video(directory / f"video_{i:04d}.mp4", smooth_motion(frames, size, size, seed=i), fps=16)
    (directory / "prompts.txt").write_text("".join(f"a synthetic test scene number {i}\n" for i in range(n)))


class EncoderPasses:
    """Counts frames through every ClipBackbone's image encoder (the work the shared backbone saves)."""

    def __init__(self) -> None:
        self.frames = 0
        self._original = ClipBackbone._encode_batches

    def __enter__(self) -> EncoderPasses:
        counter = self

        def counting(backbone, batches, *args, **kwargs):
            def counted():
                for frames in batches:
                    counter.frames += int(frames.shape[0])
                    yield frames

            return counter._original(backbone, counted(), *args, **kwargs)

        ClipBackbone._encode_batches = counting  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc) -> None:
        ClipBackbone._encode_batches = self._original  # type: ignore[method-assign]


def run(videos: Path, out: Path, evaluators: dict[str, dict], args: argparse.Namespace) -> tuple[float, float, int, float]:
    """(load seconds, scoring seconds, encoder frames, peak device GiB) of one scoring run.

    Scoring time runs from the engine's start (weights loaded) to the end of the run: decode included.
    """
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    opts = ScoreOptions(videos=videos, prompts=videos / "prompts.txt", out=out, evaluators=list(evaluators),
                        evaluator_options=evaluators, device=args.device, dtype=args.dtype,
                        batch_size=args.batch_size, workers=args.workers)
    started: list[float] = []
    with EncoderPasses() as passes:
        start = time.perf_counter()
        run_scoring(opts, on_start=lambda *_: started.append(time.perf_counter()))
        end = time.perf_counter()
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() and args.device != "cpu" else float("nan")
    return started[0] - start, end - started[0], passes.frames, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=100)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--clip-model", default="ViT-L-14", help="clip_score and aesthetic backbone")
    parser.add_argument("--hps-model", default="ViT-H-14")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    clip = {"model": args.clip_model, "weights": "random"}
    # aesthetic's view (VBench clip_transform), so the two share frame embeddings; clip_score's default
    # PIL view (appearance_style's) is another view and would be embedded separately
    clip_shared = {**clip, "view": "tensor"}
    aesthetic = {"model": args.clip_model, "clip_weights": "random", "head_weights": "random"}
    hps = {"model": args.hps_model, "weights": "random"}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        videos = root / "videos"
        make_videos(videos, args.videos, args.frames, args.size)
        n_frames = args.videos * args.frames
        print(f"{args.videos} videos x {args.frames} frames at {args.size}px; device {args.device}, {args.dtype}; "
              "random weights (labelled in the run outputs)")
        run(videos, root / "warmup", {"clip_score": {**clip, "num_frames": 1}}, args)  # first-call costs

        print(f"\n{'evaluator':<26}{'backbone':<11}{'load s':>8}{'score s':>9}{'frames/s':>10}{'peak GiB':>10}")
        alone: dict[str, float] = {}
        for name, options, arch in (("clip_score", clip, args.clip_model), ("aesthetic", aesthetic, args.clip_model),
                                    ("hpsv2", hps, args.hps_model)):
            load, seconds, _, peak = run(videos, root / name, {name: options}, args)
            alone[name] = seconds
            print(f"{name:<26}{arch:<11}{load:>8.2f}{seconds:>9.2f}{n_frames / seconds:>10.1f}{peak:>10.2f}")

        load, together, passes_together, peak = run(
            videos, root / "together", {"clip_score": clip_shared, "aesthetic": aesthetic}, args
        )
        _, alone["clip_score_tensor"], _, _ = run(videos, root / "clip_tensor", {"clip_score": clip_shared}, args)
        separate = alone["clip_score_tensor"] + alone["aesthetic"]
        print(f"{'clip_score + aesthetic':<26}{args.clip_model:<11}{load:>8.2f}{together:>9.2f}"
              f"{2 * n_frames / together:>10.1f}{peak:>10.2f}")
        print("\nshared backbone (clip_score + aesthetic in one run vs in two runs; scoring time, loads excluded):")
        print(f"  image-encoder frames: {passes_together} vs {2 * n_frames} -> {2 * n_frames / passes_together:.2f}x less work")
        print(f"  scoring time: {together:.2f} s vs {separate:.2f} s -> {separate / together:.2f}x faster")
    print(f"\nprocess peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
