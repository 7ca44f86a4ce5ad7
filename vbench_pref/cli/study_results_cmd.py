"""``vbench-pref study results``: win rates with intervals, Bradley-Terry strengths, agreement, a Fig. 7-style plot."""

from __future__ import annotations

from pathlib import Path

import typer

from vbench_pref.cli._app import console, reports_errors
from vbench_pref.cli._study_app import study_app
from vbench_pref.preflight import check_output_folder


@study_app.command("results")
@reports_errors
def study_results_command(
    study: Path = typer.Argument(..., help="The study folder (made by `study create`)."),
    out: Path = typer.Option(..., "--out", help="Folder for win_rates.csv, strengths.csv, agreement.csv, "
                             "participants.csv, summary.md and user_study.png."),
    allowed_check_failures: int = typer.Option(
        0, "--allowed-check-failures", help="Attention checks a participant may fail and still count."
    ),
    bootstrap: int = typer.Option(2000, "--bootstrap", help="Bootstrap replicates (over participants and prompts), 100-20000."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
) -> None:
    """Per aspect and method pair: win / tie / loss % with 95% intervals, Bradley-Terry strengths, agreement.

    Participants who failed more attention checks than allowed are excluded from every number and counted.
    """
    from vbench_pref.study.report import check_numbers, write_results

    check_numbers(allowed_check_failures, bootstrap, seed)
    check_output_folder(out)
    written = write_results(study, out, allowed_check_failures, bootstrap, seed)
    result = written.result
    console.print(
        f"{result.judgements} judgements from "
        f"{int(((result.participants['answered'] > 0) & ~result.participants['excluded']).sum())} participants "
        f"({len(result.excluded)} excluded); wrote {', '.join(f.name for f in written.files)} to {written.folder}",
        highlight=False,
    )
