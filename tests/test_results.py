"""The run directory: journal, torn writes, atomic views, summary statistics, configuration binding."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vbench_pref.errors import RunConfigMismatch
from vbench_pref.evaluator import ScoreSpec
from vbench_pref.matching import VideoTask
from vbench_pref.results import Record, RunDir, config_differences
from vbench_pref.stats import bootstrap_ci, summarize


def test_bootstrap_ci_matches_an_independent_percentile_bootstrap() -> None:
    values = np.random.default_rng(3).normal(0.5, 0.1, size=40)
    rng = np.random.default_rng(0)
    means = np.array([values[rng.integers(0, 40, 40)].mean() for _ in range(1000)])
    assert bootstrap_ci(values) == pytest.approx((np.percentile(means, 2.5), np.percentile(means, 97.5)), abs=1e-12)
    low, high = bootstrap_ci(values)
    assert low < values.mean() < high


def test_summary_counts_missing_and_never_fills_zero() -> None:
    summary = summarize(np.array([0.2, np.nan, 0.4]))
    assert summary["n"] == 2 and summary["n_missing"] == 1
    assert summary["mean"] == pytest.approx(0.3) and summary["std"] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    empty = summarize(np.array([np.nan]))
    assert math.isnan(empty["mean"]) and empty["n"] == 0


def test_torn_last_line_is_ignored_and_repaired(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.append([Record("a.mp4", "e", {"s": 0.5}), Record("b.mp4", "e", error="decode: bad")])
    with open(tmp_path / "records.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"video": "c.mp4", "evalu')
    assert [r.video for r in run.read_records()] == ["a.mp4", "b.mp4"]
    run.repair_journal()
    run.append([Record("c.mp4", "e", {"s": math.nan})])
    records = run.read_records()
    assert [r.video for r in records] == ["a.mp4", "b.mp4", "c.mp4"] and math.isnan(records[2].scores["s"])


def test_materialize_writes_the_contract(tmp_path: Path) -> None:
    tasks = [VideoTask("a.mp4", tmp_path / "a.mp4", "p a"), VideoTask("b.mp4", tmp_path / "b.mp4", "p b")]
    columns = {"e.s": ("e", ScoreSpec("s", True, (0, 1))), "f": ("f", ScoreSpec("f", False))}
    records = [
        Record("a.mp4", "e", {"s": 0.5}), Record("a.mp4", "f", {"f": 2.0}),
        Record("b.mp4", "e", error="decode: broken"), Record("b.mp4", "f", error="decode: broken"),
        Record("b.mp4", "f", {"f": 4.0}),  # a retry that succeeded supersedes the error
    ]
    summary = RunDir(tmp_path).materialize(tasks, columns, records)
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert list(scores.columns) == ["video", "prompt", "e.s", "f", "model_random_weights", "e.s.random_weights",
                                    "f.random_weights"]
    assert scores["f"].tolist() == [2.0, 4.0] and math.isnan(scores["e.s"][1])
    errors = pd.read_csv(tmp_path / "errors.csv")
    assert errors.to_dict("records") == [{"video": "b.mp4", "evaluator": "e", "error": "decode: broken"}]
    typed = pd.read_parquet(tmp_path / "scores.parquet")
    assert str(typed["e.s"].dtype) == "float64" and str(typed["video"].dtype) == "string"
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["scores"]["e.s"]["n_missing"] == 1 and on_disk["scores"]["f"]["higher_is_better"] is False
    assert summary["n_videos"] == 2
    assert set(pd.read_csv(tmp_path / "summary.csv")["score"]) == {"e.s", "f"}
    assert not list(tmp_path.glob(".*.tmp"))
    assert "random_weights" not in scores.columns and on_disk["scores"]["f"]["random_weights"] is False
    assert not scores["f.random_weights"].any() and scores.model_random_weights.isna().all()


def test_random_weight_columns_are_labelled_in_every_file(tmp_path: Path) -> None:
    tasks = [VideoTask("a.mp4", tmp_path / "a.mp4", "p")]
    columns = {"f": ("f", ScoreSpec("f", True)), "g": ("g", ScoreSpec("g", True))}
    records = [Record("a.mp4", "f", {"f": 1.0}), Record("a.mp4", "g", {"g": 2.0})]
    RunDir(tmp_path).materialize(tasks, columns, records, random_columns=("g",), model_random_weights=True)
    assert pd.read_csv(tmp_path / "scores.csv").random_weights.tolist() == ["g"]
    typed = pd.read_parquet(tmp_path / "scores.parquet")
    assert typed[["model_random_weights", "f.random_weights", "g.random_weights"]].iloc[0].tolist() == [True, False, True]
    assert str(typed["g.random_weights"].dtype) == "boolean"
    assert pd.read_parquet(tmp_path / "scores.parquet").random_weights.tolist() == ["g"]
    assert pd.read_csv(tmp_path / "summary.csv").set_index("score").random_weights.to_dict() == {"f": False, "g": True}
    assert json.loads((tmp_path / "summary.json").read_text())["scores"]["g"]["random_weights"] is True


def test_binding_refuses_another_configuration(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    assert run.bind({"a": 1}) is False
    run.write_run_json({"config": {"a": 1, "b": {"c": 2}}})
    assert run.bind({"a": 1, "b": {"c": 2}}) is True
    with pytest.raises(RunConfigMismatch, match="b.c differ"):
        run.bind({"a": 1, "b": {"c": 3}})
    assert config_differences({"x": 1}, {"y": 1}) == ["x", "y"]
