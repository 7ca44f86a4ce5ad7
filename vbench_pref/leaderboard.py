"""The leaderboard: measured runs (+ reported rows with their source, + user studies) → one CSV and one Markdown file.

Inputs
    * measured run directories (``run.json`` + ``summary.json`` written by the scoring engine, and its
      ``scores.csv`` for the paired test);
    * reported CSV files (numbers copied from papers), columns ``model, method, source, <score columns>``
      plus optional ``note``, ``table``, ``n_videos``; lines starting with ``#`` are metadata
      (``# higher_is_better: a, b``, ``# lower_is_better: c``, ``# source: default source``,
      ``# suite: the prompts the paper used``; other keys are free-form comments);
    * study folders (``vbench-pref study create``; ``load_study``): one row per compared method, with
      ``user_study.<aspect>`` columns = the method's share of human judgements won against the study's
      baseline (ties count half, 0-1, higher is better), the study's 95% two-way bootstrap interval (over
      participants and prompts) and n = judgements; the baseline's row has no value. Source
      ``study:<study id>``; a column note under the tables says what the number is.

Distances
    A set-level evaluator's distance (FVD, FID, KID; summary.json entries with ``kind: distance``) is lower
    is better and its column names the reference set it was measured against, ``<column> [ref: <set>]``, so
    distances to different reference sets are never in one column. Its ``n`` is the generated videos and its
    interval the distance's bootstrap interval; having no per-video scores, it is separated by intervals.

Sections
    Numbers are only compared when they were measured on the same prompts. Measured runs are grouped by
    their prompt suite, as run.json records it (``suite``: name, and the sha256 of the prompt ids and
    texts scored; see ``scoring.suite_digest``): one section per (name, digest). A run.json without a
    ``suite`` (written before it was recorded) goes to a section named after its ``--prompts`` file, else
    ``unknown``, with a warning. Each reported file is a section of its own, never mixed with measured
    rows: a paper's prompts are not ours. A study's rows are measured rows of the suite its runs scored
    (the plan's suite name and digest). Within a section, one table per base model.

Rows
    One row per (model, method) per section: measured runs with the same (suite, model, method) are
    combined into one row when their score columns are disjoint. When two runs give the same column
    for the same (suite, model, method), the newer one (run.json ``updated``, a study's plan ``created``;
    ties: the one given later) keeps it and a warning names the older; a run left with no column is dropped. The same
    directory given twice counts once. A study's rows carry the model and method of the runs it compared,
    so they merge with those runs' rows (two of its methods sharing a model and method get the study's
    label appended to the method, so they stay apart); the same study folder given twice counts once.

Best marking
    Per column, within each base model of a section, using the column's direction; a column needs at
    least two ranked values; cells computed with random weights are never ranked (a smoke test, not a
    measurement). The top value is marked best (``best``, bold) only when it is separated from every
    other value; otherwise it and every value not separated from it are tied for best (``tied_best``,
    ``≈``). Separated means, for two measured rows:

    * paired, when both runs have per-video scores for prompts in common (``scores.csv``, videos of one
      prompt averaged, prompts matched by text, else by video id): a two-sided paired sign-flip
      permutation test over those prompts (``stats.paired_permutation_test``) gives p < 0.05 and the
      mean difference favours the top value (five prompts or fewer can never reach it);
    * otherwise: their 95% bootstrap intervals do not overlap (a row without an interval is not separated).

    Reported rows have no per-video data and no intervals, so they are not tested: within a reported
    section the top value at the 4 decimals the Markdown shows is best, equal values are tied.

CSV (``<prefix>.csv``), one line per row, in the Markdown's row order::

    suite, suite_digest, model, method, model_random_weights, n_videos, <score columns...>,
    source, note, random_weights, best, tied_best,
    <col>.n ..., <col>.ci95_low ..., <col>.ci95_high ..., <col>.random_weights ...

    * ``suite``: the suite's name (reported rows: ``# suite`` or ``as reported``); ``suite_digest``: the
      sha256 of its prompts (empty when unknown and on reported rows);
    * ``model_random_weights``: true when the generator had random weights (run.json
      ``model_random_weights``, else the model label says ``(random weights)``); empty when unknown;
      false on reported rows;
    * score cells are the plain means (floats, full precision; empty = missing);
    * ``random_weights`` / ``best`` / ``tied_best``: ``;``-separated score columns of that row computed
      with random weights / where that row is the separated best / tied for best of its model group;
    * ``<col>.n`` (videos behind the mean; judgements for ``user_study.*``), ``<col>.ci95_low`` and ``<col>.ci95_high`` (the 95%
      percentile bootstrap interval of the mean, as summary.json gives it: not symmetric around it)
      and ``<col>.random_weights`` (true/false; empty where the row has no value) appear only for
      score columns measured by at least one run; ``.n`` and the interval are empty on reported rows.

Markdown (``<prefix>.md``): a title, a legend, one section per suite with one table per base model
(header cells carry ↑/↓), measured means as ``mean [low, high]``, the best in bold, ties with ``≈``,
``†`` on random-weight cells, then numbered sources, notes and warnings.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from vbench_pref.atomic import atomic_write_text
from vbench_pref.errors import VbenchPrefError
from vbench_pref.stats import paired_permutation_test

__all__ = [
    "Leaderboard",
    "Row",
    "Section",
    "build_leaderboard",
    "load_reported",
    "load_run",
    "load_study",
    "output_paths",
    "render_csv",
    "render_markdown",
    "run",
    "superseded_by",
    "write_leaderboard",
]

# Cells of a reported file that are not scores.
_REPORTED_META_COLUMNS = ("model", "method", "source", "note", "table", "n_videos")
_DECIMALS = 4
_MISSING_MD = "—"
_DAGGER = "†"
_TIE = "≈"
_RANDOM_FOOTNOTE = "random weights — smoke test, not a measurement"
_RANDOM_LABEL = "(random weights)"
_UNKNOWN = "(unknown)"
_UNKNOWN_SUITE = "unknown"
_AS_REPORTED = "as reported"
ALPHA = 0.05  # the paired test's level: below it, the top value is separated from the other


@dataclass
class Row:
    """One leaderboard row before it becomes a DataFrame line.

    ``origin`` identifies where the row came from (``"runs"`` for measured rows, the reported file's
    path otherwise); rows with the same (suite, model, method) are merged only within the origin ``"runs"``.
    """

    model: str
    method: str
    source: str
    origin: str
    scores: dict[str, float | None] = field(default_factory=dict)
    n: dict[str, int] = field(default_factory=dict)
    ci95: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)  # (low, high)
    random_weights: set[str] = field(default_factory=set)
    n_videos: int | None = None
    note: str = ""
    run_ids: tuple[str, ...] = ()
    column_runs: dict[str, str] = field(default_factory=dict)  # column -> run id that measured it
    # direction of each column as this row's input declares it (measured rows only)
    directions: dict[str, bool] = field(default_factory=dict)
    suite: str = _UNKNOWN_SUITE
    suite_digest: str | None = None
    suite_prompts: int | None = None
    model_random_weights: bool | None = None  # None: unknown
    # column -> per-prompt mean score (prompt text, else video id -> mean): the paired test's input
    per_prompt: dict[str, pd.Series] = field(default_factory=dict)
    run_dir: str = ""  # resolved path of a measured run
    updated: float = 0.0  # when the run was last written (seconds since the epoch): the newer run wins

    @property
    def section_key(self) -> tuple[str, ...]:
        if self.origin != "runs":
            return ("reported", self.origin)
        return ("runs", self.suite, self.suite_digest or "")


@dataclass(frozen=True)
class Section:
    """One suite's part of the leaderboard: a heading, a line under it, and its rows in ``table``."""

    title: str
    detail: str
    rows: tuple[int, ...]  # positions in Leaderboard.table
    measured: bool


