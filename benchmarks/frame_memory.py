"""Peak memory (RSS) of scoring one long video: 3000 frames of 64 x 64, the case where frame views cost most.

A CLIP-family view upsamples every frame to the model's input size (64 x 64 -> 224 x 224 is 12x the pixels),
so a view materialised for the whole video, or a float copy of it, dwarfs the decoded video itself. Each
evaluator is scored in its own fresh process (peak RSS is per process), through the real engine, with
random weights (memory depends on the architecture, not on the values of the weights).

    python3 benchmarks/frame_memory.py                        # clip_score and temporal_flicker
    python3 benchmarks/frame_memory.py --memory-budget 1GB    # the same under a budget

``--python`` scores with another interpreter (e.g. one whose ``vbench_pref`` is an older checkout), which
is how a before/after comparison is made: the child code uses only what both versions have.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from vbench_pref.scoring import ScoreOptions, run_scoring

videos, out, evaluator, options, budget = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4]), sys.argv[5]
extra = {} if budget == "none" else {"memory_budget": budget}
opts = ScoreOptions(videos=videos, out=out, evaluators=[evaluator], evaluator_options={evaluator: options},
                    prompts=videos / "prompts.txt", device="cpu", **extra)
start = time.perf_counter()
result = run_scoring(opts)
seconds = time.perf_counter() - start
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_rss_gb": peak_kib * 1024 / 1e9, "seconds": seconds, "failed": result.n_failed}))
"""

EVALUATORS = {
    "clip_score": {"model": "ViT-B-32", "weights": "random"},
    "temporal_flicker": {},
}


def make_video(directory: Path, frames: int, size: int) -> None:
    from vbench_pref.synthetic import smooth_motion
    from vbench_pref.video import write_video

    directory.mkdir(parents=True, exist_ok=True)
    write_video(directory / "long.mp4", smooth_motion(frames, size, size, seed=0), fps=16)
    (directory / "prompts.txt").write_text("a texture drifting slowly to the right\n")


def measure(python: str, videos: Path, out: Path, evaluator: str, budget: str | None) -> dict:
    args = [python, "-c", CHILD, str(videos), str(out), evaluator, json.dumps(EVALUATORS[evaluator]), budget or "none"]
    # cwd: not this checkout, so the interpreter imports its own vbench_pref
    process = subprocess.run(args, capture_output=True, text=True, cwd=out.parent,
                             env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if process.returncode != 0:
        raise SystemExit(f"{evaluator}: the scoring process failed:\n{process.stderr[-2000:]}")
    return json.loads(process.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--videos", type=Path, help="reuse this folder (long.mp4 + prompts.txt) instead of writing one")
    parser.add_argument("--python", default=sys.executable, help="interpreter whose vbench_pref scores")
    parser.add_argument("--memory-budget", help="e.g. 1GB; omitted: the engine's default")
    parser.add_argument("--evaluators", nargs="+", default=list(EVALUATORS), choices=list(EVALUATORS))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        videos = args.videos or Path(tmp) / "videos"
        if args.videos is None:
            make_video(videos, args.frames, args.size)
        figures = {
            name: measure(args.python, videos, Path(tmp) / f"run-{name}", name, args.memory_budget)
            for name in args.evaluators
        }
    for name, figure in figures.items():
        print(f"{name:18s} peak RSS {figure['peak_rss_gb']:.2f} GB  ({figure['seconds']:.1f} s)")
    if args.json is not None:
        args.json.write_text(json.dumps({"frames": args.frames, "size": args.size, "budget": args.memory_budget,
                                         "python": args.python, "figures": figures}, indent=2) + "\n")


if __name__ == "__main__":
    main()
