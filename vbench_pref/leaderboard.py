"""The leaderboard: measured runs (+ reported rows with their source) → one CSV and one Markdown file.

Inputs
    * measured run directories (``run.json`` + ``summary.json`` written by the scoring engine);
    * reported CSV files (numbers copied from papers), columns ``model, method, source, <score columns>``
      plus optional ``note``, ``table``, ``n_videos``; lines starting with ``#`` are metadata
      (``# higher_is_better: a, b``, ``# lower_is_better: c``, ``# source: default source``; other keys
      are free-form comments).

Rows
    One row per (model, method) *per origin*: measured runs with the same (model, method) are combined
    into one row when their score columns are disjoint; a reported file's rows are kept apart from
    measured rows (and from other files' rows) even when (model, method) match, because a paper's
    number and our measurement of it are two different facts a reader wants side by side.

Best marking
    Within each model group (methods of one base model, as in a paper table), per column, using the
    column's direction; values are compared at the 4 decimals the Markdown shows so that two cells that
    read the same are both marked; ties are all marked; a column needs at least two ranked values in the
    group; cells computed with random weights are never ranked (a smoke test, not a measurement).

CSV (``<prefix>.csv``), one line per row, in the Markdown's row order::

    model, method, n_videos, <score columns...>, source, note, random_weights, best,
    <col>.n ..., <col>.ci95 ...

    * score cells are the plain means (floats, full precision; empty = missing);
    * ``random_weights`` / ``best``: ``;``-separated score columns of that row computed with random
      weights / where that row is the best of its model group;
    * ``<col>.n`` (videos behind the mean) and ``<col>.ci95`` (half-width of the 95% CI) appear only
      for score columns measured by at least one run; empty on reported rows.

Markdown (``<prefix>.md``): a title, a legend, one table per model group (header cells carry ↑/↓),
measured means as ``mean ± ci95 half-width``, the best in bold, ``†`` on random-weight cells, then
numbered sources, notes and warnings.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from vbench_pref.atomic import atomic_write_text
from vbench_pref.errors import VbenchPrefError

__all__ = [
    "Leaderboard",
    "Row",
    "build_leaderboard",
    "load_reported",
    "load_run",
    "output_paths",
    "render_csv",
    "render_markdown",
    "run",
    "write_leaderboard",
]

# Cells of a reported file that are not scores.
_REPORTED_META_COLUMNS = ("model", "method", "source", "note", "table", "n_videos")
_DECIMALS = 4
_MISSING_MD = "—"
_DAGGER = "†"
_RANDOM_FOOTNOTE = "random weights — smoke test, not a measurement"
_UNKNOWN = "(unknown)"


@dataclass
class Row:
    """One leaderboard row before it becomes a DataFrame line.

    ``origin`` identifies where the row came from (``"runs"`` for measured rows, the reported file's
    path otherwise); rows with the same (model, method) are merged only within the origin ``"runs"``.
    """

    model: str
    method: str
    source: str
    origin: str
    scores: dict[str, float | None] = field(default_factory=dict)
    n: dict[str, int] = field(default_factory=dict)
    ci95: dict[str, float | None] = field(default_factory=dict)  # half-width
    random_weights: set[str] = field(default_factory=set)
    n_videos: int | None = None
    note: str = ""
    run_ids: tuple[str, ...] = ()
    column_runs: dict[str, str] = field(default_factory=dict)  # column -> run id that measured it
    # direction of each column as this row's input declares it (measured rows only)
    directions: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class Leaderboard:
    """Pure data: the table as it goes to the CSV, plus what the Markdown needs to draw it."""

    table: pd.DataFrame
    score_columns: tuple[str, ...]
    # column -> True (higher is better), False (lower is better), None (unknown: shown, not ranked)
    directions: Mapping[str, bool | None]
    warnings: tuple[str, ...] = ()
    title: str = "vbench-pref leaderboard"

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
    random_entries = [str(x) for x in (info.get("random_weights") or [])]

    row = Row(
        model=str(info["model"]) if info.get("model") else _UNKNOWN,
        method=str(info["method"]) if info.get("method") else _UNKNOWN,
        source=f"run:{run_id}" + ("" if complete else " (incomplete)"),
        origin="runs",
        run_ids=(run_id,),
    )
    for column, entry in scores.items():
        column = str(column)
        if not isinstance(entry, dict):
            raise VbenchPrefError(f"{summary_json}: score {column!r} is not an object")
        row.scores[column] = _as_float(entry.get("mean"))
        row.column_runs[column] = run_id
        n = entry.get("n")
        row.n[column] = int(n) if isinstance(n, (int, float)) and not isinstance(n, bool) else 0
        ci = entry.get("ci95") or [None, None]
        lo, hi = (_as_float(ci[0]), _as_float(ci[1])) if isinstance(ci, (list, tuple)) and len(ci) == 2 else (None, None)
        row.ci95[column] = (hi - lo) / 2.0 if lo is not None and hi is not None else None
        if isinstance(entry.get("higher_is_better"), bool):
            row.directions[column] = entry["higher_is_better"]
        evaluator = entry.get("evaluator")
        if _column_is_random(column, str(evaluator) if evaluator else None, random_entries):
            row.random_weights.add(column)
    row.n_videos = max(row.n.values()) if row.n else None
    return [row]


def _parse_metadata(path: Path, lines: list[str]) -> tuple[dict[str, bool], str]:
    """``# key: value`` lines → (directions, default source). Unknown keys are free-form comments."""
    directions: dict[str, bool] = {}
    default_source = ""
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
    return directions, default_source


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
    directions, default_source = _parse_metadata(path, meta_lines)
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


