"""The run directory: per-video scores, errors, summary and provenance, written incrementally and atomically.

Files of a run directory::

    records.jsonl   the resume journal: one JSON line per (video, evaluator) outcome, appended and fsynced
                    as work finishes; a torn last line (the process died mid-write) is ignored on resume
    scores.csv      one row per video: video, prompt, then one column per score (<evaluator>[.<score>])
    scores.parquet  the same, typed
    errors.csv      video, evaluator, error — one row per (video, evaluator) that could not be scored
    summary.csv     per score column: mean, std, n, n_missing, ci95_low, ci95_high (+ direction)
    summary.json    the same plus n_videos, for the leaderboard
    features/       set-level evaluators' feature vectors (``vbench_pref.distribution.features``); their
                    distances to the reference set join summary.csv/json when the run finishes, with
                    ``reference`` (the set's name) and ``n_reference`` (its videos)
    run.json        provenance and the configuration this directory is bound to

Every file but the journal is rewritten whole through a temporary file and one rename.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from vbench_pref.atomic import append_synced, atomic_path, atomic_write_text, cut_torn_line
from vbench_pref.errors import RunConfigMismatch, VbenchPrefError
from vbench_pref.evaluator import ScoreSpec
from vbench_pref.matching import VideoTask
from vbench_pref.stats import summarize

RECORDS = "records.jsonl"
SHARD_RECORDS_GLOB = "records.rank*.jsonl"


def shard_journal(rank: int) -> str:
    return f"records.rank{rank}.jsonl"


RUN_JSON = "run.json"


@dataclass
class Record:
    """The outcome of one evaluator on one video: its scores, or the error that prevented them."""

    video: str
    evaluator: str
    scores: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> str:
        scores = {k: (None if math.isnan(v) else v) for k, v in self.scores.items()}
        payload = {"video": self.video, "evaluator": self.evaluator, "scores": scores, "error": self.error}
        return json.dumps(payload, ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> "Record":
        data = json.loads(line)
        scores = {k: (math.nan if v is None else float(v)) for k, v in data["scores"].items()}
        return cls(data["video"], data["evaluator"], scores, data.get("error"))


def latest_records(records: Iterable[Record]) -> dict[tuple[str, str], Record]:
    """The outcome per (video, evaluator): the newest, except that an error never supersedes a success.

    A scored pair is never scored again, so within one journal the newest wins anyway; across the
    journals of sharded processes, read one file after another, order says nothing.
    """
    latest: dict[tuple[str, str], Record] = {}
    for record in records:
        key = (record.video, record.evaluator)
        previous = latest.get(key)
        if previous is None or record.error is None or previous.error is not None:
            latest[key] = record
    return latest


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _jsonable(value: Any) -> Any:
    """NaN is not JSON: write it as null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def config_differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two configurations."""
    keys = sorted(set(old) | set(new))
    out: list[str] = []
    for key in keys:
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(config_differences(a, b, f"{prefix}{key}."))
        elif a != b:
            out.append(f"{prefix}{key}")
    return out


def _compared(old: dict[str, Any], new: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The parts of two run configurations that must agree: the videos' content, not the folder they are in
    (the same folder spelled otherwise, or moved with its run folder, is the same input). A run recorded
    before the content digest was kept is still compared by its videos' folder."""
    old_inputs, new_inputs = dict(old.get("inputs") or {}), dict(new.get("inputs") or {})
    if "content" in old_inputs:
        old_inputs.pop("videos", None)
        new_inputs.pop("videos", None)
    else:
        new_inputs.pop("content", None)
    return {**old, "inputs": old_inputs}, {**new, "inputs": new_inputs}


