"""``vbench-pref generate``: videos of a prompt suite from a checkpoint, with a manifest ``score`` reads."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vbench_pref.cli import _generation_options as g
from vbench_pref.cli._app import app, console, reports_errors


@app.command("generate")
@reports_errors
def generate_command(
    out_dir: Path = typer.Option(..., "--out", help="Folder for the videos, manifest.jsonl and generation.json."),
    model: str = g.MODEL, prompts: str = g.PROMPTS, n: int = g.N, seed: int = g.SEED,
    frames: Optional[int] = g.FRAMES, height: Optional[int] = g.HEIGHT, width: Optional[int] = g.WIDTH,
    steps: Optional[int] = g.STEPS, guidance: Optional[float] = g.GUIDANCE, fps: Optional[int] = g.FPS,
    negative_prompt: Optional[str] = g.NEGATIVE, dtype: str = g.DTYPE, device: str = g.DEVICE,
    gen_batch_size: int = g.GEN_BATCH, base_model: Optional[str] = g.BASE_MODEL,
) -> None:
    """Generate N videos per prompt; rerun the same command to resume."""
    from vbench_pref.distributed import processes
    from vbench_pref.evaluate import generate_videos

    opts = g.generation_options(
        model, prompts, n, seed, frames, height, width, steps, guidance, fps, negative_prompt, dtype, device,
        gen_batch_size, base_model,
    )
    progress, on_start, on_video = g.generation_progress()
    procs = processes()
    with progress:
        result, loaded = generate_videos(opts, out_dir, procs, on_start, on_video)
    if procs.is_main:
        label = " [yellow](random weights: a smoke test, not a real model)[/]" if loaded.random_weights else ""
        console.print(f"{g.describe(result)}; model {loaded.model_id}{label}", highlight=False)
