"""``plot-training``: reading a trainer's journals the way a killed or resumed run leaves them, and the PNGs."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.image import imread
from typer.testing import CliRunner

import vbench_pref.cli.plot_training_cmd  # noqa: F401  (registers the command on app)
from vbench_pref.cli._app import app
from vbench_pref.errors import VbenchPrefError
from vbench_pref.train.plots import (
    LIKELIHOOD_TITLE,
    last_per_step,
    load_run,
    plot_likelihood,
    plot_training,
    read_jsonl,
    run_labels,
)


def metric_row(step: int, **overrides: Any) -> dict[str, Any]:
    row = {
        "step": step, "epoch": 0, "loss": 0.69 - 0.01 * step,
        "rewards/chosen": 0.01 * step, "rewards/rejected": -0.01 * step, "rewards/margins": 0.02 * step,
        "rewards/accuracies": 0.5 + 0.02 * step, "logps/chosen": -1.0 - 0.01 * step, "logps/rejected": -1.0 - 0.02 * step,
        "alpha/min": 0.1, "alpha/mean": 0.5, "alpha/max": 0.9, "gamma/min": 0.2, "gamma/mean": 0.4, "gamma/max": 0.6,
        "importance_weight/mean": 1.0, "grad_norm": 1.5, "lr": 1e-5, "skipped": False,
    }
    row.update(overrides)
    return row


def probe_row(step: int) -> dict[str, Any]:
    return {"step": step, "logps/chosen": -1.0 - 0.01 * step, "logps/rejected": -1.0 - 0.03 * step,
            "logps/chosen_delta": -0.01 * step, "logps/rejected_delta": -0.03 * step, "rewards/margins": 0.02 * step}


def write_lines(path: Path, rows: list[dict[str, Any]], tail: str = "") -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows) + tail, encoding="utf-8")


def make_run(root: Path, name: str, method: str | None = "pgdpo", steps: int = 12, probe: bool = True,
             rows: list[dict[str, Any]] | None = None) -> Path:
    run = root / name
    run.mkdir(parents=True)
    if method is not None:
        (run / "train.json").write_text(json.dumps({"loss": method, "model": "tiny"}), encoding="utf-8")
    write_lines(run / "metrics.jsonl", rows if rows is not None else [metric_row(s) for s in range(1, steps + 1)])
    if probe:
        write_lines(run / "probe.jsonl", [probe_row(s) for s in range(0, steps + 1, 4)])
    return run


def assert_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100 and image.shape[2] in (3, 4)
    assert not list(path.parent.glob(".*.tmp"))  # the atomic write left no temporary file


def invoke(*args: str):
    return CliRunner().invoke(app, ["plot-training", *args])


def error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


# reading the journals


def test_torn_last_line_is_ignored(tmp_path) -> None:
    path = tmp_path / "metrics.jsonl"
    write_lines(path, [metric_row(1), metric_row(2)], tail='{"step": 3, "loss": 0.')
    assert [row["step"] for row in read_jsonl(path)] == [1, 2]


def test_bad_middle_line_names_file_and_line(tmp_path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps(metric_row(1)) + "\n{oops\n" + json.dumps(metric_row(3)) + "\n", encoding="utf-8")
    with pytest.raises(VbenchPrefError, match=r"metrics\.jsonl, line 2"):
        read_jsonl(path)


def test_duplicated_steps_keep_the_last(tmp_path) -> None:
    rows = [metric_row(1), metric_row(2, loss=9.0), metric_row(3, loss=9.0), metric_row(2, loss=0.2),
            metric_row(3, loss=0.3), metric_row(4)]
    assert [(r["step"], r["loss"]) for r in last_per_step(rows)][1:3] == [(2, 0.2), (3, 0.3)]
    run = load_run(make_run(tmp_path, "resumed", rows=rows))
    assert run.metrics.index.tolist() == [1, 2, 3, 4]
    assert run.metrics.loc[2, "loss"] == 0.2 and run.metrics.loc[3, "loss"] == 0.3


def test_row_without_step_is_an_error() -> None:
    with pytest.raises(VbenchPrefError, match="row 2 has no integer 'step'"):
        last_per_step([{"step": 1}, {"loss": 0.5}], "metrics.jsonl")


def test_null_and_non_finite_values_become_nan_and_plot(tmp_path) -> None:
    rows = [metric_row(s) for s in range(1, 9)]
    rows[3] = metric_row(4, loss=None, **{"rewards/chosen": None, "grad_norm": None}, skipped=True)
    rows[4] = metric_row(5, grad_norm=float("inf"))  # json.dumps writes Infinity, json.loads reads it back
    make_run(tmp_path, "run", method=None, probe=False, rows=rows)
    run = load_run(tmp_path / "run")
    assert math.isnan(run.metrics.loc[4, "loss"]) and math.isnan(run.metrics.loc[4, "rewards/chosen"])
    assert math.isnan(run.metrics.loc[5, "grad_norm"])  # Infinity is a gap too
    assert run.metrics.loc[4, "skipped"] and not run.metrics.loc[3, "skipped"]
    assert run.metrics.loc[3, "loss"] == pytest.approx(0.66)
    assert run.probe is None and run.method is None and run.label == "run"
    assert_png(plot_training([run], tmp_path / "plots"))
    assert plot_likelihood([run], tmp_path / "plots") is None


def test_a_column_all_null_does_not_crash(tmp_path) -> None:
    rows = [metric_row(s, grad_norm=None, **{"alpha/mean": None, "alpha/min": None, "alpha/max": None})
            for s in range(1, 5)]
    run = load_run(make_run(tmp_path, "r", rows=rows))
    assert run.metrics["grad_norm"].isna().all() and run.metrics["grad_norm"].dtype == np.float64
    assert_png(plot_training([run], tmp_path / "out"))


def test_labels_are_methods_made_unique_with_folder_names(tmp_path) -> None:
    runs = [load_run(make_run(tmp_path, "a", "pgdpo")), load_run(make_run(tmp_path, "b", "pgdpo")),
            load_run(make_run(tmp_path, "c", "dpo")), load_run(make_run(tmp_path, "d", None))]
    assert run_labels(runs) == ["pgdpo (a)", "pgdpo (b)", "dpo", "d"]


# the command


def test_one_run_writes_both_pngs_under_run_plots(tmp_path) -> None:
    run = make_run(tmp_path, "run")
    result = invoke(str(run))
    assert result.exit_code == 0, result.output
    training, likelihood = run / "plots" / "training.png", run / "plots" / "likelihood.png"
    assert result.stdout.splitlines() == [str(training), str(likelihood)]
    assert_png(training)
    assert_png(likelihood)


def _drawn(draw, runs, out: Path) -> list:
    """The figures ``draw(runs, out)`` saves."""
    from matplotlib.figure import Figure

    seen: list[Figure] = []
    original = Figure.savefig

    def capture(self, *args, **kwargs):
        seen.append(self)
        return original(self, *args, **kwargs)

    Figure.savefig = capture
    try:
        draw(runs, out)
    finally:
        Figure.savefig = original
    return seen


def test_likelihood_plot_has_the_titled_curves(tmp_path) -> None:
    run = load_run(make_run(tmp_path, "run"))
    ax = _drawn(plot_likelihood, [run], tmp_path / "out")[0].axes[0]
    assert ax.get_title() == LIKELIHOOD_TITLE
    styles = [(line.get_linestyle(), list(line.get_ydata())) for line in ax.get_lines() if len(line.get_xdata()) > 2]
    assert ("-", [0.0, -0.04, -0.08, -0.12]) in [(s, pytest.approx(y)) for s, y in styles]
    assert any(s == "--" for s, _ in styles)


def test_missing_probe_skips_likelihood_with_a_note(tmp_path) -> None:
    run = make_run(tmp_path, "run", probe=False)
    result = invoke(str(run))
    assert result.exit_code == 0, result.output
    assert "probe.jsonl" in error_line(result)
    assert_png(run / "plots" / "training.png")
    assert not (run / "plots" / "likelihood.png").exists()
    assert result.stdout.splitlines() == [str(run / "plots" / "training.png")]


def test_two_runs_overlay_into_out(tmp_path) -> None:
    first = make_run(tmp_path, "pg", "pgdpo", steps=12)
    second = make_run(tmp_path, "dpo", "dpo", steps=8,
                      rows=[{k: v for k, v in metric_row(s).items() if not k.startswith(("alpha", "gamma"))}
                            for s in range(1, 9)])
    out = tmp_path / "compare"
    result = invoke(str(first), str(second), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [str(out / "training.png"), str(out / "likelihood.png")]
    assert_png(out / "training.png")
    assert_png(out / "likelihood.png")
    assert not (first / "plots").exists()


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("missing", "does not exist"),
        ("no_metrics", "has no metrics.jsonl"),
        ("empty", "is empty"),
        ("torn_only", "is empty"),
        ("bad_line", "metrics.jsonl, line 1: not valid JSON"),
        ("two_without_out", "--out is required"),
    ],
)
def test_errors_are_one_line_with_exit_2(tmp_path, setup, expected) -> None:
    run = tmp_path / "run"
    args = [str(run)]
    if setup != "missing":
        run.mkdir()
    if setup == "empty":
        (run / "metrics.jsonl").write_text("", encoding="utf-8")
    elif setup == "torn_only":
        (run / "metrics.jsonl").write_text('{"step": 1, "lo', encoding="utf-8")
    elif setup == "bad_line":
        (run / "metrics.jsonl").write_text("nope\n" + json.dumps(metric_row(2)) + "\n", encoding="utf-8")
    elif setup == "two_without_out":
        args = [str(make_run(tmp_path, "a")), str(make_run(tmp_path, "b"))]
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert expected in error_line(result)
    assert not list(tmp_path.rglob("*.png"))


def test_series_colours_integer_steps_and_random_weights_in_the_title(tmp_path) -> None:
    from matplotlib.colors import to_hex

    def random_run(name: str, steps: int):
        folder = make_run(tmp_path, name, steps=steps)
        (folder / "train.json").write_text(json.dumps({"loss": "pgdpo", "random_weights": True}), encoding="utf-8")
        return load_run(folder)

    run = random_run("short", 3)  # 3 steps: a default axis would put ticks at 1.5, 2.5
    assert run.random_weights
    figure = _drawn(plot_training, [run], tmp_path / "out")[0]
    assert "random weights" in figure.get_suptitle()
    rewards = next(ax for ax in figure.axes if ax.get_title() == "rewards")
    colours = {to_hex(line.get_color()) for line in rewards.get_lines() if len(line.get_xdata()) == 3}
    assert len(colours) == 3  # chosen, rejected and margins each in its own colour
    legend = {text.get_text(): to_hex(handle.get_color())
              for text, handle in zip(rewards.get_legend().get_texts(), rewards.get_legend().legend_handles)}
    assert set(legend) == {"chosen", "rejected", "margins"} and set(legend.values()) == colours
    for ax in figure.axes:
        if ax.get_visible():
            low, high = ax.get_xlim()
            ticks = [t for t in ax.get_xticks() if low <= t <= high]
            assert ticks and all(float(t).is_integer() for t in ticks), (ax.get_title(), ticks)
    likelihood = _drawn(plot_likelihood, [random_run("long", 8)], tmp_path / "out")[0].axes[0]
    assert likelihood.get_title() == LIKELIHOOD_TITLE + " (random weights)"
    assert len({to_hex(line.get_color()) for line in likelihood.get_lines() if len(line.get_xdata()) > 2}) == 2


def test_several_runs_name_the_random_weight_one(tmp_path) -> None:
    random_run = make_run(tmp_path, "a", method="dpo")
    (random_run / "train.json").write_text(json.dumps({"loss": "dpo", "random_weights": True}), encoding="utf-8")
    runs = [load_run(random_run), load_run(make_run(tmp_path, "b", method="pgdpo"))]
    figure = _drawn(plot_training, runs, tmp_path / "out")[0]
    assert "random weights" not in figure.get_suptitle()
    labels = [text.get_text() for legend in figure.legends for text in legend.get_texts()]
    assert labels == ["dpo (random weights)", "pgdpo"]
