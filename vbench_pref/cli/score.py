"""``vbench-pref score``: score a folder of videos with the selected evaluators."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from vbench_pref.cli._app import app, argv, console, out, reports_errors
from vbench_pref.cli._progress import Progress
from vbench_pref.errors import EXIT_INTERRUPTED, VbenchPrefError

if TYPE_CHECKING:
    from vbench_pref.distributed import Processes
    from vbench_pref.scoring import ScoreOptions, ScoreResult


def parse_evaluator_options(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["warp_flicker.model=raft_small", ...]`` -> ``{"warp_flicker": {"model": "raft_small"}}``."""
    parsed: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        evaluator, dot, option = key.partition(".")
        if not sep or not dot or not evaluator or not option:
            raise VbenchPrefError(f"-O takes EVALUATOR.OPTION=VALUE, got {item!r}")
        parsed.setdefault(evaluator.strip(), {})[option.strip()] = value
    return parsed


def print_summary(result: ScoreResult) -> None:
    table = Table(title=f"{result.run_dir}  ({result.n_videos} videos)")
    for column in ("score", "mean", "std", "95% CI", "n", "missing"):
        table.add_column(column, justify="left" if column == "score" else "right")
    for name, s in result.summary["scores"].items():
        arrow = "↑" if s["higher_is_better"] else "↓"
        label = "  [yellow]† random weights: smoke test, not a measurement[/]" if s.get("random_weights") else ""
        if s.get("reference"):
            label = escape(f" [ref: {s['reference']}, {s['n_reference']} videos]") + label
        low, high = s["ci95"]
        table.add_row(
            f"{name} {arrow}{label}",
            _fmt(s["mean"]),
            _fmt(s["std"]),
            f"[{_fmt(low)}, {_fmt(high)}]",
            str(s["n"]),
            str(s["n_missing"]),
        )
    out.print(table)


def _fmt(value: float | None) -> str:
    return "—" if value is None or value != value else f"{value:.4f}"


def score_and_report(opts: ScoreOptions, procs: Processes | None = None) -> ScoreResult:
    """Run the engine with a progress bar, print the summary; raise typer.Exit on Ctrl-C.

    Under several processes each shows its own shard's progress and the main one prints the summary.
    """
    from vbench_pref.distributed import Processes
    from vbench_pref.scoring import RunInterrupted, run_scoring

    procs = procs if procs is not None else Processes()
    progress = Progress()
    task_id = progress.add("scoring", "video")

    def on_start(total: int, todo: int, skipped: dict[str, str], resumed: bool) -> None:
        for name, reason in skipped.items():
            console.print(f"[yellow]skipped[/] {name}: {reason}", highlight=False, soft_wrap=True)
        if resumed:
            console.print(f"resuming {opts.out}: {total - todo} of {total} videos already scored", highlight=False)
        progress.update(task_id, total=todo)

    try:
        with progress:
            result = run_scoring(opts, on_start=on_start, on_video=lambda: progress.advance(task_id), procs=procs,
                                 on_note=lambda text: console.print(f"[yellow]note[/]: {text}", highlight=False))
    except RunInterrupted as stop:
        console.print(
            f"[yellow]interrupted[/]: what finished is saved in {stop.result.run_dir}; rerun the same command to resume",
            highlight=False,
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if not procs.is_main:
        return result
    print_summary(result)
    if result.n_failed:
        console.print(
            f"[yellow]{result.n_failed} of {result.n_videos} videos could not be scored[/]: see {result.run_dir / 'errors.csv'}",
            highlight=False,
        )
    return result


@app.command("score")
@reports_errors
def score_command(
    videos: Path = typer.Option(..., "--videos", help="Folder of videos to score."),
    out_dir: Path = typer.Option(..., "--out", help="Run folder: scores, summary, errors, run.json (resumable)."),
    prompts: Optional[Path] = typer.Option(
        None, "--prompts", help="Prompt file (one per line) or manifest (.csv/.jsonl with video,prompt[,image])."
    ),
    evaluators: list[str] = typer.Option([], "--evaluator", "-e", help="Evaluator to run (repeat); default: all that can run."),
    options: list[str] = typer.Option([], "--option", "-O", help="Evaluator option EVALUATOR.OPTION=VALUE (repeat)."),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:N or auto."),
    dtype: str = typer.Option("float32", help="Model compute dtype: float32, bfloat16 or float16."),
    batch_size: int = typer.Option(8, "--batch-size", help="Videos per evaluator batch."),
    backend: str = typer.Option("pyav", help="Video decoder: pyav or decord."),
    workers: int = typer.Option(2, help="Decoding threads running ahead of the evaluators."),
    chunk_videos: int = typer.Option(
        16, "--chunk-videos",
        help="Videos decoded and scored together; each model group moves to the GPU once per chunk.",
    ),
    model: Optional[str] = typer.Option(None, "--model-name", help="Model label for the leaderboard."),
    method: Optional[str] = typer.Option(None, "--method", help="Method label for the leaderboard (default: videos folder name)."),
    recursive: bool = typer.Option(False, help="Also look for videos in subfolders."),
    seed: int = typer.Option(0, help="Seed for evaluators that sample at random."),
    allow_outside_paths: bool = typer.Option(
        False, "--allow-outside-paths", help="Score videos a manifest lists outside --videos (refused otherwise).",
    ),
    memory_budget: Optional[str] = typer.Option(
        None, "--memory-budget",
        help="Frame memory held at once, e.g. 4GB: chunks shrink to fit (default: --chunk-videos alone).",
    ),
    reference: Optional[str] = typer.Option(
        None, "--reference",
        help="Reference set of set-level evaluators (fvd, fid, kid), made with `vbench-pref reference-stats --name`.",
    ),
) -> None:
    """Score every video of a folder; rerun the same command to resume. Exit 3 if some videos failed."""
    from vbench_pref.scoring import ScoreOptions

    opts = ScoreOptions(
        videos=videos, out=out_dir, prompts=prompts, evaluators=list(evaluators),
        evaluator_options=parse_evaluator_options(list(options)), device=device, dtype=dtype,
        batch_size=batch_size, backend=backend, workers=workers, chunk_videos=chunk_videos, model=model, method=method,
        recursive=recursive, seed=seed, command=argv(), allow_outside_paths=allow_outside_paths,
        memory_budget=memory_budget, reference=reference,
    )
    result = score_and_report(opts)
    raise typer.Exit(result.exit_code)
