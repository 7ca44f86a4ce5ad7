"""``vbench-pref reference-stats``: features and statistics of a folder of real videos, kept in the cache by name."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vbench_pref.cli._app import app, argv, console, reports_errors
from vbench_pref.cli._progress import Progress
from vbench_pref.cli.score import parse_evaluator_options
from vbench_pref.errors import EXIT_INTERRUPTED


@app.command("reference-stats")
@reports_errors
def reference_stats_command(
    videos: Path = typer.Option(..., "--videos", help="Folder of real videos (the reference set)."),
    name: str = typer.Option(..., "--name", help="Name of the reference set (then: score --reference NAME)."),
    evaluators: list[str] = typer.Option([], "--evaluator", "-e", help="Set-level evaluator to compute (repeat), e.g. fvd."),
    options: list[str] = typer.Option([], "--option", "-O", help="Evaluator option EVALUATOR.OPTION=VALUE (repeat)."),
    replace: bool = typer.Option(False, "--replace", help="Remake statistics made from other videos or with other settings."),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:N or auto."),
    dtype: str = typer.Option("float32", help="Model compute dtype: float32, bfloat16 or float16."),
    batch_size: int = typer.Option(8, "--batch-size", help="Videos per evaluator batch."),
    backend: str = typer.Option("pyav", help="Video decoder: pyav or decord."),
    workers: int = typer.Option(2, help="Decoding threads running ahead of the evaluators."),
    chunk_videos: int = typer.Option(16, "--chunk-videos", help="Videos decoded and processed together."),
    recursive: bool = typer.Option(False, help="Also look for videos in subfolders."),
    memory_budget: Optional[str] = typer.Option(None, "--memory-budget", help="Frame memory held at once, e.g. 4GB."),
) -> None:
    """Compute a reference set's features and statistics (resumable: rerun the same command)."""
    from vbench_pref.distribution.reference_stats import make_reference_stats
    from vbench_pref.scoring import RunInterrupted, ScoreOptions

    opts = ScoreOptions(
        videos=videos, out=Path("."), evaluators=list(evaluators), evaluator_options=parse_evaluator_options(list(options)),
        device=device, dtype=dtype, batch_size=batch_size, backend=backend, workers=workers, chunk_videos=chunk_videos,
        recursive=recursive, memory_budget=memory_budget, command=argv(),
    )  # ``out``: the work folder inside the reference set replaces it
    progress = Progress()
    task_id = progress.add("features", "video")

    def on_start(total: int, todo: int, skipped: dict[str, str], resumed: bool) -> None:
        if resumed:
            console.print(f"resuming reference set {name}: {total - todo} of {total} videos already done", highlight=False)
        progress.update(task_id, total=todo)

    try:
        with progress:
            result = make_reference_stats(name, opts, replace, on_start=on_start, on_video=lambda: progress.advance(task_id),
                                          on_note=lambda text: console.print(f"[yellow]note[/]: {text}", highlight=False))
    except RunInterrupted:
        console.print("[yellow]interrupted[/]: what finished is saved; rerun the same command to resume", highlight=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    for evaluator in result.up_to_date:
        console.print(f"reference set {name}: {evaluator} is up to date (same videos and settings)", highlight=False)
    for evaluator, folder in result.written.items():
        console.print(f"reference set {name}: {evaluator} statistics of {result.n_videos - result.failed} videos in {folder}",
                      highlight=False)
    if result.failed:
        console.print(f"[yellow]{result.failed} of {result.n_videos} videos gave no features[/] and are left out", highlight=False)
