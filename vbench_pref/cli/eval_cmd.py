"""``vbench-pref eval``: generate a prompt suite with a checkpoint, score it, add it to the leaderboard."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from vbench_pref.cli import _generation_options as g
from vbench_pref.cli._app import app, argv, console, out, reports_errors
from vbench_pref.cli.score import parse_evaluator_options, score_and_report

if TYPE_CHECKING:
    from vbench_pref.distributed import Processes
    from vbench_pref.scoring import ScoreOptions, ScoreResult


@app.command("eval")
@reports_errors
def eval_command(
    model: str = g.MODEL, prompts: str = g.PROMPTS,
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: runs/<model>-<suite>)."),
    n: int = g.N, seed: int = g.SEED,
    frames: Optional[int] = g.FRAMES, height: Optional[int] = g.HEIGHT, width: Optional[int] = g.WIDTH,
    steps: Optional[int] = g.STEPS, guidance: Optional[float] = g.GUIDANCE, fps: Optional[int] = g.FPS,
    negative_prompt: Optional[str] = g.NEGATIVE, dtype: str = g.DTYPE, device: str = g.DEVICE,
    gen_batch_size: int = g.GEN_BATCH, base_model: Optional[str] = g.BASE_MODEL,
    evaluators: list[str] = typer.Option([], "--evaluator", "-e", help="Evaluator (repeat); default: all that can run."),
    options: list[str] = typer.Option([], "--option", "-O", help="Evaluator option EVALUATOR.OPTION=VALUE (repeat)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Videos per evaluator batch."),
    chunk_videos: int = typer.Option(16, "--chunk-videos", help="Videos decoded and scored together."),
    memory_budget: Optional[str] = typer.Option(
        None, "--memory-budget",
        help="Frame memory held at once while scoring, e.g. 4GB: chunks shrink to fit (default: --chunk-videos alone).",
    ),
    score_dtype: str = typer.Option("float32", "--score-dtype", help="Evaluator dtype: float32, bfloat16, float16."),
    method: Optional[str] = typer.Option(None, "--method", help="Method label (default: the checkpoint's, else base)."),
    leaderboard: Path = typer.Option(
        Path("runs/leaderboard"), "--leaderboard",
        help="Leaderboard prefix: the run joins PREFIX.runs.txt, PREFIX.csv/.md are rebuilt.",
    ),
    reported: list[str] = typer.Option([], "--reported", help="Reported results shown beside it (e.g. pgdpo_paper)."),
    reference: Optional[str] = typer.Option(
        None, "--reference", help="Reference set of set-level evaluators (fvd, fid, kid): see `vbench-pref reference-stats`.",
    ),
) -> None:
    """Generate, score, add to the leaderboard; rerun the same command to reuse videos and scores."""
    from vbench_pref.evaluate import EvalOptions, run_eval

    generation = g.generation_options(
        model, prompts, n, seed, frames, height, width, steps, guidance, fps, negative_prompt, dtype, device,
        gen_batch_size, base_model,
    )
    opts = EvalOptions(
        generation=generation, out=out_dir, evaluators=list(evaluators),
        evaluator_options=parse_evaluator_options(list(options)), score_batch_size=batch_size,
        chunk_videos=chunk_videos, memory_budget=memory_budget, score_dtype=score_dtype, method=method, leaderboard=leaderboard,
        reported=list(reported), command=argv(), reference=reference,
    )
    progress, on_start, on_video = g.generation_progress()

    def score(score_opts: ScoreOptions, procs: Processes) -> ScoreResult:
        progress.stop()  # the scoring bar takes over
        if procs.is_main:
            console.print(g.describe(generation_result[0]), highlight=False)
        return score_and_report(score_opts, procs)

    generation_result: list = []
    progress.start()
    try:
        result = run_eval(opts, on_start, on_video, score=score, on_generated=generation_result.append)
    finally:
        progress.stop()
    if result.leaderboard is not None:
        out.print(result.leaderboard.read_text(encoding="utf-8"), highlight=False, markup=False)
        console.print(f"leaderboard: {result.leaderboard}", highlight=False)
    raise typer.Exit(result.scoring.exit_code)
