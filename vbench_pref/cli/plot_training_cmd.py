"""``vbench-pref plot-training``: PNGs of a training run's metrics and its probe-set likelihood curve."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vbench_pref.cli._app import app, console, out, reports_errors
from vbench_pref.errors import VbenchPrefError
from vbench_pref.preflight import check_output_folder


@app.command("plot-training")
@reports_errors
def plot_training_command(
    runs: list[Path] = typer.Argument(
        ..., metavar="RUN_DIR", help="Training run folders written by the trainer (each holds metrics.jsonl; probe.jsonl optional)."
    ),
    out_dir: Optional[Path] = typer.Option(
        None, "--out",
        help="Folder for training.png and likelihood.png; default RUN_DIR/plots for one run, required for several.",
    ),
) -> None:
    """Write training.png (loss, rewards, accuracy, log-probs, alpha/gamma, grad norm) and likelihood.png.

    With several runs, every run is overlaid in its own colour, labelled by its method (train.json).
    """
    # Imported here so pandas and matplotlib load only when this command runs.
    from vbench_pref.train import plots

    if len(runs) > 1 and out_dir is None:
        raise VbenchPrefError("--out is required when plotting several runs (where would the overlay go?)")
    loaded = [plots.load_run(run) for run in runs]  # every run is checked before anything is written
    target = out_dir if out_dir is not None else Path(runs[0]) / "plots"
    check_output_folder(target)
    written = [plots.plot_training(loaded, target)]
    without_probe = [run.name for run in loaded if run.probe is None]
    likelihood = plots.plot_likelihood(loaded, target)
    if likelihood is None:
        console.print(f"note: no {plots.PROBE_FILE} in {', '.join(without_probe)}; skipped {plots.LIKELIHOOD_PNG}",
                      highlight=False, markup=False, soft_wrap=True)
    else:
        written.append(likelihood)
        if without_probe:
            console.print(f"note: no {plots.PROBE_FILE} in {', '.join(without_probe)}; left out of "
                          f"{plots.LIKELIHOOD_PNG}", highlight=False, markup=False, soft_wrap=True)
    for path in written:
        out.print(str(path), highlight=False, markup=False)