@dataclass(frozen=True)
class Leaderboard:
    """Pure data: the table as it goes to the CSV, plus what the Markdown needs to draw it."""

    table: pd.DataFrame
    score_columns: tuple[str, ...]
    # column -> True (higher is better), False (lower is better), None (unknown: shown, not ranked)
    directions: Mapping[str, bool | None]
    warnings: tuple[str, ...] = ()
    title: str = "vbench-pref leaderboard"
    sections: tuple[Section, ...] = ()
    column_notes: tuple[str, ...] = ()  # "<column> (<reported file> | study:<id>): text" for the columns on the board

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(self.table["model"]))


# --------------------------------------------------------------------------------------------------
# reading inputs


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise VbenchPrefError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VbenchPrefError(f"{path}: cannot read JSON ({_one_line(exc)})") from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _as_float(value: Any) -> float | None:
    """A JSON number → float; null/NaN → None (missing stays missing, never 0)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _column_is_random(column: str, evaluator: str | None, random_entries: Iterable[str]) -> bool:
    # run.json lists score columns; accept evaluator names too, so an engine that writes
    # "videoalign" still marks "videoalign.vq" — a missed dagger would pass a smoke test off as a result.
    for entry in random_entries:
        if column == entry or column.startswith(entry + ".") or (evaluator is not None and evaluator == entry):
            return True
    return False


def _random_entries(info: Mapping[str, Any]) -> list[str]:
    """Columns and evaluators run.json marks as random-weight: its list and each evaluator's flag."""
    listed = info.get("random_weights")
    entries = [str(x) for x in listed] if isinstance(listed, list) else []
    evaluators = info.get("evaluators")
    if isinstance(evaluators, list):
        entries += [str(e["name"]) for e in evaluators if isinstance(e, dict) and e.get("random_weights") is True and e.get("name")]
    return entries


def _model_random_weights(info: Mapping[str, Any], model: str) -> bool | None:
    flag = info.get("model_random_weights")
    if isinstance(flag, bool):
        return flag
    # run.json files written before the flag existed say it only in the label
    return True if _RANDOM_LABEL in model else None


def _suite_of(info: Mapping[str, Any]) -> tuple[str, str | None, int | None]:
    """(name, digest, number of prompts) from run.json; older files: the --prompts file's name."""
    suite = info.get("suite")
    if isinstance(suite, dict) and suite.get("name"):
        digest = suite.get("digest")
        prompts = suite.get("prompts")
        return (
            str(suite["name"]),
            str(digest) if isinstance(digest, str) and digest else None,
            prompts if isinstance(prompts, int) and not isinstance(prompts, bool) else None,
        )
    inputs = info.get("inputs")
    prompts_file = inputs.get("prompts") if isinstance(inputs, dict) else None
    return (Path(str(prompts_file)).name if prompts_file else _UNKNOWN_SUITE), None, None


def _updated(info: Mapping[str, Any], fallback: Path) -> float:
    for key in ("updated", "created"):
        try:
            return datetime.fromisoformat(str(info[key])).timestamp()
        except (KeyError, TypeError, ValueError):
            continue
    try:
        return fallback.stat().st_mtime
    except OSError:
        return 0.0


