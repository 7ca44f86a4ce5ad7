"""VLM rewards (``videoalign``, ``videoscore2``): videos/s and peak memory of each, and what a shared decode saves.

Weights are random (``weights=random``, explicit and labelled in the run outputs): speed and memory depend on
the architecture and on the number of visual tokens, not on the values of the weights, and nothing is
downloaded. ``--size tiny`` builds toy models (CPU, seconds); ``--size full`` builds the published
architectures (Qwen2-VL-2B for VideoReward, Qwen2.5-VL-7B for VideoScore2) with random init, for a GPU.
Every measurement goes through the real engine (decode once, token-budget batching, one model resident at a
time), so the figures include decoding and the frame rule.

1. Each reward alone, in a process of its own: videos/s = videos / wall time of its scoring run, the peak
   device memory on CUDA and the peak resident memory of that process (RSS: the model, decoded frames and
   activations on the CPU).
2. Both rewards in one run against the two in two runs: the ratio of wall times and of decodes (one run
   decodes each video once for both).

    python3 benchmarks/vlm_reward_throughput.py                                  # tiny, CPU, ~1 min
    python3 benchmarks/vlm_reward_throughput.py --size full --device cuda --videos 100 --frames 33 --height 480 --width 832
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gpu_check import peak_gib, reset_peak  # the sibling script: one definition of the CUDA peak

REWARDS = ("videoalign", "videoscore2")


def reward_options(size: str, precision: str) -> dict[str, dict[str, Any]]:
    """The random-weight options of each reward at this size."""
    return {name: {"weights": "random", "random_size": size, "precision": precision} for name in REWARDS}


def make_videos(directory: Path, n: int, frames: int, height: int, width: int, fps: float = 16.0) -> Path:
    from vbench_pref.synthetic import smooth_motion
    from vbench_pref.video import write_video

    directory.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        write_video(directory / f"video_{i:04d}.mp4", smooth_motion(frames, height, width, seed=i), fps=fps)
    (directory / "prompts.txt").write_text("".join(f"a red car drives in the rain, take {i}\n" for i in range(n)))
    return directory


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB on Linux


def timed_run(videos: Path, out: Path, options: dict[str, dict[str, Any]], device: str,
              batch_size: int, dtype: str = "float32") -> dict[str, float]:
    """Load and scoring seconds of one engine run, how many videos it decoded, and its process's peaks.

    Runs in a fresh process, so the peaks are this run's alone (a warm-up run first keeps first-call costs,
    imports and kernel selection, out of the scoring time).
    """
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(engine_run, (videos, out, options, device, batch_size, dtype))


def engine_run(videos: Path, out: Path, options: dict[str, dict[str, Any]], device: str, batch_size: int,
               dtype: str = "float32", warmup: bool = True) -> dict[str, Any]:
    """One scoring run in this process (after a one-video warm-up run unless ``warmup`` is False): its
    load and scoring seconds, decodes and peaks."""
    from vbench_pref import video as video_io
    from vbench_pref.scoring import ScoreOptions, run_scoring

    if warmup:
        warm = out.with_name(out.name + "-warmup")
        one = make_videos(warm / "videos", 1, *_shape(videos))
        run_scoring(ScoreOptions(videos=one, prompts=one / "prompts.txt", out=warm / "run",
                                 evaluators=list(options), evaluator_options=options, device=device,
                                 dtype=dtype, batch_size=batch_size))
    reset_peak()
    decodes_before = sum(video_io.DECODES.values())
    opts = ScoreOptions(videos=videos, prompts=videos / "prompts.txt", out=out, evaluators=list(options),
                        evaluator_options=options, device=device, dtype=dtype, batch_size=batch_size,
                        workers=4 if device == "cuda" else 2)
    started: list[float] = []
    start = time.perf_counter()
    run_scoring(opts, on_start=lambda *_: started.append(time.perf_counter()))
    end = time.perf_counter()
    return {"load_s": started[0] - start, "score_s": end - started[0],
            "decodes": float(sum(video_io.DECODES.values()) - decodes_before),
            "peak_device_gib": peak_gib(), "peak_rss_gib": peak_rss_gib()}


def _shape(videos: Path) -> tuple[int, int, int]:
    """(frames, height, width) of the first video in the folder, for a warm-up video like it."""
    import av

    with av.open(str(sorted(videos.glob("*.mp4"))[0])) as container:
        stream = container.streams.video[0]
        return int(stream.frames), int(stream.height), int(stream.width)


def measure(n: int, frames: int, height: int, width: int, size: str, device: str, precision: str,
            batch_size: int, work: Path, rewards: Sequence[str] = REWARDS, dtype: str = "float32") -> dict[str, Any]:
    videos = make_videos(work / "videos", n, frames, height, width)
    options = {name: opts for name, opts in reward_options(size, precision).items() if name in rewards}
    figures: dict[str, Any] = {"videos": n, "frames": frames, "height": height, "width": width, "size": size,
                               "device": device, "precision": precision, "dtype": dtype, "random_weights": True}
    separate = 0.0
    for name in options:
        run = timed_run(videos, work / name, {name: options[name]}, device, batch_size, dtype)
        separate += run["score_s"]
        figures[name] = {**run, "videos_per_s": n / run["score_s"], "options": options[name]}
    if len(options) > 1:
        together = timed_run(videos, work / "together", options, device, batch_size, dtype)
        figures["together"] = {**together, "videos_per_s": n / together["score_s"],
                               "wall_ratio_two_runs_over_one": separate / together["score_s"],
                               "decodes_two_runs": float(2 * n), "decodes_one_run": together["decodes"]}
    return figures


def report(figures: dict[str, Any]) -> str:
    gib = lambda v: "n/a" if v is None else f"{v:.2f} GiB"  # noqa: E731
    lines = [f"{figures['videos']} videos x {figures['frames']} frames at {figures['height']}x{figures['width']}, "
             f"{figures['size']} models with random weights, {figures['device']}, --dtype {figures['dtype']}, "
             f"precision {figures['precision']}"]
    for name in REWARDS:
        if name in figures:
            f = figures[name]
            lines.append(f"  {name:<12} {f['videos_per_s']:.2f} videos/s (load {f['load_s']:.1f} s), "
                         f"peak device {gib(f['peak_device_gib'])}, peak RSS {gib(f['peak_rss_gib'])}")
    if "together" in figures:
        t = figures["together"]
        lines.append(f"  both in one run: {t['videos_per_s']:.2f} videos/s; two runs take "
                     f"{t['wall_ratio_two_runs_over_one']:.2f}x the time of one and decode "
                     f"{t['decodes_two_runs']:.0f} videos instead of {t['decodes_one_run']:.0f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("tiny", "full"), default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="run", help="the rewards' precision option (run: the run's --dtype)")
    parser.add_argument("--dtype", help="the run's --dtype (default: bfloat16 on CUDA, else float32)")
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rewards", nargs="+", choices=REWARDS, default=list(REWARDS))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vlm-rewards-") as tmp:
        dtype = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")
        figures = measure(args.videos, args.frames, args.height, args.width, args.size, args.device,
                          args.precision, args.batch_size, Path(tmp), args.rewards, dtype)
    print(report(figures))


if __name__ == "__main__":
    sys.exit(main())
