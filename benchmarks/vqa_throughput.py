"""Video quality networks (``dover``, ``fast_vqa``): videos/s and peak memory of each variant, and the reference's.

Weights are random (``weights=random``, ``random_size=full``: the published architectures), since speed and
memory depend on shapes, not values; nothing is downloaded. Every measurement goes through the real engine
(one decode of every frame, views built on the evaluator's device, videos batched per forward pass), each
variant in a fresh process: videos/s = videos / scoring wall time (model build excluded), the peak
resident memory of that process and the peak CUDA memory.

DOVER's README gives 3.6 s/video (DOVER) and 1.4 s/video (DOVER-Mobile) on CPU. With ``--reference-python``
(an interpreter that can import the reference code: torch, decord, timm, einops, yaml) and the checkouts
``--dover-repo`` (VQAssessment/DOVER), the same videos go through the reference's own per-video steps of
``evaluate_one_video.py`` on the same machine: its view decomposition (decord decode), normalisation and
network forward (float32, random init; its ImageNet initialisation is skipped, no download), timed per
video after the model is built.

    python3 benchmarks/vqa_throughput.py                          # CPU, 3 videos x 64 frames at 540x960
    python3 benchmarks/vqa_throughput.py --reference-python /path/venv/bin/python --dover-repo /path/DOVER
    python3 benchmarks/vqa_throughput.py --device cuda --videos 100 --batch-size 16
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmarks, run as scripts

from vlm_reward_throughput import engine_run, make_videos  # noqa: E402

# label: (evaluator, options besides the random full-size weights)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "dover": ("dover", {"variant": "dover"}),
    "dover_mobile": ("dover", {"variant": "dover_mobile"}),
    "fast_vqa_b": ("fast_vqa", {"variant": "fast_vqa_b"}),
    "faster_vqa": ("fast_vqa", {"variant": "faster_vqa"}),
}
REFERENCE_S_PER_VIDEO = {"dover": 3.6, "dover_mobile": 1.4}  # DOVER's README, CPU
REFERENCE_YML = {"dover": "dover.yml", "dover_mobile": "dover-mobile.yml"}

# Run by --reference-python: the reference's own per-video steps (evaluate_one_video.py), timed per video.
REFERENCE_DRIVER = r"""
import json, sys, time
import torch, yaml
repo, yml, threads, *videos = sys.argv[1:]
torch.set_num_threads(int(threads))
sys.path.insert(0, repo)
from dover.datasets import UnifiedFrameSampler, spatial_temporal_view_decomposition
import dover.models.conv_backbone as conv_backbone
import dover.models.evaluator as evaluator
# random init instead of downloading ImageNet weights (the checkpoint would overwrite them anyway)
evaluator.convnext_3d_tiny = lambda pretrained=False, **k: conv_backbone.convnext_3d_tiny(pretrained=False, **k)
opt = yaml.safe_load(open(f"{repo}/{yml}"))
model = evaluator.DOVER(**opt["model"]["args"]).eval()
types = opt["data"]["val-l1080p"]["args"]["sample_types"]
samplers = {k: UnifiedFrameSampler(o["clip_len"], o["num_clips"], o["frame_interval"]) if "t_frag" not in o
            else UnifiedFrameSampler(o["clip_len"] // o["t_frag"], o["t_frag"], o["frame_interval"], o["num_clips"])
            for k, o in types.items()}
mean, std = torch.FloatTensor([123.675, 116.28, 103.53]), torch.FloatTensor([58.395, 57.12, 57.375])
seconds = []
for path in videos:
    start = time.perf_counter()
    views, _ = spatial_temporal_view_decomposition(path, types, samplers)
    for k, v in views.items():
        n = types[k].get("num_clips", 1)
        views[k] = ((v.permute(1, 2, 3, 0) - mean) / std).permute(3, 0, 1, 2).reshape(v.shape[0], n, -1, *v.shape[2:]).transpose(0, 1)
    with torch.no_grad():
        [r.mean().item() for r in model(views)]
    seconds.append(time.perf_counter() - start)
print(json.dumps({"s_per_video": seconds}))
"""


def variant_options(label: str, precision: str) -> dict[str, dict[str, Any]]:
    evaluator, options = VARIANTS[label]
    return {evaluator: {"weights": "random", "random_size": "full", "precision": precision, **options}}


def measure_ours(videos: Path, work: Path, labels: Sequence[str], device: str, dtype: str, precision: str,
                 batch_size: int) -> dict[str, dict[str, Any]]:
    n = len(list(videos.glob("*.mp4")))
    out = {}
    context = multiprocessing.get_context("spawn")
    for label in labels:
        options = variant_options(label, precision)
        with context.Pool(1) as pool:  # a fresh process: its peaks are this variant's alone
            run = pool.apply(engine_run, (videos, work / label, options, device, batch_size, dtype, False))
        out[label] = {**run, "videos_per_s": n / run["score_s"], "s_per_video": run["score_s"] / n,
                      "options": options}
    return out


def measure_reference(python: str, repo: Path, videos: Path, labels: Sequence[str], threads: int) -> dict[str, Any]:
    out = {}
    paths = [str(p) for p in sorted(videos.glob("*.mp4"))]
    for label in labels:
        if label not in REFERENCE_YML:
            continue
        done = subprocess.run([python, "-c", REFERENCE_DRIVER, str(repo), REFERENCE_YML[label], str(threads), *paths],
                              capture_output=True, text=True)
        if done.returncode != 0:
            out[label] = {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
            continue
        seconds = json.loads(done.stdout.strip().splitlines()[-1])["s_per_video"]
        out[label] = {"s_per_video": sum(seconds) / len(seconds), "per_video": seconds}
    return out


def report(figures: dict[str, Any]) -> str:
    gib = lambda v: "n/a" if v is None else f"{v:.2f} GiB"  # noqa: E731
    lines = [f"{figures['videos']} videos x {figures['frames']} frames at {figures['height']}x{figures['width']}, "
             f"full-size networks with random weights, {figures['device']} ({figures['threads']} threads), "
             f"--dtype {figures['dtype']}, precision {figures['precision']}, batch {figures['batch_size']}"]
    for label, f in figures["ours"].items():
        line = (f"  {label:<13} {f['videos_per_s']:.3f} videos/s = {f['s_per_video']:.2f} s/video, "
                f"peak RSS {gib(f['peak_rss_gib'])}, peak device {gib(f['peak_device_gib'])}")
        ref = figures["reference"].get(label, {})
        if "s_per_video" in ref:
            line += f"; reference here {ref['s_per_video']:.2f} s/video ({ref['s_per_video'] / f['s_per_video']:.2f}x ours)"
        elif "error" in ref:
            line += f"; reference failed: {ref['error']}"
        if label in REFERENCE_S_PER_VIDEO:
            line += f"; README {REFERENCE_S_PER_VIDEO[label]} s/video"
        lines.append(line)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", help="the run's --dtype (default: bfloat16 on CUDA, else float32)")
    parser.add_argument("--precision", default="run", help="the evaluators' precision option")
    parser.add_argument("--videos", type=int, default=3)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--height", type=int, default=540)
    parser.add_argument("--width", type=int, default=960)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--reference-python", help="an interpreter that imports DOVER's code, to time it here too")
    parser.add_argument("--dover-repo", type=Path, help="a VQAssessment/DOVER checkout (with --reference-python)")
    args = parser.parse_args(argv)
    dtype = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")
    with tempfile.TemporaryDirectory(prefix="vqa-throughput-") as tmp:
        videos = make_videos(Path(tmp) / "videos", args.videos, args.frames, args.height, args.width)
        figures: dict[str, Any] = {
            "videos": args.videos, "frames": args.frames, "height": args.height, "width": args.width,
            "device": args.device, "dtype": dtype, "precision": args.precision, "batch_size": args.batch_size,
            "threads": torch.get_num_threads(), "random_weights": True,
            "ours": measure_ours(videos, Path(tmp), args.variants, args.device, dtype, args.precision, args.batch_size),
            "reference": {},
        }
        if args.reference_python and args.dover_repo:
            figures["reference"] = measure_reference(args.reference_python, args.dover_repo, videos, args.variants,
                                                     torch.get_num_threads())
    print(report(figures))


if __name__ == "__main__":
    sys.exit(main())
