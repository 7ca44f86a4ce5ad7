"""Every GPU measurement in one command, each part under a hard time limit, all within 8 minutes.

Needs: a CUDA build of torch, transformers, peft and accelerate; diffusers, open_clip_torch and av (PyAV)
(offline: ``pip install --no-index --find-links WHEELS diffusers open_clip_torch av``); this project
(``pip install --no-deps -e .``). Nothing is downloaded: every model is built from config with random
weights (labelled ``random_weights`` in the JSON), since speed and memory depend on shapes, not values.

    python benchmarks/gpu_check.py --out gpu_check.json          # CUDA; exits 2 without it
    python benchmarks/gpu_check.py --smoke --out check.json      # tiny sizes, any device, seconds

Parts (each in its own process, killed when it overruns its limit; an overrun or a failure is recorded in
the JSON as ``timed_out`` / ``failed`` and the next part runs):

- ``clip_family``: frames/s and peak GPU memory of ``clip_score`` (ViT-B-32), ``aesthetic`` (ViT-L-14) and
  ``hpsv2`` (ViT-H-14) through the scoring engine, 100 videos x 16 frames, bf16.
- ``generation``: a Wan2.1-1.3B-shaped transformer (30 layers, 1536 wide, 12 heads, ffn 8960, text 4096)
  generating 33 frames at 480x832 through ``generate``, bf16: s/step (from two step counts), total, peak.
- ``training``: one LoRA r64 PG-DPO step of the same transformer, bf16, gradient checkpointing, 17 frames
  at 480x832: s/step and peak memory.
- ``engine``: the scoring engine on 1,000 synthetic videos with every weight-free evaluator and the
  random-weight CLIP family: videos/s and each evaluator's compute time.
- ``precision``: the CLIP family's scores at each evaluator's reference precision and with a bf16 / fp16 score
  dtype, against fp32 on the same videos.
- ``vlm_rewards``: ``videoalign`` (Qwen2-VL-2B-shaped VideoReward) and ``videoscore2`` (Qwen2.5-VL-7B-shaped)
  with random weights through the scoring engine, 100 videos x 33 frames at 480x832, bf16 + SDPA: videos/s,
  model build time and peak GPU memory of each (videoscore2 writes at most 64 tokens per video here).
- ``vqa``: ``dover`` (DOVER) and ``fast_vqa`` (FAST-VQA-B) at their published sizes with random weights through
  the scoring engine, 100 videos x 33 frames at 360x640, bf16 autocast: videos/s and peak GPU memory of each.
- ``distribution``: the set-level feature extractors at their published sizes with random weights, each making
  a reference set's features through the engine (``reference-stats``): ``fvd`` (I3D), ``fid`` (Inception-v3,
  every 4th frame) on 1,000 videos x 16 frames at 256x256 and ``fvd_videomae`` (VideoMAE-v2 ViT-g) on 100
  such videos, float32 as the metrics run: videos/s and peak GPU memory; then the Fréchet distance with its bootstrap
  interval for 1,000 x 1,408 features.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmarks, run as scripts

TOTAL_BUDGET_S = 480.0
SMOKE_SLOWDOWN = 3.0  # smoke sizes on a shared CPU: model builds and imports dominate, and they are slow there
CLIP_FAMILY = ("clip_score", "aesthetic", "hpsv2")


@dataclass(frozen=True)
class Sizes:
    """What one run measures: the full GPU sizes, or tiny ones that prove the script works end to end."""

    smoke: bool
    device: str

    @property
    def dtype(self) -> str:
        return "bfloat16" if self.device == "cuda" else "float32"

    def clip_options(self) -> dict[str, dict[str, Any]]:
        """The CLIP family with random weights; the evaluators' own backbones, or ViT-B-32 on one frame per video
        for all in a smoke run."""
        small = {"model": "ViT-B-32", "num_frames": 1} if self.smoke else {}
        return {
            "clip_score": {"weights": "random", **small},
            "aesthetic": {"clip_weights": "random", "head_weights": "random", **small},
            "hpsv2": {"weights": "random", **small},
        }


def peak_gib() -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None


def reset_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def make_videos(folder: Path, n: int, frames: int, size: int) -> Path:
    """``n`` synthetic videos with prompts.txt, written by a few threads (the encoder releases the GIL)."""
    from vbench_pref.synthetic import flickering, smooth_motion
    from vbench_pref.video import write_video

    folder.mkdir(parents=True, exist_ok=True)

    def one(i: int) -> None:
        maker = smooth_motion if i % 2 == 0 else flickering
        write_video(folder / f"video_{i:04d}.mp4", maker(frames, size, size, seed=i), fps=16)

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(one, range(n)))
    (folder / "prompts.txt").write_text("".join(f"a synthetic test scene number {i}\n" for i in range(n)))
    return folder


def score_run(videos: Path, out: Path, options: dict[str, dict[str, Any]], device: str, dtype: str,
              batch_size: int = 8) -> tuple[float, float]:
    """(load seconds, scoring seconds) of one engine run; scoring from the engine's start to the end."""
    from vbench_pref.scoring import ScoreOptions, run_scoring

    opts = ScoreOptions(videos=videos, prompts=videos / "prompts.txt", out=out, evaluators=list(options),
                        evaluator_options=options, device=device, dtype=dtype, batch_size=batch_size,
                        workers=4 if device == "cuda" else 2)
    started: list[float] = []
    start = time.perf_counter()
    run_scoring(opts, on_start=lambda *_: started.append(time.perf_counter()))
    return started[0] - start, time.perf_counter() - started[0]


