"""Plots of a training run: the per-step metrics and the probe set's likelihood-displacement curve.

The trainer writes ``metrics.jsonl`` (one line per optimizer step) and ``probe.jsonl`` (log-likelihood
proxies on a fixed probe set every N steps) while it runs; these functions read them back the way a killed
or resumed run leaves them and draw PNGs, so a run can be judged (is the loss falling, is the chosen
likelihood being displaced, PG-DPO paper Fig. 2) without opening a notebook.

matplotlib is imported inside the plotting functions, so importing the CLI stays fast; figures are made with
``matplotlib.figure.Figure`` on the Agg canvas rather than through pyplot, so plotting never switches the
backend of a caller (a notebook) and leaves no open figure behind.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from vbench_pref.atomic import atomic_path
from vbench_pref.errors import VbenchPrefError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

METRICS_FILE = "metrics.jsonl"
PROBE_FILE = "probe.jsonl"
CONFIG_FILE = "train.json"
TRAINING_PNG = "training.png"
LIKELIHOOD_PNG = "likelihood.png"
LIKELIHOOD_TITLE = "log-likelihood proxy on the probe set (-MSE, change since step 0)"

# Columns that stay meaningful on a skipped step (the schedule moves on); every other metric is a gap there.
_KEPT_ON_SKIP = ("epoch", "lr", "skipped")
_DPI = 110
# One run: each series of a panel in its own colour (and line style); several runs: colour means the run.
SERIES_COLOURS = {"chosen": "tab:green", "rejected": "tab:red", "margins": "tab:blue"}
RANDOM_WEIGHTS = "random weights"


@dataclass
class TrainingRun:
    """One training run folder, read back: what the plots need and nothing else.

    ``metrics`` is indexed by step (sorted, one row per step, the last logged wins) with null and
    non-finite values as NaN; ``probe`` likewise, or None when the run has no probe rows.
    """

    name: str
    path: Path
    method: str | None
    metrics: pd.DataFrame
    probe: pd.DataFrame | None
    random_weights: bool = False  # the trained model's base had random weights (train.json)

    @property
    def label(self) -> str:
        """The legend label: the method (train.json's ``loss``), else the folder name."""
        return self.method or self.name


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON-lines journal, tolerating the torn last line a killed writer leaves.

    Only the final line may fail to parse (the trainer was killed mid-write); anything unreadable before
    it means the file is damaged, which plotting over would hide, so it is an error naming file and line.
    Blank lines are skipped.
    """
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise VbenchPrefError(f"cannot read {file}: {exc.strerror or exc}") from None
    lines = data.split(b"\n")
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    rows: list[dict[str, Any]] = []
    for index, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            if index == last:
                break  # torn tail of a killed run
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
            raise VbenchPrefError(f"{file}, line {index + 1}: not valid JSON ({reason})") from None
        if not isinstance(row, dict):
            if index == last:
                break
            raise VbenchPrefError(f"{file}, line {index + 1}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def last_per_step(rows: Iterable[dict[str, Any]], source: str = "rows") -> list[dict[str, Any]]:
    """One row per step, sorted by step, the last occurrence winning.

    A resumed run logs again the steps after its checkpoint; the later lines are the run that continued.
    ``source`` names the file in the error for a row without an integer step.
    """
    by_step: dict[int, dict[str, Any]] = {}
    for number, row in enumerate(rows, start=1):
        step = row.get("step")
        if isinstance(step, float) and step.is_integer():
            step = int(step)
        if not isinstance(step, int) or isinstance(step, bool):
            raise VbenchPrefError(f"{source}: row {number} has no integer 'step' (got {step!r})")
        by_step.pop(step, None)  # re-insert so the dict order is the order last written, then sort
        by_step[step] = row
    return [by_step[step] for step in sorted(by_step)]


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows as a float frame indexed by step: null, non-numeric and non-finite values become NaN (gaps)."""
    frame = pd.DataFrame.from_records(rows)
    steps = frame.pop("step").astype(int)
    for column in frame.columns:
        if column == "skipped":
            frame[column] = frame[column].map(lambda value: value is True or value == 1)
        else:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
            frame[column] = frame[column].where(np.isfinite(frame[column]))
    frame.index = pd.Index(steps, name="step")
    return frame


def _train_json(run_dir: Path) -> dict[str, Any]:
    """train.json, or {} when the file is absent or unreadable.

    It only labels the plots, so a damaged config falls back to the folder name rather than stopping them.
    """
    try:
        config = json.loads((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _method(run_dir: Path) -> str | None:
    """The method name from train.json (its ``loss``); None when absent."""
    method = _train_json(run_dir).get("loss")
    return str(method) if method not in (None, "") else None


def load_run(run_dir: str | Path) -> TrainingRun:
    """Read a training run folder: metrics (required, non-empty), probe (optional) and the method name."""
    folder = Path(run_dir)
    if not folder.exists():
        raise VbenchPrefError(f"run folder {folder} does not exist")
    if not folder.is_dir():
        raise VbenchPrefError(f"{folder} is not a folder; give a training run folder")
    metrics_file = folder / METRICS_FILE
    if not metrics_file.is_file():
        raise VbenchPrefError(f"{folder} has no {METRICS_FILE}; is it a training run folder?")
    metrics_rows = last_per_step(read_jsonl(metrics_file), str(metrics_file))
    if not metrics_rows:
        raise VbenchPrefError(f"{metrics_file} is empty: the run has not logged a step yet")
    probe_file = folder / PROBE_FILE
    probe_rows = last_per_step(read_jsonl(probe_file), str(probe_file)) if probe_file.is_file() else []
    name = folder.name or folder.resolve().name
    return TrainingRun(
        name=name,
        path=folder,
        method=_method(folder),
        metrics=_frame(metrics_rows),
        probe=_frame(probe_rows) if probe_rows else None,
        random_weights=_train_json(folder).get("random_weights") is True,
    )


def run_labels(runs: Sequence[TrainingRun]) -> list[str]:
    """Legend labels: the method, with the folder name appended where two runs share a label."""
    labels = [run.label for run in runs]
    repeated = {label for label in labels if labels.count(label) > 1}
    labels = [f"{label} ({run.name})" if label in repeated and run.method else label for label, run in zip(labels, runs)]
    if len(set(labels)) < len(labels):  # same method and folder name (a/run, b/run): fall back to the paths
        labels = [f"{label} ({run.path})" if labels.count(label) > 1 else label for label, run in zip(labels, runs)]
    return labels


def _gapped(metrics: pd.DataFrame) -> pd.DataFrame:
    """The metrics as plotted: a skipped step is a gap in every metric, not a point at its logged value."""
    if "skipped" not in metrics.columns:
        return metrics
    shown = metrics.copy()
    columns = [c for c in shown.columns if c not in _KEPT_ON_SKIP]
    shown.loc[shown["skipped"].astype(bool), columns] = np.nan
    return shown


def _has(runs: Sequence[TrainingRun], column: str) -> bool:
    return any(column in run.metrics.columns and run.metrics[column].notna().any() for run in runs)


def _line(ax: Axes, frame: pd.DataFrame, column: str, **style: Any) -> None:
    if column not in frame.columns:
        return
    values = frame[column].to_numpy(dtype=float)
    steps = frame.index.to_numpy()
    # A value between two gaps has no neighbour to draw a line to: give it a marker so it is not lost.
    alone = np.isfinite(values) & ~np.isfinite(np.r_[np.nan, values[:-1]]) & ~np.isfinite(np.r_[values[1:], np.nan])
    ax.plot(steps, values, **style)
    if alone.any():
        ax.plot(steps[alone], values[alone], linestyle="none", marker=".", color=style.get("color"))


def _series_legend(ax: Axes, styles: Sequence[tuple[str, str]], coloured: bool) -> None:
    """A legend of what each series is: its line style, and its colour unless colour means the run (grey)."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=_series_colour(label) if coloured else "0.3", linestyle=style, label=label)
               for label, style in styles]
    ax.legend(handles=handles, fontsize="small", loc="best")


def _series_colour(label: str, default: str = "C0") -> str:
    return SERIES_COLOURS.get(label, default)


def _axes_in_steps(ax: Axes) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole: no tick at step 2.5


def _random_suffix(runs: Sequence[TrainingRun]) -> str:
    """Title suffix when every plotted run trained a random-weight model (a smoke test)."""
    return f" ({RANDOM_WEIGHTS})" if runs and all(run.random_weights for run in runs) else ""


def _legend_labels(runs: Sequence[TrainingRun]) -> list[str]:
    """Run labels; when only some runs are random-weight, those say so in the legend."""
    labels = run_labels(runs)
    if _random_suffix(runs):
        return labels
    return [f"{label} ({RANDOM_WEIGHTS})" if run.random_weights else label for label, run in zip(labels, runs)]


def _panels(runs: Sequence[TrainingRun]) -> list[tuple[str, list[tuple[str, str, str]], str]]:
    """The panels this set of runs has data for: (title, [(column, series label, line style)], kind)."""
    panels: list[tuple[str, list[tuple[str, str, str]], str]] = [
        ("loss", [("loss", "loss", "-")], "lines"),
        ("rewards", [("rewards/chosen", "chosen", "-"), ("rewards/rejected", "rejected", "--"),
                     ("rewards/margins", "margins", ":")], "lines"),
        ("reward accuracy", [("rewards/accuracies", "accuracy", "-")], "lines"),
        ("log-probabilities", [("logps/chosen", "chosen", "-"), ("logps/rejected", "rejected", "--")], "lines"),
    ]
    for name in ("alpha", "gamma"):
        if _has(runs, f"{name}/mean") or _has(runs, f"{name}/min"):
            panels.append((f"{name} (mean, min-max band)", [(name, name, "-")], "band"))
    if _has(runs, "grad_norm"):
        panels.append(("grad norm", [("grad_norm", "grad norm", "-")], "lines"))
    return [panel for panel in panels if panel[2] == "band" or any(_has(runs, c) for c, _, _ in panel[1])]


def _save(figure: Figure, path: Path) -> Path:
    """Write the PNG atomically: a reader (or a crash) never sees a half-written image."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=_DPI)
    return path


def _colour(index: int) -> str:
    return f"C{index % 10}"


def plot_training(runs: Sequence[TrainingRun], out: str | Path) -> Path:
    """Draw OUT/training.png: one panel per metric, every run overlaid in its own colour.

    Several runs share axes so methods can be compared step for step; skipped and non-finite steps are
    gaps (NaN), never zeros, so a blow-up does not read as a perfect loss.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    if not runs:
        raise VbenchPrefError("no runs to plot")
    labels = _legend_labels(runs)
    panels = _panels(runs)
    coloured = len(runs) == 1
    columns = 2 if len(panels) > 1 else 1
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(6.0 * columns, 3.2 * rows + 0.6), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, (title, series, kind) in zip(axes, panels):
        for index, run in enumerate(runs):
            shown = _gapped(run.metrics)
            colour = _colour(index)
            if kind == "band":
                name = series[0][0]
                low, high = shown.get(f"{name}/min"), shown.get(f"{name}/max")
                if low is not None and high is not None:
                    ax.fill_between(shown.index.to_numpy(), low.to_numpy(dtype=float), high.to_numpy(dtype=float),
                                    color=colour, alpha=0.2, linewidth=0)
                _line(ax, shown, f"{name}/mean", color=colour, linestyle="-", linewidth=1.2)
            else:
                for column, label, style in series:
                    shade = _series_colour(label, colour) if coloured and len(series) > 1 else colour
                    _line(ax, shown, column, color=shade, linestyle=style, linewidth=1.2)
        if title == "reward accuracy":
            ax.set_ylim(-0.03, 1.03)
        if title == "rewards":
            ax.axhline(0.0, color="0.6", linewidth=0.8, zorder=0)
        if len(series) > 1:
            _series_legend(ax, [(label, style) for _, label, style in series], coloured)
        ax.set_title(title)
        _axes_in_steps(ax)
        ax.grid(True, alpha=0.3)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    suffix = _random_suffix(runs)
    if len(runs) == 1:
        named = f"{labels[0]} ({runs[0].name})" if runs[0].method else labels[0]
        figure.suptitle(f"training: {named}{suffix}")
    else:
        figure.suptitle(f"training: {len(runs)} runs{suffix}")
        handles = [Line2D([], [], color=_colour(i), label=label) for i, label in enumerate(labels)]
        figure.legend(handles=handles, loc="outside lower center", ncols=min(len(runs), 4), fontsize="small")
    return _save(figure, Path(out) / TRAINING_PNG)


def _delta(probe: pd.DataFrame, which: str) -> pd.Series | None:
    """The change since step 0 of ``logps/<which>``: logged by the trainer, else derived from step 0."""
    column = f"logps/{which}_delta"
    if column in probe.columns:
        return probe[column]
    base = f"logps/{which}"
    if base in probe.columns and 0 in probe.index and np.isfinite(probe.at[0, base]):
        return probe[base] - probe.at[0, base]
    return None


def plot_likelihood(runs: Sequence[TrainingRun], out: str | Path) -> Path | None:
    """Draw OUT/likelihood.png, the likelihood-displacement curve (PG-DPO paper, Fig. 2); None if no probe.

    Chosen (solid) and rejected (dashed) log-likelihood proxies on the fixed probe set, as the change since
    step 0, one colour per run: the chosen curve going below zero is the displacement the paper describes.
    Runs without probe rows are left out (the caller says so).
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    labels = _legend_labels(runs)
    coloured = len(runs) == 1
    probed = [(index, run, label) for index, (run, label) in enumerate(zip(runs, labels)) if run.probe is not None]
    if not probed:
        return None
    figure = Figure(figsize=(8.0, 5.0), layout="constrained")
    ax = figure.subplots()
    ax.axhline(0.0, color="0.4", linewidth=0.9, zorder=0)
    run_handles = []
    for index, run, label in probed:
        assert run.probe is not None
        colour = _colour(index)
        steps = run.probe.index.to_numpy()
        marker = "o" if len(steps) <= 60 else None
        for which, style in (("chosen", "-"), ("rejected", "--")):
            delta = _delta(run.probe, which)
            if delta is not None:
                shade = _series_colour(which) if coloured else colour
                ax.plot(steps, delta.to_numpy(dtype=float), color=shade, linestyle=style, marker=marker,
                        markersize=3, linewidth=1.4)
        run_handles.append(Line2D([], [], color=colour, label=label))
    style_handles = [Line2D([], [], color=_series_colour(which) if coloured else "0.3", linestyle=style, label=which)
                     for which, style in (("chosen", "-"), ("rejected", "--"))]
    ax.legend(handles=(run_handles if len(runs) > 1 else []) + style_handles, fontsize="small", loc="best")
    ax.set_title(LIKELIHOOD_TITLE + _random_suffix(runs))
    _axes_in_steps(ax)
    ax.set_ylabel("Δ log-likelihood proxy")
    ax.grid(True, alpha=0.3)
    return _save(figure, Path(out) / LIKELIHOOD_PNG)
