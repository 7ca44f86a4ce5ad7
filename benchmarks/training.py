"""Trainer costs, each a ratio measured in one run.

    python benchmarks/training.py [--steps 12] [--repeats 3]          # all CPU measurements
    python benchmarks/training.py --wan-1.3b-shape                    # GPU only

1. PG-DPO vs Diffusion-DPO step time (built-in tiny Wan, the real training loop; goal <= 1.05x): the loss
   adds alpha, gamma and the IPR term on (B,) tensors, nothing per pixel.
2. Training from the latent cache vs encoding every step: one step from the cache vs the same step plus
   decoding and VAE/text-encoding its pairs, as a trainer without a cache does.
3. Peak memory of the LoRA reference (the policy with its adapters disabled) vs a second, frozen copy of the
   denoiser as the reference, for one LoRA training step of a mid-sized random-init Wan transformer (each variant in its own
   process; CPU: peak RSS, CUDA: peak allocated).
With ``--wan-1.3b-shape`` (CUDA only): s/step and peak memory of a Wan2.1-T2V-1.3B-shaped random-init
transformer, 17 frames at 480x832 (latents 16x5x60x104), LoRA r64, bf16, gradient checkpointing, batch 1 pair.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from vbench_pref.synthetic import smooth_motion
from vbench_pref.train.config import TrainConfig
from vbench_pref.train.losses import compute_loss, LossOptions
from vbench_pref.train.trainer import pair_errors, run_training
from vbench_pref.video import write_video


def write_pairs(folder: Path, n_pairs: int) -> Path:
    rows = []
    (folder / "videos").mkdir(parents=True, exist_ok=True)
    for i in range(n_pairs):
        names = []
        for j, speed in enumerate((0.5, 3.0)):
            name = f"videos/p{i}-{j}.mp4"
            write_video(folder / name, smooth_motion(T=9, H=64, W=64, seed=10 * i + j, velocity=(speed, speed)), fps=8)
            names.append(name)
        rows.append({"prompt": f"benchmark prompt {i}", "chosen": names[0], "rejected": names[1]})
    file = folder / "pairs.jsonl"
    file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return file


def step_seconds(config: TrainConfig) -> list[float]:
    stamps: list[float] = []
    run_training(config, on_step=lambda step, total, row: stamps.append(time.perf_counter()))
    return list(np.diff(stamps))


def loss_step_ratio(work: Path, pairs: Path, steps: int, repeats: int) -> None:
    base = TrainConfig(model="builtin:tiny-wan", pairs=str(pairs), out=str(work / "x"), max_steps=steps,
                       effective_batch_size=2, lora_rank=4, checkpoint_every=10**6, probe_every=10**6,
                       device="cpu", mixed_precision="no", learning_rate=1e-4)
    run_training(replace(base, out=str(work / "warm"), max_steps=2))  # builds the model and the cache once
    times: dict[str, list[float]] = {"dpo": [], "pgdpo": []}
    for r in range(repeats):
        for loss in ("dpo", "pgdpo"):  # interleaved, so drift in machine load hits both alike
            times[loss] += step_seconds(replace(base, loss=loss, out=str(work / f"{loss}-{r}")))
    dpo, pgdpo = statistics.median(times["dpo"]), statistics.median(times["pgdpo"])
    print(f"1. step time (tiny Wan, CPU, 2 pairs/step, median of {len(times['dpo'])} steps): "
          f"Diffusion-DPO {dpo * 1e3:.1f} ms, PG-DPO {pgdpo * 1e3:.1f} ms -> PG-DPO/DPO = {pgdpo / dpo:.3f}x")

    errors_args = [torch.rand(16, dtype=torch.float32) for _ in range(4)]
    from vbench_pref.train.losses import PairErrors

    errors = PairErrors(*errors_args)
    loss_times = {}
    for loss in ("dpo", "pgdpo"):
        start = time.perf_counter()
        for _ in range(2000):
            compute_loss(loss, errors, LossOptions())
        loss_times[loss] = (time.perf_counter() - start) / 2000
    print(f"   the loss alone (batch 16): DPO {loss_times['dpo'] * 1e6:.0f} us, PG-DPO {loss_times['pgdpo'] * 1e6:.0f} us "
          f"= {100 * (loss_times['pgdpo'] - loss_times['dpo']) / dpo:.2f}% of a step")
    return dpo


def cache_ratio(pairs: Path, step: float) -> None:
    from vbench_pref.generate.models import load_model
    from vbench_pref.train.data import FrameSettings, load_pixels, read_pairs
    from vbench_pref.train.models import training_spec

    loaded = load_model("builtin:tiny-wan")
    spec = training_spec(loaded)
    batch = read_pairs(pairs)[:2]
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        with torch.no_grad():
            for pair in batch:
                for video in (pair.chosen, pair.rejected):
                    spec.encode_videos(loaded.pipeline, load_pixels(video, FrameSettings()).unsqueeze(0))
            spec.encode_prompts(loaded.pipeline, [p.prompt for p in batch])
        timings.append(time.perf_counter() - start)
    encode = statistics.median(timings)
    print(f"2. latent cache: a step from the cache {step * 1e3:.1f} ms; decoding + encoding its 2 pairs "
          f"{encode * 1e3:.1f} ms -> encoding every step is {(step + encode) / step:.2f}x slower")


def mid_wan(device: str, dtype: torch.dtype) -> Any:
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    return WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=8, attention_head_dim=64, in_channels=16, out_channels=16,
        text_dim=512, freq_dim=256, ffn_dim=2048, num_layers=8, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
    ).to(device, dtype)


def one_step(transformer: Any, variant: str, device: str, latent_shape: tuple[int, ...], text: tuple[int, int],
             rank: int, checkpointing: bool, steps: int = 1) -> float:
    """One trainer step (reference forward, policy forward + backward, AdamW) with either reference."""
    from diffusers import FlowMatchEulerDiscreteScheduler
    from peft import LoraConfig, get_peft_model

    from vbench_pref.train.models.wan import WanSpec

    transformer.requires_grad_(False)
    if checkpointing:
        transformer.enable_gradient_checkpointing()
    # both variants train the same LoRA; they differ only in where the reference prediction comes from
    reference = copy.deepcopy(transformer).eval() if variant == "copy" else None
    policy = get_peft_model(transformer, LoraConfig(r=rank, lora_alpha=rank, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    if reference is not None:
        def reference_predict(noisy: Any, t: Any, conditions: Any) -> Any:
            return spec.predict(reference, pipeline, noisy, t, conditions)
    else:
        def reference_predict(noisy: Any, t: Any, conditions: Any) -> Any:
            with policy.disable_adapter():
                return spec.predict(policy, pipeline, noisy, t, conditions)
    spec = WanSpec()
    pipeline = SimpleNamespace(scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0))
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-6)
    generator = torch.Generator().manual_seed(0)
    dtype = next(transformer.parameters()).dtype
    inputs = {
        "chosen": torch.randn(1, *latent_shape, generator=generator).to(device, dtype),
        "rejected": torch.randn(1, *latent_shape, generator=generator).to(device, dtype),
        "noise": torch.randn(1, *latent_shape, generator=generator).to(device, dtype),
        "timesteps": spec.sample_timesteps(pipeline, 1, generator).to(device),
        "conditions": {"encoder_hidden_states": torch.randn(1, *text, generator=generator).to(device, dtype)},
    }
    times = []
    for _ in range(steps):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        errors = pair_errors(spec, pipeline, policy, reference_predict, inputs)
        compute_loss("pgdpo", errors, LossOptions()).loss.mean().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:] if len(times) > 1 else times)


def memory_child(variant: str) -> None:
    """Run in a fresh process: the peak memory of one LoRA step with ``variant``'s reference, as JSON."""
    import resource

    device = "cuda" if torch.cuda.is_available() else "cpu"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    transformer = mid_wan(device, torch.float32)
    params = sum(p.numel() for p in transformer.parameters())
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    one_step(transformer, variant, device, (16, 3, 16, 16), (64, 512), rank=16, checkpointing=False)
    peak = (torch.cuda.max_memory_allocated() if device == "cuda"
            else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
    print(json.dumps({"variant": variant, "peak_bytes": peak, "params": params, "device": device}))


def memory_ratio() -> None:
    results = {}
    for variant in ("lora", "copy"):
        done = subprocess.run([sys.executable, __file__, "--memory-child", variant], capture_output=True, text=True,
                              check=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
        results[variant] = json.loads(done.stdout.strip().splitlines()[-1])
    lora, full = results["lora"], results["copy"]
    what = "peak allocated" if lora["device"] == "cuda" else "peak RSS growth"
    print(f"3. reference memory (Wan-shaped {lora['params'] / 1e6:.0f}M-parameter transformer, fp32, one PG-DPO step, "
          f"{what}): adapters disabled {lora['peak_bytes'] / 2**20:.0f} MiB, second copy "
          f"{full['peak_bytes'] / 2**20:.0f} MiB -> the copy needs {full['peak_bytes'] / lora['peak_bytes']:.2f}x; "
          f"the difference, {(full['peak_bytes'] - lora['peak_bytes']) / 2**20:.0f} MiB, is about the copy's parameters "
          f"({lora['params'] * 4 / 2**20:.0f} MiB): at Wan2.1-14B in bf16 that is 28 GB per GPU")


# Wan2.1-T2V-1.3B's transformer (diffusers' config of the published checkpoint)
WAN_1_3B_CONFIG: dict[str, Any] = dict(
    patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16, out_channels=16,
    text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
)
# 17 frames at 480x832 through the Wan VAE (4x temporal, 8x spatial) and 512 umT5 tokens of 4096
WAN_1_3B_LATENTS, WAN_1_3B_TEXT = (16, 5, 60, 104), (512, 4096)


def wan_1_3b_transformer(device: str, dtype: torch.dtype, **overrides: Any) -> Any:
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    return WanTransformer3DModel(**{**WAN_1_3B_CONFIG, **overrides}).to(device, dtype)


def lora_step_figures(transformer: Any, device: str, latent_shape: tuple[int, ...], text: tuple[int, int], rank: int,
                      steps: int) -> dict[str, float | None]:
    """s/step (median after the first) and peak device memory of LoRA PG-DPO steps with gradient checkpointing."""
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = one_step(transformer, "lora", device, latent_shape, text, rank=rank, checkpointing=True, steps=steps)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
    return {"s_per_step": seconds, "peak_gib": peak}


def wan_13b_shape() -> None:
    transformer = wan_1_3b_transformer("cuda", torch.bfloat16)
    figures = lora_step_figures(transformer, "cuda", WAN_1_3B_LATENTS, WAN_1_3B_TEXT, rank=64, steps=6)
    print(f"Wan2.1-1.3B shape, 17x480x832, LoRA r64, bf16, gradient checkpointing, 1 pair: "
          f"{figures['s_per_step']:.2f} s/step, peak {figures['peak_gib']:.1f} GiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--wan-1.3b-shape", dest="wan_shape", action="store_true")
    parser.add_argument("--memory-child", choices=("lora", "copy"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return
    if args.wan_shape:
        if not torch.cuda.is_available():
            raise SystemExit("--wan-1.3b-shape needs a CUDA device")
        wan_13b_shape()
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ.setdefault("VBENCH_PREF_CACHE", str(work / "cache"))
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        pairs = write_pairs(work / "pairs", 8)
        step = loss_step_ratio(work, pairs, args.steps, args.repeats)
        cache_ratio(pairs, step)
    memory_ratio()


if __name__ == "__main__":
    main()