# --- the parts: each returns its figures as a JSON-able dict -------------------------------------------------


def part_clip_family(sizes: Sizes, work: Path) -> dict[str, Any]:
    n, frames, size = (2, 2, 64) if sizes.smoke else (100, 16, 256)
    videos = make_videos(work / "videos", n, frames, size)
    options = sizes.clip_options()
    score_run(videos, work / "warmup", {"clip_score": {**options["clip_score"], "num_frames": 1}}, sizes.device,
              sizes.dtype)  # first-call costs (kernels, allocator) stay out of the figures
    figures: dict[str, Any] = {"videos": n, "frames": frames, "size": size, "dtype": sizes.dtype,
                               "random_weights": True}
    for name in CLIP_FAMILY:
        reset_peak()
        load, seconds = score_run(videos, work / name, {name: options[name]}, sizes.device, sizes.dtype)
        figures[name] = {"options": options[name], "load_s": load, "score_s": seconds,
                         "frames_per_s": n * (options[name].get("num_frames") or frames) / seconds, "peak_gib": peak_gib()}
    return figures


def part_generation(sizes: Sizes, work: Path) -> dict[str, Any]:
    import torch

    from generation_throughput import time_generation, wan_1_3b_shaped

    if sizes.smoke:
        loaded = wan_1_3b_shaped(sizes.device, torch.float32, real_vae=False, num_layers=1, num_attention_heads=2,
                                 attention_head_dim=16, ffn_dim=32)
        frames, height, width, steps = 5, 32, 32, (1, 6)
    else:
        loaded = wan_1_3b_shaped(sizes.device, torch.bfloat16)
        frames, height, width, steps = 33, 480, 832, (2, 10)
    settings = [loaded.defaults.with_overrides(num_frames=frames, height=height, width=width, steps=s) for s in steps]
    time_generation(loaded, 1, 1, settings[0], work / "warmup")
    reset_peak()
    few, many = (time_generation(loaded, 1, 1, s, work / f"steps-{s.steps}") for s in settings)
    per_step = (many - few) / (steps[1] - steps[0])  # what the text encoder, VAE and mp4 cost cancels out
    return {"frames": frames, "height": height, "width": width, "dtype": "bfloat16" if not sizes.smoke else "float32",
            "transformer_parameters": sum(p.numel() for p in loaded.pipeline.transformer.parameters()),
            "guidance": settings[0].guidance, "s_per_step": per_step, "steps": steps[1], "total_s": many,
            "projected_50_steps_s": few + (50 - steps[0]) * per_step, "peak_gib": peak_gib(), "random_weights": True}