class RunDir:
    """One scoring run's output folder."""

    def __init__(self, path: str | os.PathLike[str], journal: str = RECORDS) -> None:
        self.path = Path(path)
        self.journal = journal  # this process's journal; sharded runs give each process its own

    def journals(self) -> list[Path]:
        """Every journal of the run: ``records.jsonl`` and those of sharded processes (``records.rank*.jsonl``)."""
        return [p for p in [self.path / RECORDS, *sorted(self.path.glob(SHARD_RECORDS_GLOB))] if p.is_file()]

    # --- configuration binding ---
    def read_run_json(self) -> dict[str, Any] | None:
        file = self.path / RUN_JSON
        if not file.is_file():
            return None
        try:
            return json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            raise VbenchPrefError(f"{file} is not valid JSON; move the folder away or use a new --out") from None

    def bind(self, config: dict[str, Any]) -> bool:
        """Refuse a folder made with another configuration. Returns True when resuming."""
        if self.path.exists() and not self.path.is_dir():
            raise VbenchPrefError(f"--out {self.path} exists and is not a folder")
        existing = self.read_run_json()
        if existing is None:
            if self.path.is_dir() and self.journals():
                raise RunConfigMismatch(f"{self.path} holds scores but no run.json; use a new --out")
            return False
        differences = config_differences(*_compared(existing.get("config", {}), config))
        if differences:
            raise RunConfigMismatch(
                f"{self.path} holds a run with a different configuration ({', '.join(differences[:6])} "
                "differ); use a new --out or the same options as before"
            )
        return True

    def write_run_json(self, provenance: dict[str, Any]) -> None:
        atomic_write_text(self.path / RUN_JSON, json.dumps(_jsonable(provenance), indent=2, ensure_ascii=False) + "\n")

    # --- the journal ---
    def read_records(self) -> list[Record]:
        records = []
        for file in self.journals():
            with open(file, encoding="utf-8") as handle:
                for line in handle:
                    if not line.endswith("\n"):
                        break  # torn write of a killed process: that work is redone
                    try:
                        records.append(Record.from_json(line))
                    except (json.JSONDecodeError, KeyError):
                        break
        return records

    def repair_journal(self) -> None:
        """Cut a torn last line so that new records start on a line of their own."""
        cut_torn_line(self.path / self.journal)

    def append(self, records: Iterable[Record]) -> None:
        lines = "".join(r.to_json() + "\n" for r in records)
        if not lines:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        append_synced(self.path / self.journal, lines)

    # --- materialised views ---
    def materialize(
        self,
        tasks: list[VideoTask],
        columns: dict[str, tuple[str, ScoreSpec]],
        records: list[Record],
        random_columns: tuple[str, ...] = (),
        model_random_weights: bool | None = None,
        distances: dict[str, dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Rewrite scores/errors/summary from the journal. ``columns``: column -> (evaluator, spec).

        ``distances``: summary entries of set-level evaluators (``distribution.aggregate.distance_entries``),
        added to summary.json and summary.csv as they are.

        Columns in ``random_columns`` come from random-weight smoke-test models: every file says so (a
        ``random_weights`` column in scores.csv and summary.csv, a flag in summary.json). scores.csv also
        holds it as data: a boolean ``<column>.random_weights`` per score column and ``model_random_weights``
        for the model that made the videos (empty when unknown, e.g. videos made elsewhere).
        """
        latest = latest_records(records)
        prompts = {t.video: t.prompt for t in tasks}
        touched = {video for video, _ in latest}
        rows = []
        for task in tasks:
            if task.video not in touched:
                continue
            row: dict[str, Any] = {"video": task.video, "prompt": prompts[task.video] or ""}
            for column, (evaluator, spec) in columns.items():
                record = latest.get((task.video, evaluator))
                value = record.scores.get(spec.name, math.nan) if record and not record.error else math.nan
                row[column] = value
            rows.append(row)
        scores = pd.DataFrame(rows, columns=["video", "prompt", *columns])
        scores = scores.astype({"video": "string", "prompt": "string", **{c: "float64" for c in columns}})
        if random_columns:
            scores["random_weights"] = pd.Series([";".join(random_columns)] * len(scores), dtype="string")
        scores["model_random_weights"] = pd.Series([model_random_weights] * len(scores), dtype="boolean")
        for column in columns:
            scores[f"{column}.random_weights"] = pd.Series([column in random_columns] * len(scores), dtype="boolean")
        errors = pd.DataFrame(
            [
                {"video": r.video, "evaluator": r.evaluator, "error": r.error}
                for (video, _), r in latest.items()
                if r.error is not None and video in prompts
            ],
            columns=["video", "evaluator", "error"],
        )
        summary = {
            column: {
                **summarize(scores[column].to_numpy(dtype=np.float64, na_value=np.nan)),
                "higher_is_better": spec.higher_is_better,
                "range": list(spec.range),
                "evaluator": evaluator,
                "score": spec.name,
                "random_weights": column in random_columns,
            }
            for column, (evaluator, spec) in columns.items()
        }
        summary.update(distances or {})
        self._write_frame(scores, "scores.csv")
        with atomic_path(self.path / "scores.parquet") as tmp:
            scores.to_parquet(tmp, index=False)
        self._write_frame(errors, "errors.csv")
        summary_rows = [
            {
                "score": column,
                "mean": s["mean"],
                "std": s["std"],
                "n": s["n"],
                "n_missing": s["n_missing"],
                "ci95_low": s["ci95"][0],
                "ci95_high": s["ci95"][1],
                "higher_is_better": s["higher_is_better"],
                "random_weights": s["random_weights"],
                **({"reference": s.get("reference"), "n_reference": s.get("n_reference")} if distances else {}),
            }
            for column, s in summary.items()
        ]
        self._write_frame(pd.DataFrame(summary_rows), "summary.csv")
        payload = {"n_videos": len(scores), "scores": summary}
        atomic_write_text(self.path / "summary.json", json.dumps(_jsonable(payload), indent=2) + "\n")
        return payload

    def _write_frame(self, frame: pd.DataFrame, name: str) -> None:
        with atomic_path(self.path / name) as tmp:
            frame.to_csv(tmp, index=False)