# --------------------------------------------------------------------------------------------------
# building


def _merge_measured(rows: list[Row]) -> list[Row]:
    """Combine measured rows with the same (model, method); overlapping columns are an error."""
    merged: dict[tuple[str, str], Row] = {}
    # keyed by input position, not run id, so the same directory passed twice is caught too
    given_by: dict[tuple[str, str, str], tuple[int, str]] = {}  # (model, method, column) -> (position, run id)
    for position, row in enumerate(rows):
        key = (row.model, row.method)
        for column in row.scores:
            earlier = given_by.setdefault((*key, column), (position, row.run_ids[0]))
            if earlier[0] != position:
                raise VbenchPrefError(
                    f"runs {earlier[1]} and {row.run_ids[0]} both give column {column!r} for "
                    f"model {row.model!r}, method {row.method!r}: pass only one of them"
                )
        if key not in merged:
            merged[key] = row
            continue
        into = merged[key]
        into.scores.update(row.scores)
        into.n.update(row.n)
        into.ci95.update(row.ci95)
        into.directions.update(row.directions)
        into.column_runs.update(row.column_runs)
        into.random_weights |= row.random_weights
        into.run_ids += row.run_ids
        into.source = f"{into.source}; {row.source}"
        known = [x for x in (into.n_videos, row.n_videos) if x is not None]
        into.n_videos = max(known) if known else None
    return list(merged.values())


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
    # rank what the reader sees: two cells printed alike must both be bold or neither
    return float(f"{value:.{_DECIMALS}f}")


def _best_cells(rows: Sequence[Row], columns: Sequence[str], directions: Mapping[str, bool | None]) -> list[list[str]]:
    best: list[list[str]] = [[] for _ in rows]
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(row.model, []).append(i)
    for column in columns:
        higher = directions.get(column)
        if higher is None:
            continue
        for members in groups.values():
            ranked = [
                (i, _display(v))
                for i in members
                if (v := rows[i].scores.get(column)) is not None and column not in rows[i].random_weights
            ]
            if len(ranked) < 2:
                continue  # one value is not a comparison
            top = max(v for _, v in ranked) if higher else min(v for _, v in ranked)
            for i, v in ranked:
                if v == top:
                    best[i].append(column)
    return best


