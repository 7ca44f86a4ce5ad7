"""The generation options ``generate``, ``eval`` and ``pairs`` share, declared once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

import typer

from vbench_pref.cli._app import console
from vbench_pref.cli._progress import Progress

if TYPE_CHECKING:
    from vbench_pref.evaluate import GenerationOptions

MODEL = typer.Option(
    ..., "--model", "-m",
    help="builtin:tiny-wan (or another built-in), a diffusers pipeline folder or hub id, a peft adapter folder, "
    "or a train-pgdpo checkpoint.",
)
PROMPTS = typer.Option(..., "--prompts", "-p", help="Bundled suite (demo, t2v, i2v) or a .txt / .jsonl prompt file.")
N = typer.Option(1, "--n", "-n", help="Videos per prompt (-n under torchrun, whose parser takes --n for its own).")
SEED = typer.Option(0, help="Global seed; each video's seed derives from (seed, prompt id, index).")
FRAMES = typer.Option(None, "--frames", help="Frames per video (default: the model's).")
HEIGHT = typer.Option(None, "--height", help="Height in pixels (default: the model's).")
WIDTH = typer.Option(None, "--width", help="Width in pixels (default: the model's).")
STEPS = typer.Option(None, "--steps", help="Denoising steps (default: the model's).")
GUIDANCE = typer.Option(None, "--guidance", help="Classifier-free guidance scale (default: the model's).")
FPS = typer.Option(None, "--fps", help="Frame rate written into the mp4 (default: the model's).")
NEGATIVE = typer.Option(None, "--negative-prompt", help="Negative prompt (default: the model's; '' for none).")
DTYPE = typer.Option("auto", "--dtype", help="Generation dtype: auto (bfloat16 on GPU, float32 on CPU), float32, ...")
DEVICE = typer.Option("auto", help="cpu, cuda, cuda:N or auto (each process of a multi-GPU launch takes its own GPU).")
GEN_BATCH = typer.Option(1, "--gen-batch-size", help="Prompts generated per pipeline call.")
BASE_MODEL = typer.Option(None, "--base-model", help="Base model of an adapter or checkpoint (overrides its config).")


def generation_options(
    model: str, prompts: str, n: int, seed: int, frames: Optional[int], height: Optional[int], width: Optional[int],
    steps: Optional[int], guidance: Optional[float], fps: Optional[int], negative_prompt: Optional[str], dtype: str,
    device: str, gen_batch_size: int, base_model: Optional[str],
) -> GenerationOptions:
    from vbench_pref.evaluate import GenerationOptions

    return GenerationOptions(
        model=model, prompts=prompts, n=n, seed=seed, frames=frames, height=height, width=width, steps=steps,
        guidance=guidance, fps=fps, negative_prompt=negative_prompt, dtype=dtype, device=device,
        batch_size=gen_batch_size, base_model=base_model,
    )


def generation_progress() -> tuple[Progress, Callable[[int, int], None], Callable[[], None]]:
    """A progress bar and the (on_start, on_video) callbacks the generator reports to."""
    progress = Progress()
    task_id = progress.add("generating", "video")

    def on_start(total: int, todo: int) -> None:
        if total > todo:
            console.print(f"reusing {total - todo} of {total} videos already generated", highlight=False)
        progress.update(task_id, total=todo)

    def on_video() -> None:
        progress.advance(task_id)

    return progress, on_start, on_video


def describe(result: Any) -> str:
    return f"{len(result.items)} videos in {result.out} ({result.generated} generated, {result.reused} reused)"