def _per_prompt_scores(scores_csv: Path, columns: Iterable[str]) -> dict[str, pd.Series]:
    """Per score column, the mean of each prompt's videos (keyed by prompt text, else video id).

    Empty when scores.csv is missing or unreadable: the row is then compared by its interval only.
    """
    if not scores_csv.is_file():
        return {}
    try:
        frame = pd.read_csv(scores_csv, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return {}
    if "video" not in frame.columns:
        return {}
    prompts = frame["prompt"] if "prompt" in frame.columns else pd.Series([""] * len(frame), dtype=str)
    keys = prompts.where(prompts != "", frame["video"])
    out: dict[str, pd.Series] = {}
    for column in columns:
        if column in frame.columns:
            values = pd.to_numeric(frame[column], errors="coerce")
            out[column] = values.groupby(keys.to_numpy()).mean().dropna()
    return out


def load_run(run_dir: str | os.PathLike[str]) -> list[Row]:
    """Read one measured run directory into its (single) leaderboard row.

    Raises VbenchPrefError (one line, naming the file) when run.json or summary.json is missing,
    unreadable or holds no scores.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise VbenchPrefError(f"{run_dir}: run directory not found")
    run_json = run_dir / "run.json"
    summary_json = run_dir / "summary.json"
    if not run_json.is_file():
        raise VbenchPrefError(f"{run_json}: file not found (is {run_dir} a vbench-pref run directory?)")
    if not summary_json.is_file():
        raise VbenchPrefError(f"{summary_json}: file not found (the run has no scores yet; run `vbench-pref score` first)")
    info = _read_json(run_json)
    summary = _read_json(summary_json)
    if not isinstance(info, dict):
        raise VbenchPrefError(f"{run_json}: expected a JSON object")
    if not isinstance(summary, dict) or not isinstance(summary.get("scores"), dict):
        raise VbenchPrefError(f"{summary_json}: expected a JSON object with a 'scores' object")
    scores = summary["scores"]
    if not scores:
        raise VbenchPrefError(f"{summary_json}: no scores (empty run)")

    run_id = str(info.get("run_id") or run_dir.name)
    status = info.get("status") or {}
    complete = bool(status.get("complete", False)) if isinstance(status, dict) else False
    random_entries = _random_entries(info)
    suite, digest, n_prompts = _suite_of(info)
    model = str(info["model"]) if info.get("model") else _UNKNOWN

    row = Row(
        model=model,
        method=str(info["method"]) if info.get("method") else _UNKNOWN,
        source=f"run:{run_id}" + ("" if complete else " (incomplete)"),
        origin="runs",
        run_ids=(run_id,),
        suite=suite,
        suite_digest=digest,
        suite_prompts=n_prompts,
        model_random_weights=_model_random_weights(info, model),
        run_dir=str(run_dir.resolve()),
        updated=_updated(info, summary_json),
    )
    for column, entry in scores.items():
        column = str(column)
        if not isinstance(entry, dict):
            raise VbenchPrefError(f"{summary_json}: score {column!r} is not an object")
        column = distance_column(column, entry)
        row.scores[column] = _as_float(entry.get("mean"))
        row.column_runs[column] = run_id
        n = entry.get("n")
        row.n[column] = int(n) if isinstance(n, (int, float)) and not isinstance(n, bool) else 0
        ci = entry.get("ci95") or [None, None]
        row.ci95[column] = (_as_float(ci[0]), _as_float(ci[1])) if isinstance(ci, (list, tuple)) and len(ci) == 2 else (None, None)
        if isinstance(entry.get("higher_is_better"), bool):
            row.directions[column] = entry["higher_is_better"]
        evaluator = entry.get("evaluator")
        if entry.get("random_weights") is True or _column_is_random(column, str(evaluator) if evaluator else None, random_entries):
            row.random_weights.add(column)
    row.n_videos = max(row.n.values()) if row.n else None
    row.per_prompt = _per_prompt_scores(run_dir / "scores.csv", row.scores)
    return [row]


def distance_column(column: str, entry: Mapping[str, Any]) -> str:
    """A set-level distance's column names its reference set (``fvd [ref: ucf101]``): distances to different
    reference sets never share a column."""
    reference = entry.get("reference")
    return f"{column} [ref: {reference}]" if entry.get("kind") == "distance" and reference else column


def _parse_metadata(path: Path, lines: list[str]) -> tuple[dict[str, bool], str, str]:
    """``# key: value`` lines → (directions, default source, suite). Unknown keys are free-form comments."""
    directions: dict[str, bool] = {}
    default_source = ""
    suite = ""
    for line in lines:
        body = line.lstrip("#").strip()
        key, sep, value = body.partition(":")
        if not sep:
            continue
        key = key.strip().lower()
        if key in ("higher_is_better", "lower_is_better"):
            higher = key == "higher_is_better"
            for column in (c.strip() for c in value.split(",")):
                if not column:
                    continue
                if directions.get(column, higher) != higher:
                    raise VbenchPrefError(f"{path}: column {column!r} is listed as both higher_is_better and lower_is_better")
                directions[column] = higher
        elif key == "source":
            default_source = value.strip()
        elif key == "suite":
            suite = value.strip()
    return directions, default_source, suite


def reported_column_notes(path: str | os.PathLike[str]) -> dict[str, str]:
    """A reported file's ``# <key>: text`` comments by key; those keyed by a column shown on the board are its
    column notes (e.g. which model and score a paper's column was mapped to), rendered under the tables."""
    notes: dict[str, str] = {}
    for line in Path(path).read_text(encoding="utf-8-sig").splitlines():
        if line.startswith("#"):
            key, sep, value = line.lstrip("#").partition(":")
            if sep and value.strip():
                notes[key.strip()] = value.strip()
    return notes


def load_reported(path: str | os.PathLike[str]) -> tuple[list[Row], dict[str, bool]]:
    """Read a reported CSV: its rows (file order) and the directions its ``#`` metadata declares."""
    path = Path(path)
    if not path.is_file():
        raise VbenchPrefError(f"{path}: reported file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise VbenchPrefError(f"{path}: cannot read ({_one_line(exc)})") from None

    meta_lines: list[str] = []
    data_lines: list[tuple[int, str]] = []  # (1-based line number in the file, text)
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("#"):
            meta_lines.append(line)
        elif line.strip():
            data_lines.append((number, line))
    directions, default_source, suite = _parse_metadata(path, meta_lines)
    if not data_lines:
        raise VbenchPrefError(f"{path}: no header line (expected columns model, method, source, <scores...>)")

    try:
        records = list(csv.reader([line for _, line in data_lines], strict=True))
    except csv.Error as exc:
        raise VbenchPrefError(f"{path}: malformed CSV ({_one_line(exc)})") from None
    header = [h.strip() for h in records[0]]
    for required in ("model", "method"):
        if required not in header:
            raise VbenchPrefError(f"{path}: no {required!r} column (header: {', '.join(header)})")
    if len(set(header)) != len(header):
        dup = sorted({h for h in header if header.count(h) > 1})
        raise VbenchPrefError(f"{path}: duplicate column(s) {', '.join(dup)}")
    score_columns = [h for h in header if h and h not in _REPORTED_META_COLUMNS]

    rows: list[Row] = []
    seen: dict[tuple[str, str], int] = {}
    for (line_no, _), record in zip(data_lines[1:], records[1:]):
        if len(record) != len(header):
            raise VbenchPrefError(f"{path}:{line_no}: {len(record)} cells, header has {len(header)}")
        cells = {h: c.strip() for h, c in zip(header, record)}
        model, method = cells["model"], cells["method"]
        if not model or not method:
            raise VbenchPrefError(f"{path}:{line_no}: empty model or method")
        if (model, method) in seen:
            raise VbenchPrefError(f"{path}:{line_no}: ({model}, {method}) already given on line {seen[(model, method)]}")
        seen[(model, method)] = line_no
        row = Row(
            model=model,
            method=method,
            source=cells.get("source") or default_source or f"reported:{path.name}",
            origin=str(path),
            note=cells.get("note", ""),
            suite=suite or _AS_REPORTED,
            model_random_weights=False,
        )
        for column in score_columns:
            cell = cells[column]
            if cell == "":
                row.scores[column] = None
                continue
            try:
                row.scores[column] = _as_float(float(cell))
            except ValueError:
                raise VbenchPrefError(f"{path}:{line_no}: column {column!r} is not a number: {cell!r}") from None
        if cells.get("n_videos"):
            try:
                row.n_videos = int(cells["n_videos"])
            except ValueError:
                raise VbenchPrefError(f"{path}:{line_no}: n_videos is not an integer: {cells['n_videos']!r}") from None
        rows.append(row)
    return rows, directions


USER_STUDY_PREFIX = "user_study."


def _study_method_names(plan: Any) -> tuple[dict[str, str], list[str]]:
    """Method label -> the leaderboard's method name: the run's method, or with the label added where two
    of the study's methods share a model and method (they must not merge into one row)."""
    keys = [(s.model, s.method) for s in plan.methods.values()]
    names: dict[str, str] = {}
    warnings: list[str] = []
    for label, source in plan.methods.items():
        if keys.count((source.model, source.method)) > 1:
            names[label] = f"{source.method} [{label}]"
            warnings.append(f"study {plan.study_id}: methods {label!r} and another share model {source.model!r} "
                            f"and method {source.method!r}; listed as {names[label]!r}")
        else:
            names[label] = source.method
    return names, warnings


def _run_model_random_weights(run_dir: str, model: str) -> bool | None:
    try:
        info = json.loads((Path(run_dir) / "run.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return True if _RANDOM_LABEL in model else None
    return _model_random_weights(info, model) if isinstance(info, dict) else None


def load_study(study: str | os.PathLike[str]) -> tuple[list[Row], dict[str, str], list[str]]:
    """A study folder's rows (one per method), its column notes and warnings.

    Each non-baseline method gets ``user_study.<aspect>`` = its win rate against the study's baseline (ties
    count half) with the study's two-way bootstrap interval and n = judgements (``vbench_pref.study``: every
    participant who failed an attention check excluded, 2000 replicates, seed 0); the baseline's row has no
    value. Rows take the plan's suite, model and method, so they join the eval runs of the same method.
    """
    from vbench_pref.study.analysis import RESAMPLES, SEED
    from vbench_pref.study.plan import ASPECTS
    from vbench_pref.study.report import study_analysis

    folder = Path(study)
    plan, result = study_analysis(folder)
    names, warnings = _study_method_names(plan)
    suite = plan.suite or {}
    digest, prompts = suite.get("digest"), suite.get("prompts")
    source = f"study:{plan.study_id}"
    try:
        updated = datetime.fromisoformat(plan.created).timestamp()
    except ValueError:
        updated = 0.0
    rates = result.vs_baseline.set_index(["method", "aspect"])
    rows = []
    for label, method in plan.methods.items():
        row = Row(
            model=method.model, method=names[label], source=source, origin="runs", run_ids=(source,),
            suite=str(suite.get("name") or _UNKNOWN_SUITE),
            suite_digest=str(digest) if isinstance(digest, str) and digest else None,
            suite_prompts=prompts if isinstance(prompts, int) and not isinstance(prompts, bool) else None,
            model_random_weights=_run_model_random_weights(method.run_dir, method.model),
            run_dir=f"{source}:{folder.resolve()}#{label}", updated=updated,
        )
        if label != plan.baseline:
            for aspect in plan.aspects:
                column = USER_STUDY_PREFIX + aspect
                found = (label, aspect) in rates.index
                rec = rates.loc[(label, aspect)] if found else None
                row.scores[column] = _as_float(rec["win_rate"]) if found else None
                row.n[column] = int(rec["n"]) if found else 0
                row.ci95[column] = (_as_float(rec["win_rate_low"]), _as_float(rec["win_rate_high"])) if found else (None, None)
                row.directions[column] = True
                row.column_runs[column] = source
        rows.append(row)
    baseline = plan.methods[plan.baseline]
    notes = {
        USER_STUDY_PREFIX + aspect: (
            f"user study: {ASPECTS.get(aspect, (aspect,))[0].lower()}, the share of human judgements won against "
            f"the baseline {baseline.model} / {baseline.method} (ties count half), 0-1; n = judgements, interval: "
            f"95% bootstrap over participants and prompts ({RESAMPLES} replicates, seed {SEED}); participants "
            "who failed an attention check excluded"
        )
        for aspect in plan.aspects
    }
    return rows, notes, warnings


# --------------------------------------------------------------------------------------------------
# building


def _drop_repeats(rows: list[Row]) -> tuple[list[Row], list[str]]:
    """The same run directory given twice counts once; a column given by two runs of the same
    (suite, model, method) stays with the newer run (run.json ``updated``; ties: the one given later)."""
    warnings: list[str] = []
    unique: list[Row] = []
    seen: set[str] = set()
    for row in rows:
        if row.run_dir in seen:
            warnings.append(f"run {row.run_ids[0]} ({row.run_dir}) is given twice: counted once")
            continue
        seen.add(row.run_dir)
        unique.append(row)
    claimed: dict[tuple[Any, ...], Row] = {}  # (section, model, method, column) -> the run keeping it
    newest_first = sorted(range(len(unique)), key=lambda i: (unique[i].updated, i), reverse=True)
    dropped: set[int] = set()
    for i in newest_first:
        row = unique[i]
        key = (*row.section_key, row.model, row.method)
        lost = [c for c in row.scores if (*key, c) in claimed]
        for column in row.scores:
            claimed.setdefault((*key, column), row)
        if not lost:
            continue
        newer = ", ".join(dict.fromkeys(claimed[(*key, c)].run_ids[0] for c in lost))
        what = f"suite {row.suite!r}, model {row.model!r}, method {row.method!r}"
        if len(lost) == len(row.scores):
            dropped.add(i)
            warnings.append(f"run {row.run_ids[0]} is replaced by the newer run {newer} ({what})")
            continue
        warnings.append(f"run {row.run_ids[0]}: {', '.join(lost)} replaced by the newer run {newer} ({what})")
        for column in lost:
            for table in (row.scores, row.n, row.ci95, row.directions, row.column_runs, row.per_prompt):
                table.pop(column, None)  # type: ignore[attr-defined]
            row.random_weights.discard(column)
    return [row for i, row in enumerate(unique) if i not in dropped], warnings


def _merge_measured(rows: list[Row]) -> list[Row]:
    """Combine measured rows of the same (suite, model, method); their columns are disjoint by now."""
    merged: dict[tuple[str, ...], Row] = {}
    for row in rows:
        key = (*row.section_key, row.model, row.method)
        if key not in merged:
            merged[key] = row
            continue
        into = merged[key]
        into.scores.update(row.scores)
        into.n.update(row.n)
        into.ci95.update(row.ci95)
        into.directions.update(row.directions)
        into.column_runs.update(row.column_runs)
        into.per_prompt.update(row.per_prompt)
        into.random_weights |= row.random_weights
        into.run_ids += row.run_ids
        into.source = f"{into.source}; {row.source}"
        known = [x for x in (into.n_videos, row.n_videos) if x is not None]
        into.n_videos = max(known) if known else None
        flags = [x for x in (into.model_random_weights, row.model_random_weights) if x is not None]
        into.model_random_weights = any(flags) if flags else None
    return list(merged.values())


def superseded_by(new_run: str | os.PathLike[str], listed: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The runs of ``listed`` (other folders) that ``new_run`` replaces on a leaderboard: those of the
    same suite (name and digest), model and method whose every column ``new_run`` measures too.

    Runs that cannot be read are never replaced, nor replace anything (building the leaderboard reports them).
    """
    try:
        (new,) = load_run(new_run)
    except VbenchPrefError:
        return []
    replaced: list[Path] = []
    for path in listed:
        try:
            (old,) = load_run(path)
        except VbenchPrefError:
            continue
        same = (old.section_key, old.model, old.method) == (new.section_key, new.model, new.method)
        if same and old.run_dir != new.run_dir and set(old.scores) <= set(new.scores):
            replaced.append(Path(path))
    return replaced


def _resolve_directions(
    columns: Sequence[str],
    measured: Sequence[Row],
    given: Mapping[str, Any] | None,
    reported: Sequence[tuple[str, Mapping[str, bool]]],
) -> tuple[dict[str, bool | None], list[str]]:
    """Direction per column from every source that knows it; any disagreement is an error."""
    claims: dict[str, list[tuple[bool, str]]] = {c: [] for c in columns}
    for row in measured:
        for column, higher in row.directions.items():
            claims[column].append((higher, f"run {row.column_runs.get(column, row.run_ids[0])} summary.json"))
    for column, spec in (given or {}).items():
        if column in claims:
            # the CLI may pass evaluator ScoreSpecs rather than plain bools
            higher = getattr(spec, "higher_is_better", spec)
            claims[column].append((bool(higher), "the evaluator registry"))
    for origin, declared in reported:
        for column, higher in declared.items():
            if column in claims:
                claims[column].append((higher, f"{origin} metadata"))

    directions: dict[str, bool | None] = {}
    warnings: list[str] = []
    for column in columns:
        said = claims[column]
        up = [where for higher, where in said if higher]
        down = [where for higher, where in said if not higher]
        if up and down:
            raise VbenchPrefError(
                f"conflicting directions for column {column!r}: higher is better per {up[0]}, lower is better per {down[0]}"
            )
        if up or down:
            directions[column] = bool(up)
        else:
            directions[column] = None
            warnings.append(f"column {column!r} has no known direction: shown without arrow, best not marked")
    return directions, warnings


def _display(value: float) -> float:
    # rank what the reader sees: two cells printed alike must be tied
    return float(f"{value:.{_DECIMALS}f}")


def _separated(top: Row, other: Row, column: str, higher: bool) -> bool:
    """Whether ``top``'s value of ``column`` is better than ``other``'s beyond chance (module docstring)."""
    a, b = top.per_prompt.get(column), other.per_prompt.get(column)
    if a is not None and b is not None:
        common = a.index.intersection(b.index)
        if len(common):
            test = paired_permutation_test(a[common].to_numpy(), b[common].to_numpy())
            favours = test.mean_difference > 0 if higher else test.mean_difference < 0
            return bool(favours and test.p_value < ALPHA)
    (top_low, top_high), (low, high) = top.ci95.get(column, (None, None)), other.ci95.get(column, (None, None))
    if None in (top_low, top_high, low, high):
        return False
    return bool(top_low > high) if higher else bool(top_high < low)  # type: ignore[operator]


def _column_winners(rows: Sequence[Row], column: str, higher: bool, measured: bool) -> tuple[list[int], list[int]]:
    """(best, tied) positions in ``rows`` for one column of one model group."""
    ranked = [
        i for i, row in enumerate(rows)
        if row.scores.get(column) is not None and column not in row.random_weights
    ]
    if len(ranked) < 2:
        return [], []  # one value is not a comparison
    sign = 1.0 if higher else -1.0
    if not measured:  # reported numbers: nothing to test, compare what the reader sees
        top_value = max(sign * _display(rows[i].scores[column]) for i in ranked)  # type: ignore[arg-type]
        tops = [i for i in ranked if sign * _display(rows[i].scores[column]) == top_value]  # type: ignore[arg-type]
        return (tops, []) if len(tops) == 1 else ([], tops)
    top = max(ranked, key=lambda i: sign * rows[i].scores[column])  # type: ignore[operator]
    tied = [top] + [i for i in ranked if i != top and not _separated(rows[top], rows[i], column, higher)]
    return ([top], []) if len(tied) == 1 else ([], sorted(tied))


def _best_cells(
    rows: Sequence[Row], sections: Sequence[Section], columns: Sequence[str], directions: Mapping[str, bool | None]
) -> tuple[list[list[str]], list[list[str]]]:
    """Per row: the columns where it is the best of its model group, and those where it is tied for best."""
    best: list[list[str]] = [[] for _ in rows]
    tied: list[list[str]] = [[] for _ in rows]
    for section in sections:
        groups: dict[str, list[int]] = {}
        for i in section.rows:
            groups.setdefault(rows[i].model, []).append(i)
        for column in columns:
            higher = directions.get(column)
            if higher is None:
                continue
            for members in groups.values():
                won, even = _column_winners([rows[i] for i in members], column, higher, section.measured)
                for k in won:
                    best[members[k]].append(column)
                for k in even:
                    tied[members[k]].append(column)
    return best, tied


def _section_heading(row: Row) -> tuple[str, str]:
    """(title, detail) of the section ``row`` opens."""
    if row.origin != "runs":
        name = Path(row.origin).name
        said = f"Suite: {row.suite}; no" if row.suite != _AS_REPORTED else "No"
        return (f"As reported: {name}", f"{said} per-video data, so no test: the top value at {_DECIMALS} decimals is best")
    if row.suite_digest is None:
        return (f"Suite: {row.suite}", "prompts unknown: run.json does not record its suite")
    count = f"{row.suite_prompts} prompts, " if row.suite_prompts is not None else ""
    return (f"Suite: {row.suite}", f"{count}sha256 {row.suite_digest[:12]}")


def _arrange(measured: Sequence[Row], reported: Sequence[Row]) -> tuple[list[Row], list[Section]]:
    """Rows in display order (measured sections first, then each reported file; inside a section by
    base model in order of first appearance, input order within a model) and the sections."""
    by_section: dict[tuple[str, ...], list[Row]] = {}
    for row in [*measured, *reported]:
        by_section.setdefault(row.section_key, []).append(row)
    ordered: list[Row] = []
    sections: list[Section] = []
    for members in by_section.values():
        models = list(dict.fromkeys(r.model for r in members))
        start = len(ordered)
        ordered += sorted(members, key=lambda r: models.index(r.model))  # stable sort
        title, detail = _section_heading(members[0])
        sections.append(Section(title, detail, tuple(range(start, len(ordered))), members[0].origin == "runs"))
    return ordered, sections


def build_leaderboard(
    run_dirs: Sequence[str | os.PathLike[str]] = (),
    reported_files: Sequence[str | os.PathLike[str]] = (),
    directions: Mapping[str, Any] | None = None,
    skip_unreadable: bool = False,
    studies: Sequence[str | os.PathLike[str]] = (),
) -> Leaderboard:
    """Read every input and assemble the leaderboard (no files written).

    ``directions`` maps score column → higher_is_better (a bool, or anything with a
    ``higher_is_better`` attribute such as an evaluator card's ScoreSpec). ``skip_unreadable``: a run
    directory that cannot be read becomes a warning instead of an error. ``studies``: study folders
    (``vbench-pref study create``), whose "user study" columns join the runs' rows (``load_study``).
    """
    if not run_dirs and not reported_files and not studies:
        raise VbenchPrefError(
            "nothing to put on the leaderboard: give at least one run directory, --reported file or --study"
        )

    reported_rows: list[Row] = []
    reported_dirs: list[tuple[str, Mapping[str, bool]]] = []
    for path in reported_files:
        rows, declared = load_reported(path)
        reported_rows += rows
        reported_dirs.append((str(path), declared))
    loaded: list[Row] = []
    warnings: list[str] = []
    for run_dir in run_dirs:
        try:
            loaded += load_run(run_dir)
        except VbenchPrefError as exc:
            if not skip_unreadable:
                raise
            warnings.append(f"left out: {exc}")
    study_notes: dict[str, str] = {}
    seen_studies: set[Path] = set()
    for study in studies:
        if Path(study).resolve() in seen_studies:
            warnings.append(f"study {study} is given twice: counted once")
            continue
        seen_studies.add(Path(study).resolve())
        rows, notes, study_warnings = load_study(study)
        loaded += rows
        warnings += study_warnings
        study_notes.update({f"{column} ({rows[0].source})": text for column, text in notes.items()})
    kept, repeats = _drop_repeats(loaded)
    warnings += repeats
    measured = _merge_measured(kept)
    if not measured and not reported_rows:
        raise VbenchPrefError("nothing to put on the leaderboard: " + "; ".join(warnings))

    # columns in the order the inputs give them, a reported file's first (a paper's table order)
    columns: list[str] = list(dict.fromkeys(c for row in reported_rows + measured for c in row.scores))
    resolved, direction_warnings = _resolve_directions(columns, measured, directions, reported_dirs)
    warnings += direction_warnings
    for row in measured:
        if _UNKNOWN in (row.model, row.method):
            warnings.append(f"run {', '.join(row.run_ids)}: run.json has no model or method, listed as {_UNKNOWN}")
        if row.suite_digest is None:
            warnings.append(
                f"run {', '.join(row.run_ids)}: run.json does not record its prompt suite; grouped as {row.suite!r}"
            )

    column_notes = tuple(
        f"{column} ({Path(path).name}): {text}"
        for path in reported_files for column, text in reported_column_notes(path).items() if column in columns
    ) + tuple(f"{key}: {text}" for key, text in study_notes.items())
    ordered, sections = _arrange(measured, reported_rows)
    best, tied = _best_cells(ordered, sections, columns, resolved)
    measured_columns = [c for c in columns if any(c in r.n for r in measured)]

    records = []
    for row, row_best, row_tied in zip(ordered, best, tied):
        record: dict[str, Any] = {
            "suite": row.suite,
            "suite_digest": row.suite_digest,
            "model": row.model,
            "method": row.method,
            "model_random_weights": row.model_random_weights,
            "n_videos": row.n_videos,
        }
        record.update({c: row.scores.get(c) for c in columns})
        record.update(
            source=row.source,
            note=row.note,
            random_weights=";".join(c for c in columns if c in row.random_weights),
            best=";".join(row_best),
            tied_best=";".join(row_tied),
        )
        record.update({f"{c}.n": row.n.get(c) for c in measured_columns})
        record.update({f"{c}.ci95_low": row.ci95.get(c, (None, None))[0] for c in measured_columns})
        record.update({f"{c}.ci95_high": row.ci95.get(c, (None, None))[1] for c in measured_columns})
        record.update({
            f"{c}.random_weights": (c in row.random_weights) if row.scores.get(c) is not None else None
            for c in measured_columns
        })
        records.append(record)
    table = pd.DataFrame.from_records(records)
    table["n_videos"] = table["n_videos"].astype("Int64")
    table["model_random_weights"] = table["model_random_weights"].astype("boolean")
    for c in columns:
        table[c] = table[c].astype("float64")
    for c in measured_columns:
        table[f"{c}.n"] = table[f"{c}.n"].astype("Int64")
        table[f"{c}.ci95_low"] = table[f"{c}.ci95_low"].astype("float64")
        table[f"{c}.ci95_high"] = table[f"{c}.ci95_high"].astype("float64")
        table[f"{c}.random_weights"] = table[f"{c}.random_weights"].astype("boolean")
    return Leaderboard(
        table=table, score_columns=tuple(columns), directions=resolved, warnings=tuple(warnings),
        sections=tuple(sections), column_notes=column_notes,
    )


# --------------------------------------------------------------------------------------------------
# rendering


def render_csv(board: Leaderboard) -> str:
    buffer = io.StringIO()
    board.table.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue()


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _arrow(higher: bool | None) -> str:
    return "" if higher is None else (" ↑" if higher else " ↓")


def _split(cell: Any) -> list[str]:
    return [x for x in str(cell).split(";") if x] if isinstance(cell, str) else []


def _cell(rec: pd.Series, column: str, best: set[str], tied: set[str], random: set[str]) -> str:
    value = rec[column]
    if pd.isna(value):
        return _MISSING_MD
    text = f"{value:.{_DECIMALS}f}"
    if column in best:
        text = f"**{text}**"
    elif column in tied:
        text = _TIE + text
    low, high = rec.get(f"{column}.ci95_low"), rec.get(f"{column}.ci95_high")
    if low is not None and high is not None and not (pd.isna(low) or pd.isna(high)):
        text += f" [{low:.{_DECIMALS}f}, {high:.{_DECIMALS}f}]"  # percentile bootstrap: not symmetric
    if column in random:
        text += _DAGGER
    return text


def _legend(board: Leaderboard, has_random: bool) -> str:
    legend = (
        "One section per prompt suite (numbers from different suites are never compared), one table per base "
        "model. ↑ higher is better, ↓ lower is better. **Bold**: best of its model group, separated from every "
        f"other value of the column; {_TIE}: tied for best (not separated from the top value). Measured values "
        "are separated by a paired permutation test over the prompts both runs scored (p < 0.05), or by "
        "non-overlapping 95% intervals when the runs share no per-video scores; reported rows are not tested."
    )
    if any(c.endswith(".ci95_low") for c in board.table.columns):
        legend += " Measured means show their 95% bootstrap interval [low, high]; n = videos scored."
    if has_random:
        legend += f" {_DAGGER} = {_RANDOM_FOOTNOTE}, never ranked."
    if any(d is None for d in board.directions.values()):
        legend += " Columns without an arrow have no known direction and are not ranked."
    return legend


def render_markdown(board: Leaderboard) -> str:
    table = board.table
    columns = board.score_columns
    lines = [f"# {board.title}", ""]
    has_random = bool((table["random_weights"] != "").any())
    lines += [_legend(board, has_random), ""]

    sources: list[str] = []
    notes: list[str] = []
    for section in board.sections:
        lines += [f"## {_md_escape(section.title)}", "", _md_escape(section.detail) + ".", ""]
        rows = table.iloc[list(section.rows)]
        for model in dict.fromkeys(rows["model"]):
            group = rows[rows["model"] == model]
            # columns empty for the whole group only widen the table
            shown = [c for c in columns if group[c].notna().any()]
            with_n = bool(group["n_videos"].notna().any())
            lines += [f"### {_md_escape(model)}", ""]
            header = ["method"] + (["n"] if with_n else []) + [f"{c}{_arrow(board.directions.get(c))}" for c in shown] + ["source"]
            lines.append("| " + " | ".join(_md_escape(h) for h in header) + " |")
            lines.append("|" + "|".join(["---"] + (["---:"] if with_n else []) + ["---:"] * len(shown) + ["---"]) + "|")
            for _, rec in group.iterrows():
                best, tied = set(_split(rec["best"])), set(_split(rec["tied_best"]))
                random = set(_split(rec["random_weights"]))
                method = _md_escape(str(rec["method"]))
                if "(incomplete)" in str(rec["source"]):
                    method += " *(incomplete)*"  # visible in the table, not only in the footnote
                cells = [method]
                if with_n:
                    cells.append("" if pd.isna(rec["n_videos"]) else str(int(rec["n_videos"])))
                cells += [_cell(rec, c, best, tied, random) for c in shown]
                source = str(rec["source"])
                if source not in sources:
                    sources.append(source)
                ref = f"[{sources.index(source) + 1}]"
                if isinstance(rec["note"], str) and rec["note"]:
                    notes.append(f"{model} / {rec['method']}: {rec['note']}")
                    ref += f" (note {len(notes)})"
                cells.append(ref)
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")

    if board.column_notes:
        lines += ["## Columns", ""]
        lines += [f"- {_md_escape(n)}" for n in board.column_notes]
        lines.append("")
    lines += ["## Sources", ""]
    lines += [f"{i}. {_md_escape(s)}" for i, s in enumerate(sources, start=1)]
    lines.append("")
    if notes:
        lines += ["## Notes", ""]
        lines += [f"{i}. {_md_escape(n)}" for i, n in enumerate(notes, start=1)]
        lines.append("")
    if has_random:
        lines += [f"{_DAGGER} {_RANDOM_FOOTNOTE}.", ""]
    if board.warnings:
        lines += ["## Warnings", ""]
        lines += [f"- {_md_escape(w)}" for w in board.warnings]
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# writing


def output_paths(prefix: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``results/leaderboard`` → (``results/leaderboard.csv``, ``results/leaderboard.md``).

    A trailing ``.csv``/``.md`` on the prefix is dropped, so ``--out board.md`` does what it says.
    """
    prefix = Path(prefix)
    if prefix.suffix in (".csv", ".md"):
        prefix = prefix.with_suffix("")
    return prefix.with_name(prefix.name + ".csv"), prefix.with_name(prefix.name + ".md")


def write_leaderboard(board: Leaderboard, prefix: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``<prefix>.csv`` and ``<prefix>.md`` atomically; return their paths."""
    csv_path, md_path = output_paths(prefix)
    try:
        atomic_write_text(csv_path, render_csv(board))
        atomic_write_text(md_path, render_markdown(board))
    except OSError as exc:
        raise VbenchPrefError(f"cannot write the leaderboard to {csv_path.parent}: {_one_line(exc)}") from None
    return csv_path, md_path


def run(
    run_dirs: Sequence[str | os.PathLike[str]],
    reported: Sequence[str | os.PathLike[str]],
    out_prefix: str | os.PathLike[str],
    directions: Mapping[str, Any] | None = None,
    skip_unreadable: bool = False,
    studies: Sequence[str | os.PathLike[str]] = (),
) -> Leaderboard:
    """What ``vbench-pref leaderboard`` does: build, then write CSV + Markdown (paths: output_paths)."""
    board = build_leaderboard(run_dirs, reported, directions, skip_unreadable, studies)
    write_leaderboard(board, out_prefix)
    return board
