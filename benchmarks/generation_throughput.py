"""Generation throughput: seconds per video of a built-in tiny model, one video per call vs batched.

    python benchmarks/generation_throughput.py [--model builtin:tiny-wan] [--videos 8] [--batch 4]

Prints s/video for batch size 1 and for --batch, their ratio, and the share of time spent writing mp4s
(the part generation cannot batch). On a CUDA machine it also reports peak GPU memory; with
``--wan-1.3b-shape`` it times a random-init transformer of Wan2.1-T2V-1.3B's shape (30 layers, 1536 wide,
12 heads) at 480x832, 33 frames, bf16 - a GPU-only measurement.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from vbench_pref.generate.models import load_model
from vbench_pref.generate.prompts import load_suite
from vbench_pref.generate.runner import generate


def wan_1_3b_shaped(device: str, dtype: torch.dtype = torch.bfloat16, real_vae: bool = True, **overrides: Any) -> Any:
    """Wan2.1-T2V-1.3B's transformer config (``overrides`` shrink it for a smoke run), random weights, with a
    one-layer text encoder as wide as umT5-XXL (4096) so the transformer's text projection has its real shape,
    and (``real_vae``) a VAE of the real shape."""
    from diffusers import AutoencoderKLWan
    from transformers import UMT5Config, UMT5EncoderModel

    from training import WAN_1_3B_CONFIG, wan_1_3b_transformer

    loaded = load_model("builtin:tiny-wan", device, dtype)
    pipe = loaded.pipeline
    text_dim = WAN_1_3B_CONFIG["text_dim"]
    pipe.text_encoder = UMT5EncoderModel(UMT5Config(
        vocab_size=len(pipe.tokenizer), d_model=text_dim, d_kv=64, num_heads=2, num_layers=1, d_ff=256,
        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    )).to(device, dtype).eval()
    pipe.transformer = wan_1_3b_transformer(device, dtype, **overrides).eval()
    if real_vae:  # the real VAE's shape (96 base channels) so decoding costs what it costs
        pipe.vae = AutoencoderKLWan(base_dim=96, z_dim=16).to(device, torch.float32).eval()
    return loaded


def time_generation(loaded: object, n_videos: int, batch: int, settings: object, out: Path) -> float:
    suite_file = out.parent / f"{out.name}.txt"
    suite_file.write_text("".join(f"b-{i}\tprompt number {i}\n" for i in range(n_videos)))
    start = time.perf_counter()
    generate(loaded, load_suite(suite_file), out, settings, batch_size=batch)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / n_videos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="builtin:tiny-wan")
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--wan-1.3b-shape", dest="wan_shape", action="store_true")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.wan_shape:
        if device != "cuda":
            raise SystemExit("--wan-1.3b-shape needs a CUDA device")
        loaded = wan_1_3b_shaped(device)
        settings = loaded.defaults.with_overrides(num_frames=33, height=480, width=832, steps=50)
    else:
        loaded = load_model(args.model, device)
        settings = loaded.defaults
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        time_generation(loaded, 1, 1, settings, root / "warmup")
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        single = time_generation(loaded, args.videos, 1, settings, root / "single")
        batched = time_generation(loaded, args.videos, args.batch, settings, root / "batched")
        writes = time.perf_counter()
        from vbench_pref.video import write_video

        frames = torch.zeros(settings.num_frames, settings.height, settings.width, 3, dtype=torch.uint8).numpy()
        for i in range(args.videos):
            write_video(root / f"w{i}.mp4", frames, settings.fps)
        write_share = (time.perf_counter() - writes) / args.videos / single
    print(f"model {loaded.label}, {settings.num_frames}x{settings.height}x{settings.width}, {settings.steps} steps, {device}")
    print(f"batch 1: {single:.3f} s/video   batch {args.batch}: {batched:.3f} s/video   speed-up {single / batched:.2f}x")
    print(f"mp4 writing: {100 * write_share:.0f}% of a batch-1 video's time")
    if device == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
