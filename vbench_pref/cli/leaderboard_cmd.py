"""``vbench-pref leaderboard``: runs, reported rows and user studies side by side, as CSV and Markdown."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Sequence

import typer

from vbench_pref.cli._app import app, console, out, reports_errors
from vbench_pref.errors import VbenchPrefError
from vbench_pref.preflight import check_output_file


def bundled_reported() -> dict[str, Path]:
    """Reported results shipped with the package, by short name (e.g. ``pgdpo_paper``)."""
    folder = resources.files("vbench_pref.reported")
    return {Path(item.name).stem: Path(str(item)) for item in folder.iterdir() if item.name.endswith(".csv")}


def resolve_reported(name: str) -> Path:
    path = Path(name)
    if path.exists():
        return path
    bundled = bundled_reported()
    if name in bundled:
        return bundled[name]
    raise VbenchPrefError(
        f"reported file {name!r} not found; give a CSV path or one of the bundled: {', '.join(sorted(bundled))}"
    )


def registry_directions() -> dict[str, bool]:
    from vbench_pref import registry

    return {
        column: spec.higher_is_better
        for cls in registry.available().values()
        for column, spec in cls.column_specs().items()
    }


def write_leaderboard(
    run_dirs: list[Path], reported: list[str], prefix: Path, skip_unreadable: bool = False, studies: Sequence[Path] = ()
) -> Path:
    from vbench_pref.leaderboard import output_paths, run as build_and_write

    board = build_and_write(
        run_dirs, [resolve_reported(r) for r in reported], prefix, directions=registry_directions(),
        skip_unreadable=skip_unreadable, studies=studies,
    )
    for warning in board.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    return output_paths(prefix)[1]


@app.command("leaderboard")
@reports_errors
def leaderboard_command(
    runs: list[Path] = typer.Argument(None, help="Run folders written by `score` / `eval`."),
    reported: list[str] = typer.Option(
        [], "--reported", help="Reported results CSV (repeat); bundled: pgdpo_paper (PG-DPO paper, Tables 1-2)."
    ),
    studies: list[Path] = typer.Option(
        [], "--study", help="Study folder (repeat): adds 'user study' columns, each method's human win rate "
        "against the study's baseline, to the rows of the same suite, model and method."
    ),
    prefix: Path = typer.Option(..., "--out", help="Output prefix: writes PREFIX.csv and PREFIX.md."),
) -> None:
    """Write PREFIX.csv and PREFIX.md: one section per prompt suite, one row per model/method, best marked.

    Two runs giving the same column for the same suite, model and method: the newer one is shown, with a warning.
    """
    from vbench_pref.leaderboard import output_paths

    if not runs and not reported and not studies:
        raise VbenchPrefError("give at least one run folder, --reported file or --study")
    for path in output_paths(prefix):
        check_output_file(path)
    markdown = write_leaderboard(list(runs or []), list(reported), prefix, studies=list(studies))
    out.print(markdown.read_text(encoding="utf-8"), highlight=False, markup=False)
    console.print(f"wrote {output_paths(prefix)[0]} and {markdown}", highlight=False)
