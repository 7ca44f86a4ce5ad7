"""``vbench-pref lab displacement``: the PG-DPO paper's training-dynamics claims, tested at small scale on the CPU."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from vbench_pref.cli._app import app, argv, console, out, reports_errors
from vbench_pref.cli._progress import progress_line
from vbench_pref.errors import VbenchPrefError

lab_app = typer.Typer(help="Small-scale experiments on the training dynamics of preference losses.",
                      no_args_is_help=True)
app.add_typer(lab_app, name="lab")


def _numbers(text: str, option: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise VbenchPrefError(f"{option} takes comma-separated numbers, got {text!r}") from None
    if not values:
        raise VbenchPrefError(f"{option} needs at least one value")
    return values


@lab_app.command("displacement")
@reports_errors
def displacement_command(
    out_dir: Path = typer.Option(
        Path("runs/lab/displacement"), "--out",
        help="Folder for the report, figures and CSVs (--out results/lab/displacement rewrites the committed report).",
    ),
    steps: int = typer.Option(300, "--steps", help="SGD steps per run."),
    seeds: int = typer.Option(3, "--seeds", help="Seeds 0..S-1: each its own reference, pairs and noise."),
    losses: str = typer.Option("sft,dpo,pgdpo,pgdpo-ars,pgdpo-ipr", "--losses", help="Comma-separated losses (dpo is required)."),
    k1: str = typer.Option("10,2,20", "--k1", help="PG-DPO K1: the first value for every run, the others as extra PG-DPO runs (Fig. 8)."),
    k2: str = typer.Option("10,5", "--k2", help="PG-DPO K2: the first value for every run, the others as extra PG-DPO runs (Fig. 9)."),
    lr: float = typer.Option(2e-3, "--lr", help="SGD learning rate eta (Eq. 35)."),
    beta: float = typer.Option(100.0, "--beta", help="beta of the DPO-family losses."),
) -> None:
    """Train every loss from one pretrained toy reference and test claims (a)-(e) of the PG-DPO paper."""
    from vbench_pref.lab.displacement import LabConfig, comparability_note, run_lab

    if seeds < 1:
        raise VbenchPrefError("--seeds must be at least 1")
    k1s, k2s = _numbers(k1, "--k1"), _numbers(k2, "--k2")
    config = LabConfig(
        losses=tuple(name.strip() for name in losses.split(",") if name.strip()), seeds=tuple(range(seeds)),
        steps=steps, lr=lr, beta=beta, k1=k1s[0], k2=k2s[0], k1_sweep=k1s[1:], k2_sweep=k2s[1:],
    )

    note = comparability_note(config)
    if note:
        console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    started = time.monotonic()

    def on_run(run, number: int, total: int) -> None:
        # runs take about equally long: the ones finished so far give the rate and ETA
        done = progress_line("runs", "run", number - 1, total, number - 1, time.monotonic() - started)
        console.print(f"[{number}/{total}] {run.name}, seed {run.seed} ({done})", highlight=False, markup=False)

    result = run_lab(config, out_dir, command=argv(), on_run=on_run)
    out.print(f"{result.report} ({result.seconds:.0f} s)", highlight=False)