def build_leaderboard(
    run_dirs: Sequence[str | os.PathLike[str]] = (),
    reported_files: Sequence[str | os.PathLike[str]] = (),
    directions: Mapping[str, Any] | None = None,
) -> Leaderboard:
    """Read every input and assemble the leaderboard (no files written).

    ``directions`` maps score column → higher_is_better (a bool, or anything with a
    ``higher_is_better`` attribute such as an evaluator card's ScoreSpec).
    """
    if not run_dirs and not reported_files:
        raise VbenchPrefError("nothing to put on the leaderboard: give at least one run directory or --reported file")

    reported_rows: list[Row] = []
    reported_dirs: list[tuple[str, Mapping[str, bool]]] = []
    for path in reported_files:
        rows, declared = load_reported(path)
        reported_rows += rows
        reported_dirs.append((str(path), declared))
    measured = _merge_measured([row for d in run_dirs for row in load_run(d)])

    all_rows = reported_rows + measured
    columns: list[str] = list(dict.fromkeys(c for row in all_rows for c in row.scores))
    resolved, warnings = _resolve_directions(columns, measured, directions, reported_dirs)
    for row in measured:
        if _UNKNOWN in (row.model, row.method):
            warnings.append(f"run {', '.join(row.run_ids)}: run.json has no model or method, listed as {_UNKNOWN}")

    # group rows by model, models in order of first appearance; rows keep input order inside a group
    model_order = list(dict.fromkeys(row.model for row in all_rows))
    ordered = sorted(all_rows, key=lambda r: model_order.index(r.model))  # stable sort
    best = _best_cells(ordered, columns, resolved)
    measured_columns = [c for c in columns if any(c in r.n for r in measured)]

    records = []
    for row, row_best in zip(ordered, best):
        record: dict[str, Any] = {"model": row.model, "method": row.method, "n_videos": row.n_videos}
        record.update({c: row.scores.get(c) for c in columns})
        record.update(
            source=row.source,
            note=row.note,
            random_weights=";".join(c for c in columns if c in row.random_weights),
            best=";".join(row_best),
        )
        record.update({f"{c}.n": row.n.get(c) for c in measured_columns})
        record.update({f"{c}.ci95": row.ci95.get(c) for c in measured_columns})
        records.append(record)
    table = pd.DataFrame.from_records(records)
    table["n_videos"] = table["n_videos"].astype("Int64")
    for c in columns:
        table[c] = table[c].astype("float64")
    for c in measured_columns:
        table[f"{c}.n"] = table[f"{c}.n"].astype("Int64")
        table[f"{c}.ci95"] = table[f"{c}.ci95"].astype("float64")
    return Leaderboard(table=table, score_columns=tuple(columns), directions=resolved, warnings=tuple(warnings))


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


def render_markdown(board: Leaderboard) -> str:
    table = board.table
    columns = board.score_columns
    lines = [f"# {board.title}", ""]
    has_random = bool((table["random_weights"] != "").any())
    legend = (
        f"One table per base model. ↑ higher is better, ↓ lower is better. **Bold**: best of its model group "
        f"(compared at {_DECIMALS} decimals; ties all bold; needs two or more values)."
    )
    if any(c.endswith(".ci95") for c in table.columns):
        legend += " Measured means show ± half the 95% CI; n = videos scored."
    if has_random:
        legend += f" {_DAGGER} = {_RANDOM_FOOTNOTE}, never bold."
    if any(d is None for d in board.directions.values()):
        legend += " Columns without an arrow have no known direction and are not ranked."
    lines += [legend, ""]

    sources: list[str] = []
    notes: list[str] = []
    for model in board.models:
        group = table[table["model"] == model]
        # columns empty for the whole group only widen the table
        shown = [c for c in columns if group[c].notna().any()]
        with_n = bool(group["n_videos"].notna().any())
        lines += [f"## {_md_escape(model)}", ""]
        header = ["method"] + (["n"] if with_n else []) + [f"{c}{_arrow(board.directions.get(c))}" for c in shown] + ["source"]
        lines.append("| " + " | ".join(_md_escape(h) for h in header) + " |")
        lines.append("|" + "|".join(["---"] + (["---:"] if with_n else []) + ["---:"] * len(shown) + ["---"]) + "|")
        for _, rec in group.iterrows():
            best = set(_split(rec["best"]))
            random = set(_split(rec["random_weights"]))
            method = _md_escape(str(rec["method"]))
            if "(incomplete)" in str(rec["source"]):
                method += " *(incomplete)*"  # visible in the table, not only in the footnote
            cells = [method]
            if with_n:
                cells.append("" if pd.isna(rec["n_videos"]) else str(int(rec["n_videos"])))
            for c in shown:
                value = rec[c]
                if pd.isna(value):
                    cells.append(_MISSING_MD)
                    continue
                text = f"{value:.{_DECIMALS}f}"
                if c in best:
                    text = f"**{text}**"
                ci_col = f"{c}.ci95"
                if ci_col in rec and not pd.isna(rec[ci_col]):
                    text += f" ± {rec[ci_col]:.{_DECIMALS}f}"
                if c in random:
                    text += _DAGGER
                cells.append(text)
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

    lines += ["### Sources", ""]
    lines += [f"{i}. {_md_escape(s)}" for i, s in enumerate(sources, start=1)]
    lines.append("")
    if notes:
        lines += ["### Notes", ""]
        lines += [f"{i}. {_md_escape(n)}" for i, n in enumerate(notes, start=1)]
        lines.append("")
    if has_random:
        lines += [f"{_DAGGER} {_RANDOM_FOOTNOTE}.", ""]
    if board.warnings:
        lines += ["### Warnings", ""]
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
) -> Leaderboard:
    """What ``vbench-pref leaderboard`` does: build, then write CSV + Markdown (paths: output_paths)."""
    board = build_leaderboard(run_dirs, reported, directions)
    write_leaderboard(board, out_prefix)
    return board