def part_training(sizes: Sizes, work: Path) -> dict[str, Any]:
    import torch

    from training import WAN_1_3B_LATENTS, WAN_1_3B_TEXT, lora_step_figures, wan_1_3b_transformer

    if sizes.smoke:
        transformer = wan_1_3b_transformer(sizes.device, torch.float32, num_layers=1, num_attention_heads=2,
                                           attention_head_dim=16, ffn_dim=32, text_dim=32)
        latents, text, rank, steps = (16, 2, 8, 8), (8, 32), 4, 2
    else:
        transformer = wan_1_3b_transformer(sizes.device, torch.bfloat16)
        latents, text, rank, steps = WAN_1_3B_LATENTS, WAN_1_3B_TEXT, 64, 4
    parameters = sum(p.numel() for p in transformer.parameters())
    figures = lora_step_figures(transformer, sizes.device, latents, text, rank=rank, steps=steps)
    return {**figures, "latents": list(latents), "lora_rank": rank, "gradient_checkpointing": True,
            "transformer_parameters": parameters, "dtype": "bfloat16" if not sizes.smoke else "float32",
            "random_weights": True}


@contextmanager
def timed_scores(names: list[str], seconds: dict[str, float]) -> Iterator[None]:
    """Adds each evaluator's ``score`` wall time (device work included) to ``seconds[name]``."""
    import torch

    from vbench_pref import registry

    originals = {name: registry.get(name).score for name in names}

    def timed(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def score(self: Any, batch: Any) -> Any:
            start = time.perf_counter()
            values = original(self, batch)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
            return values
        return score

    for name, original in originals.items():
        registry.get(name).score = timed(name, original)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for name, original in originals.items():
            registry.get(name).score = original  # type: ignore[method-assign]


def weight_free_evaluators() -> list[str]:
    from vbench_pref import registry

    return sorted(name for name, cls in registry.available().items() if not cls.weights)


def part_engine(sizes: Sizes, work: Path) -> dict[str, Any]:
    n, frames, size = (6, 4, 64) if sizes.smoke else (1000, 16, 256)
    start = time.perf_counter()
    videos = make_videos(work / "videos", n, frames, size)
    writing = time.perf_counter() - start
    options: dict[str, dict[str, Any]] = {name: {} for name in weight_free_evaluators()}
    options.update(sizes.clip_options())
    seconds: dict[str, float] = {}
    reset_peak()
    with timed_scores(list(options), seconds):
        load, scoring = score_run(videos, work / "run", options, sizes.device, sizes.dtype, batch_size=16)
    return {"videos": n, "frames": frames, "size": size, "dtype": sizes.dtype, "evaluators": list(options),
            "writing_videos_s": writing, "load_s": load, "score_s": scoring, "videos_per_s": n / scoring,
            "evaluator_compute_s": seconds, "outside_evaluators_s": scoring - sum(seconds.values()),
            "peak_gib": peak_gib(), "random_weights": True}


def part_precision(sizes: Sizes, work: Path) -> dict[str, Any]:
    """Each evaluator's reference precision (``-O NAME.precision=reference``: VBench's fp16 CLIP weights,
    HPSv2's fp16 autocast) and the engine's bf16 / fp16 score dtypes, each against fp32 on the same videos."""
    import pandas as pd

    n, frames, size = (2, 4, 64) if sizes.smoke else (16, 16, 256)
    videos = make_videos(work / "videos", n, frames, size)
    options = sizes.clip_options()
    reference = {name: {**opts, "precision": "reference"} for name, opts in options.items()}
    runs = {"float32": (options, "float32"), "reference": (reference, "float32"),
            "bfloat16": (options, "bfloat16"), "float16": (options, "float16")}
    scores = {}
    for label, (run_options, dtype) in runs.items():
        score_run(videos, work / label, run_options, sizes.device, dtype)
        table = pd.read_csv(work / label / "scores.csv").set_index("video")
        scores[label] = table[[c for c in table.columns  # the score columns, not their random-weight flags
                               if c.split(".")[0] in options and not c.endswith(".random_weights")]]
    columns = list(scores["float32"].columns)
    figures: dict[str, Any] = {"videos": n, "frames": frames,
                               "mechanism": "reference: -O NAME.precision=reference; others: score dtype (--dtype)",
                               "random_weights": True}
    for label in ("reference", "bfloat16", "float16"):
        diff = (scores[label][columns] - scores["float32"][columns]).abs()
        figures[label] = {c: {"max_abs_diff": float(diff[c].max()), "mean_abs_diff": float(diff[c].mean())}
                          for c in columns}
    return figures


def part_vlm_rewards(sizes: Sizes, work: Path) -> dict[str, Any]:
    """Each VLM reward alone at its published architecture's size, random weights; no warm-up run (loading a
    7B model twice would cost more than the first batch's kernel selection, which 100 videos amortise)."""
    from vlm_reward_throughput import REWARDS, engine_run, make_videos as make_reward_videos, reward_options

    n, frames, height, width = (2, 5, 32, 48) if sizes.smoke else (100, 33, 480, 832)
    videos = make_reward_videos(work / "videos", n, frames, height, width)
    options = reward_options("tiny" if sizes.smoke else "full", "run")
    options["videoscore2"]["max_new_tokens"] = 64  # the verdict, not a rationale: bounds the part's time
    figures: dict[str, Any] = {"videos": n, "frames": frames, "height": height, "width": width,
                               "dtype": sizes.dtype, "random_weights": True}
    for name in REWARDS:
        run = engine_run(videos, work / name, {name: options[name]}, sizes.device, batch_size=16, dtype=sizes.dtype,
                         warmup=False)
        figures[name] = {"options": options[name], "load_s": run["load_s"], "score_s": run["score_s"],
                         "videos_per_s": n / run["score_s"], "peak_gib": run["peak_device_gib"]}
    return figures


def part_vqa(sizes: Sizes, work: Path) -> dict[str, Any]:
    """DOVER and FAST-VQA-B at their published sizes, random weights, through the scoring engine: every frame
    decoded, views built on the GPU, videos batched per forward pass under autocast."""
    from vqa_throughput import make_videos as make_vqa_videos, variant_options
    from vlm_reward_throughput import engine_run

    n, frames, height, width = (2, 5, 32, 48) if sizes.smoke else (100, 33, 360, 640)
    videos = make_vqa_videos(work / "videos", n, frames, height, width)
    figures: dict[str, Any] = {"videos": n, "frames": frames, "height": height, "width": width,
                               "dtype": sizes.dtype, "random_weights": True}
    for label in ("dover", "fast_vqa_b"):
        options = variant_options(label, "run")
        if sizes.smoke:
            next(iter(options.values()))["random_size"] = "tiny"
        run = engine_run(videos, work / label, options, sizes.device, batch_size=16, dtype=sizes.dtype, warmup=False)
        figures[label] = {"options": options, "load_s": run["load_s"], "score_s": run["score_s"],
                          "videos_per_s": n / run["score_s"], "peak_gib": run["peak_device_gib"]}
    return figures


def part_distribution(sizes: Sizes, work: Path) -> dict[str, Any]:
    """Each set-level extractor making a reference set's features through the engine, then one distance."""
    os.environ["VBENCH_PREF_CACHE"] = str(work / "cache")  # reference sets live in the cache
    import numpy as np

    from vbench_pref.distribution.distance import bootstrap_frechet, frechet_distance, gaussian_stats
    from vbench_pref.distribution.reference_stats import make_reference_stats
    from vbench_pref.scoring import ScoreOptions

    n, frames, size = (4, 16, 32) if sizes.smoke else (1000, 16, 256)
    videos = make_videos(work / "videos", n, frames, size)
    few = make_videos(work / "few", max(2, n // 10), frames, size)
    plan = {
        "fvd": (videos, {"weights": "random"}),
        "fid": (videos, {"weights": "random", "stride": 4}),
        "fvd_videomae": (few, {"weights": "random", "random_size": "tiny" if sizes.smoke else "full"}),
    }
    figures: dict[str, Any] = {"videos": n, "frames": frames, "height": size, "width": size, "dtype": "float32",
                               "random_weights": True, "frechet_features": [n, 64 if sizes.smoke else 1408]}
    for name, (folder, options) in plan.items():
        reset_peak()
        opts = ScoreOptions(videos=folder, out=work / name, evaluators=[name], evaluator_options={name: options},
                            device=sizes.device, batch_size=16, workers=4 if sizes.device == "cuda" else 2)
        started: list[float] = []
        start = time.perf_counter()
        make_reference_stats(f"check-{name}", opts, on_start=lambda *_: started.append(time.perf_counter()))
        end = time.perf_counter()
        count = len(list(folder.glob("*.mp4")))
        figures[name] = {"options": options, "videos": count, "load_s": started[0] - start,
                         "features_s": end - started[0], "videos_per_s": count / (end - started[0]),
                         "peak_gib": peak_gib()}
    rng = np.random.default_rng(0)
    dim = 64 if sizes.smoke else 1408  # fvd_videomae's feature size
    a, b = rng.normal(size=(n, dim)), rng.normal(0.1, 1.0, size=(n, dim))
    start = time.perf_counter()
    frechet_distance(gaussian_stats(a), gaussian_stats(b))
    figures["frechet_s"] = time.perf_counter() - start
    start = time.perf_counter()
    bootstrap_frechet(a, b)
    figures["bootstrap_frechet_s"] = time.perf_counter() - start
    return figures


PARTS: dict[str, tuple[Callable[[Sizes, Path], dict[str, Any]], float]] = {
    # random init of the 1.3B transformer, of ViT-H-14 and of the 7B VLM on the CPU is part of each limit
    "clip_family": (part_clip_family, 65.0),
    "generation": (part_generation, 75.0),
    "training": (part_training, 65.0),
    "engine": (part_engine, 65.0),
    "precision": (part_precision, 35.0),
    "vlm_rewards": (part_vlm_rewards, 75.0),
    "vqa": (part_vqa, 40.0),
    "distribution": (part_distribution, 60.0),
}


# --- the driver ----------------------------------------------------------------------------------------------


def run_part(name: str, sizes: Sizes, limit_s: float) -> dict[str, Any]:
    """Run one part in a child process (its own session, killed whole on overrun); its figures or why not."""
    with tempfile.TemporaryDirectory(prefix=f"gpu-check-{name}-") as tmp:
        result = Path(tmp) / "result.json"
        command = [sys.executable, __file__, "--part", name, "--result", str(result), "--device", sizes.device]
        if sizes.smoke:
            command.append("--smoke")
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 start_new_session=True)
        try:
            log, _ = child.communicate(timeout=limit_s)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            return {"status": "timed_out", "limit_s": limit_s, "wall_s": time.perf_counter() - start}
        wall = time.perf_counter() - start
        if child.returncode != 0 or not result.is_file():
            lines = [line for line in log.strip().splitlines() if line.strip()] or [f"exit code {child.returncode}"]
            return {"status": "failed", "error": lines[-1], "limit_s": limit_s, "wall_s": wall}
        return {"status": "ok", "limit_s": limit_s, "wall_s": wall, **json.loads(result.read_text())}


def child_main(name: str, sizes: Sizes, result: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix=f"gpu-check-{name}-work-") as tmp:
        work = Path(tmp)
        os.environ.setdefault("VBENCH_PREF_CACHE", str(work / "cache"))
        figures = PARTS[name][0](sizes, work)
    result.write_text(json.dumps(figures))


def parse_limits(items: list[str]) -> dict[str, float]:
    limits = {}
    for item in items:
        name, _, seconds = item.partition("=")
        if name not in PARTS or not seconds:
            raise SystemExit(f"--limit takes PART=SECONDS with PART one of {', '.join(PARTS)}")
        limits[name] = float(seconds)
    return limits


def summary_line(name: str, part: dict[str, Any]) -> str:
    if part["status"] != "ok":
        why = f"after {part['limit_s']:.0f} s" if part["status"] == "timed_out" else part.get("error", "")
        return f"{name:<12} {part['status'].upper()} {why}"
    gib = lambda v: "n/a" if v is None else f"{v:.2f} GiB"  # noqa: E731
    if name == "clip_family":
        return f"{name:<12} " + ", ".join(
            f"{e} {part[e]['frames_per_s']:.0f} frames/s peak {gib(part[e]['peak_gib'])}" for e in CLIP_FAMILY)
    if name == "generation":
        return (f"{name:<12} {part['frames']}x{part['height']}x{part['width']}: {part['s_per_step']:.3f} s/step, "
                f"{part['total_s']:.1f} s for {part['steps']} steps (50 steps ~{part['projected_50_steps_s']:.0f} s), "
                f"peak {gib(part['peak_gib'])}")
    if name == "training":
        return f"{name:<12} LoRA r{part['lora_rank']}: {part['s_per_step']:.3f} s/step, peak {gib(part['peak_gib'])}"
    if name == "vlm_rewards":
        return f"{name:<12} " + ", ".join(
            f"{e} {part[e]['videos_per_s']:.1f} videos/s (build {part[e]['load_s']:.0f} s) peak {gib(part[e]['peak_gib'])}"
            for e in ("videoalign", "videoscore2"))
    if name == "vqa":
        return f"{name:<12} " + ", ".join(
            f"{e} {part[e]['videos_per_s']:.1f} videos/s peak {gib(part[e]['peak_gib'])}" for e in ("dover", "fast_vqa_b"))
    if name == "engine":
        compute = ", ".join(f"{e} {s:.1f} s" for e, s in part["evaluator_compute_s"].items())
        return f"{name:<12} {part['videos']} videos: {part['videos_per_s']:.1f} videos/s ({compute})"
    if name == "distribution":
        return f"{name:<12} " + ", ".join(
            f"{e} {part[e]['videos_per_s']:.1f} videos/s peak {gib(part[e]['peak_gib'])}"
            for e in ("fvd", "fid", "fvd_videomae")) + f", Fréchet + bootstrap {part['bootstrap_frechet_s']:.1f} s"
    worst = {d: max((v["max_abs_diff"] for v in part[d].values()), default=float("nan")) for d in ("bfloat16", "float16")}
    return f"{name:<12} max |score - fp32|: bf16 {worst['bfloat16']:.2e}, fp16 {worst['float16']:.2e}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves the script works, on any device")
    parser.add_argument("--device", help="default: cuda when available, else cpu (--smoke only)")
    parser.add_argument("--only", help="comma-separated parts (default: all)")
    parser.add_argument("--limit", action="append", default=[], metavar="PART=SECONDS",
                        help="override a part's time limit")
    parser.add_argument("--total-budget", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--part", choices=list(PARTS), help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    sizes = Sizes(args.smoke, device)
    if args.part:
        child_main(args.part, sizes, args.result)
        return 0
    if not args.smoke and (device != "cuda" or not torch.cuda.is_available()):
        print("gpu_check: no CUDA device here; use --smoke for a CPU run of tiny sizes", file=sys.stderr)
        return 2
    names = args.only.split(",") if args.only else list(PARTS)
    unknown = [n for n in names if n not in PARTS]
    if unknown:
        print(f"gpu_check: unknown part {', '.join(unknown)} (parts: {', '.join(PARTS)})", file=sys.stderr)
        return 2
    slowdown = SMOKE_SLOWDOWN if args.smoke else 1.0
    budget = args.total_budget or TOTAL_BUDGET_S * slowdown
    limits = {name: PARTS[name][1] * slowdown for name in names} | parse_limits(args.limit)
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "smoke": args.smoke,
        "torch": torch.__version__, "total_budget_s": budget, "parts": {},
    }
    deadline = time.perf_counter() + budget
    for name in names:
        left = deadline - time.perf_counter()
        if left < 5:
            report["parts"][name] = {"status": "timed_out", "limit_s": 0.0, "wall_s": 0.0}
        else:
            report["parts"][name] = run_part(name, sizes, min(limits[name], left))
        print(summary_line(name, report["parts"][name]), flush=True)
        write_report(args.out, report)  # what finished survives a kill of the driver
    report["wall_s"] = budget - (deadline - time.perf_counter())
    write_report(args.out, report)
    print(f"-> {args.out} ({report['wall_s']:.0f} s)")
    return 0


def write_report(path: Path, report: dict[str, Any]) -> None:
    from vbench_pref.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
