"""Leaderboard: measured runs (fabricated here, no engine) + reported rows → CSV / Markdown."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from vbench_pref.errors import VbenchPrefError
from vbench_pref.leaderboard import (
    build_leaderboard,
    load_reported,
    load_run,
    output_paths,
    render_markdown,
    run,
    write_leaderboard,
)

REPO = Path(__file__).resolve().parents[1]
PAPER_CSV = REPO / "results" / "reported" / "pgdpo_paper.csv"
PAPER_SOURCE = "PG-DPO paper (Beyond Reward Margin"


def make_run(
    root: Path,
    run_id: str,
    model: str | None,
    method: str | None,
    scores: dict[str, Any],
    *,
    complete: bool = True,
    random_weights: tuple[str, ...] = (),
    with_summary: bool = True,
) -> Path:
    """Write a run directory shaped like the scoring engine's.

    ``scores`` maps column -> mean, or -> (mean, higher_is_better), or -> a full summary entry dict.
    """
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    n = 16
    (run_dir / "run.json").write_text(
        json.dumps(
            {
                "run_id": run_id,
                "model": model,
                "method": method,
                "random_weights": list(random_weights),
                "status": {"complete": complete, "videos": n, "scored": n if complete else n // 2, "failed": 0},
                "package_version": "0.0.test",
            }
        )
    )
    if with_summary:
        entries = {}
        for column, spec in scores.items():
            if isinstance(spec, dict):
                entries[column] = spec
                continue
            mean, higher = spec if isinstance(spec, tuple) else (spec, True)
            evaluator, _, score = column.partition(".")
            entries[column] = {
                "mean": mean,
                "std": 0.01,
                "n": n,
                "n_missing": 0,
                "ci95": [mean - 0.002, mean + 0.002] if mean is not None else [None, None],
                "higher_is_better": higher,
                "range": [0.0, 1.0],
                "evaluator": evaluator,
                "score": score or evaluator,
            }
        (run_dir / "summary.json").write_text(json.dumps({"n_videos": n, "scores": entries}))
    return run_dir


def write_reported(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def row(board, model: str, method: str) -> pd.Series:
    table = board.table
    hit = table[(table["model"] == model) & (table["method"] == method)]
    assert len(hit) == 1, hit
    return hit.iloc[0]


def best_of(board, model: str, method: str) -> set[str]:
    cell = row(board, model, method)["best"]
    return set(cell.split(";")) if cell else set()


REPORTED = """\
# higher_is_better: clip_score.cosine
# source: Some paper, Table 9
model,method,source,clip_score.cosine,note
M1,baseline,,0.2500,
M1,PaperMethod,Other paper,0.2600,a note
M2,baseline,,0.3000,
"""


# --------------------------------------------------------------------------------------------------
# combining


def test_measured_and_reported_combine(tmp_path: Path) -> None:
    rep = write_reported(tmp_path / "rep.csv", REPORTED)
    a = make_run(tmp_path / "runs", "r1", "M1", "PG-DPO", {"clip_score.cosine": 0.27, "temporal_flicker": 0.98})
    b = make_run(tmp_path / "runs", "r2", "M1", "PG-DPO", {"hpsv2": 0.24})  # disjoint: same row
    board = build_leaderboard([a, b], [rep])

    assert list(board.table.columns[:7]) == [
        "model", "method", "n_videos", "clip_score.cosine", "temporal_flicker", "hpsv2", "source",
    ]
    assert list(board.table["method"]) == ["baseline", "PaperMethod", "PG-DPO", "baseline"]  # grouped by model
    measured = row(board, "M1", "PG-DPO")
    assert measured["source"] == "run:r1; run:r2"
    assert measured["n_videos"] == 16
    assert measured["hpsv2"] == pytest.approx(0.24)
    assert measured["clip_score.cosine.n"] == 16
    assert measured["clip_score.cosine.ci95"] == pytest.approx(0.002)
    assert row(board, "M1", "baseline")["source"] == "Some paper, Table 9"  # default from # source:
    assert row(board, "M1", "PaperMethod")["source"] == "Other paper"
    assert pd.isna(row(board, "M1", "baseline")["n_videos"])
    assert pd.isna(row(board, "M1", "baseline")["hpsv2"])
    # best is per model group: M2's 0.30 does not beat M1's measured 0.27
    assert "clip_score.cosine" in best_of(board, "M1", "PG-DPO")
    assert best_of(board, "M2", "baseline") == set()  # a lone value is not a comparison


def test_load_run_and_reported_api(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, "r1", "M", "X", {"videoalign.vq": (-0.5, True)})
    (r,) = load_run(run_dir)
    assert (r.model, r.method, r.source, r.n_videos) == ("M", "X", "run:r1", 16)
    rows, directions = load_reported(write_reported(tmp_path / "rep.csv", REPORTED))
    assert [x.method for x in rows] == ["baseline", "PaperMethod", "baseline"]
    assert directions == {"clip_score.cosine": True}


def test_best_per_group_lower_is_better_and_ties(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    dirs = [
        make_run(runs, "a", "M", "base", {"q": (0.5, True), "err": (0.30, False)}),
        make_run(runs, "b", "M", "dpo", {"q": (0.7, True), "err": (0.10, False)}),
        make_run(runs, "c", "M", "pgdpo", {"q": (0.7, True), "err": (0.20, False)}),
        make_run(runs, "d", "Other", "base", {"q": (0.9, True), "err": (0.05, False)}),
        make_run(runs, "e", "Other", "dpo", {"q": (0.1, True), "err": (0.50, False)}),
    ]
    board = build_leaderboard(dirs, [])
    assert best_of(board, "M", "base") == set()
    assert best_of(board, "M", "dpo") == {"q", "err"}  # lower err wins
    assert best_of(board, "M", "pgdpo") == {"q"}  # tie on q: both marked
    assert best_of(board, "Other", "base") == {"q", "err"}
    md = render_markdown(board)
    assert "| method | n | q ↑ | err ↓ | source |" in md
    assert md.count("**0.7000**") == 2
    assert "**0.1000**" in md and "**0.0500**" in md
    assert "**0.5000**" not in md  # M/base q is not best; Other/e q=0.1 not best


def test_ties_compared_at_display_precision(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    dirs = [
        make_run(runs, "a", "M", "x", {"q": 0.70001}),
        make_run(runs, "b", "M", "y", {"q": 0.70004}),
        make_run(runs, "c", "M", "z", {"q": 0.6}),
    ]
    board = build_leaderboard(dirs, [])
    # both print as 0.7000, so both are bold; the CSV still has the exact means
    assert best_of(board, "M", "x") == best_of(board, "M", "y") == {"q"}
    assert row(board, "M", "y")["q"] == 0.70004


def test_arrows_in_markdown_header(tmp_path: Path) -> None:
    rep = write_reported(
        tmp_path / "rep.csv",
        "# higher_is_better: temporal_flicker\n# lower_is_better: fvd\n"
        "model,method,source,temporal_flicker,fvd\nM,a,s,0.9,100\nM,b,s,0.8,90\n",
    )
    md = render_markdown(build_leaderboard([], [rep]))
    assert "| method | temporal_flicker ↑ | fvd ↓ | source |" in md
    assert "**0.9000**" in md and "**90.0000**" in md


def test_random_weights_marked(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    a = make_run(runs, "smoke", "M", "x", {"videoalign.vq": 0.9, "hpsv2": 0.2}, random_weights=("videoalign.vq",))
    b = make_run(runs, "real", "M", "y", {"videoalign.vq": 0.1, "hpsv2": 0.3})
    board = build_leaderboard([a, b], [])
    assert row(board, "M", "x")["random_weights"] == "videoalign.vq"
    assert row(board, "M", "y")["random_weights"] == ""
    # a random-weight number is never "best", even when it is the largest
    assert best_of(board, "M", "x") == set()
    md = render_markdown(board)
    assert "0.9000 ± 0.0020†" in md
    assert "random weights — smoke test, not a measurement" in md


def test_random_weights_by_evaluator_name(tmp_path: Path) -> None:
    a = make_run(tmp_path, "smoke", "M", "x", {"videoalign.vq": 0.9, "videoalign.mq": 0.5, "hpsv2": 0.2},
                 random_weights=("videoalign",))
    (r,) = load_run(a)
    assert r.random_weights == {"videoalign.vq", "videoalign.mq"}


def test_incomplete_run_marked(tmp_path: Path) -> None:
    a = make_run(tmp_path, "partial", "M", "x", {"q": 0.5}, complete=False)
    board = build_leaderboard([a], [])
    assert row(board, "M", "x")["source"] == "run:partial (incomplete)"
    assert "x *(incomplete)*" in render_markdown(board)


# --------------------------------------------------------------------------------------------------
# errors and warnings


def test_duplicate_column_for_same_model_method_names_both_runs(tmp_path: Path) -> None:
    a = make_run(tmp_path, "run-one", "M", "x", {"q": 0.5, "p": 0.1})
    b = make_run(tmp_path, "run-two", "M", "x", {"q": 0.6})
    with pytest.raises(VbenchPrefError, match="run-one and run-two") as info:
        build_leaderboard([a, b], [])
    assert "\n" not in str(info.value)


def test_same_run_twice_is_an_error(tmp_path: Path) -> None:
    a = make_run(tmp_path, "r", "M", "x", {"q": 0.5})
    with pytest.raises(VbenchPrefError, match="both give column 'q'"):
        build_leaderboard([a, a], [])


def test_direction_conflict_is_an_error(tmp_path: Path) -> None:
    a = make_run(tmp_path, "r", "M", "x", {"q": (0.5, True)})
    rep = write_reported(tmp_path / "rep.csv", "# lower_is_better: q\nmodel,method,source,q\nM,y,s,0.4\n")
    with pytest.raises(VbenchPrefError, match="conflicting directions for column 'q'") as info:
        build_leaderboard([a], [rep])
    assert "\n" not in str(info.value)
    with pytest.raises(VbenchPrefError, match="conflicting directions"):
        build_leaderboard([a], [], directions={"q": False})
    # between two runs of different rows, too
    b = make_run(tmp_path, "r2", "N", "x", {"q": (0.5, False)})
    with pytest.raises(VbenchPrefError, match="run r summary.json"):
        build_leaderboard([a, b], [])


def test_directions_argument_and_order(tmp_path: Path) -> None:
    class Spec:  # what an evaluator card's ScoreSpec looks like
        higher_is_better = False

    rep = write_reported(tmp_path / "rep.csv", "model,method,source,q,p\nM,a,s,0.4,1\nM,b,s,0.5,2\n")
    board = build_leaderboard([], [rep], directions={"q": True, "p": Spec(), "unused": True})
    assert dict(board.directions) == {"q": True, "p": False}
    assert best_of(board, "M", "b") == {"q"} and best_of(board, "M", "a") == {"p"}


def test_unknown_direction_warns_and_is_not_ranked(tmp_path: Path) -> None:
    rep = write_reported(tmp_path / "rep.csv", "model,method,source,mystery\nM,a,s,0.4\nM,b,s,0.5\n")
    board = build_leaderboard([], [rep])
    assert board.directions["mystery"] is None
    assert any("mystery" in w and "no known direction" in w for w in board.warnings)
    assert best_of(board, "M", "b") == set()
    md = render_markdown(board)
    assert "| method | mystery | source |" in md
    assert "**" not in md.split("## M", 1)[1].split("### Sources")[0]


@pytest.mark.parametrize(
    "case",
    ["missing_dir", "no_summary", "no_run_json", "empty_scores", "bad_json"],
)
def test_bad_run_dirs(tmp_path: Path, case: str) -> None:
    if case == "missing_dir":
        target = tmp_path / "nope"
        name = "nope"
    elif case == "no_summary":
        target = make_run(tmp_path, "r", "M", "x", {}, with_summary=False)
        name = "summary.json"
    elif case == "no_run_json":
        target = make_run(tmp_path, "r", "M", "x", {"q": 0.1})
        (target / "run.json").unlink()
        name = "run.json"
    elif case == "empty_scores":
        target = make_run(tmp_path, "r", "M", "x", {})
        name = "summary.json"
    else:
        target = make_run(tmp_path, "r", "M", "x", {"q": 0.1})
        (target / "summary.json").write_text("{not json")
        name = "summary.json"
    with pytest.raises(VbenchPrefError) as info:
        build_leaderboard([target], [])
    message = str(info.value)
    assert name in message and "\n" not in message


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("model,source,q\nM,s,0.1\n", "no 'method' column"),
        ("method,source,q\nx,s,0.1\n", "no 'model' column"),
        ("model,method,source,q\nM,x,s,abc\n", "not a number"),
        ("model,method,source,q\nM,x,s,0.1\nM,x,s,0.2\n", "already given on line 2"),
        ("# higher_is_better: q\n# lower_is_better: q\nmodel,method,source,q\nM,x,s,0.1\n", "both"),
        ("# only metadata\n", "no header"),
    ],
)
def test_bad_reported_files(tmp_path: Path, text: str, expect: str) -> None:
    path = write_reported(tmp_path / "bad.csv", text)
    with pytest.raises(VbenchPrefError, match=expect) as info:
        build_leaderboard([], [path])
    assert "bad.csv" in str(info.value) and "\n" not in str(info.value)


def test_missing_reported_file(tmp_path: Path) -> None:
    with pytest.raises(VbenchPrefError, match="missing.csv"):
        build_leaderboard([], [tmp_path / "missing.csv"])


def test_nothing_to_show() -> None:
    with pytest.raises(VbenchPrefError, match="nothing"):
        build_leaderboard([], [])


# --------------------------------------------------------------------------------------------------
# the shipped paper table


def test_shipped_paper_csv_parses_with_exact_values() -> None:
    rows, directions = load_reported(PAPER_CSV)
    cols = ["clip_score.cosine", "hpsv2", "videoalign.vq", "videoalign.mq", "videoalign.ta",
            "temporal_flicker", "aesthetic", "dover.overall"]
    assert directions == {c: True for c in cols}
    by_key = {(r.model, r.method): r for r in rows}
    methods = ["baseline", "SFT", "VideoDPO", "PG-DPO", "PG-DPO +ARS only", "PG-DPO +IPR only"]
    assert sorted(by_key) == sorted((m, x) for m in ("Wan2.1-14B", "VideoCrafter2") for x in methods)
    assert all(list(r.scores) == cols for r in rows)
    assert all(r.source.startswith(PAPER_SOURCE) for r in rows)

    # Table 1 spot cells
    assert by_key["Wan2.1-14B", "baseline"].scores["clip_score.cosine"] == 0.2898
    assert by_key["Wan2.1-14B", "PG-DPO"].scores["videoalign.mq"] == 1.0231
    assert by_key["VideoCrafter2", "PG-DPO"].scores["dover.overall"] == 0.8009
    assert by_key["VideoCrafter2", "SFT"].scores["videoalign.vq"] == -0.8116
    assert by_key["VideoCrafter2", "VideoDPO"].scores["temporal_flicker"] == 0.9990
    # Table 2 spot cells
    assert by_key["Wan2.1-14B", "PG-DPO +ARS only"].scores["videoalign.mq"] == 1.0195
    assert by_key["VideoCrafter2", "PG-DPO +IPR only"].scores["aesthetic"] == 0.5643
    # Table 2's "baseline" was folded into the row whose numbers it repeats, with a note saying so
    assert by_key["Wan2.1-14B", "VideoDPO"].scores["videoalign.vq"] == 0.2124
    assert "Table 2" in by_key["Wan2.1-14B", "VideoDPO"].note
    assert "Table 2" in by_key["VideoCrafter2", "baseline"].note
    assert all(not math.isnan(v) for r in rows for v in r.scores.values())  # type: ignore[arg-type]


def test_shipped_paper_csv_table_column_matches_source() -> None:
    table = pd.read_csv(PAPER_CSV, comment="#", dtype=str, keep_default_na=False)
    for _, rec in table.iterrows():
        numbers = [t.strip() for t in rec["table"].split(",")]
        assert rec["source"].endswith(("Table " if len(numbers) == 1 else "Tables ") + ", ".join(numbers))
    both = table[table["table"] == "1, 2"][["model", "method"]].values.tolist()
    assert sorted(map(tuple, both)) == sorted([
        ("Wan2.1-14B", "VideoDPO"), ("Wan2.1-14B", "PG-DPO"),
        ("VideoCrafter2", "baseline"), ("VideoCrafter2", "PG-DPO"),
    ])


def test_paper_leaderboard_best_is_pgdpo() -> None:
    board = build_leaderboard([], [PAPER_CSV])
    assert board.warnings == ()
    cols = set(board.score_columns)
    assert best_of(board, "Wan2.1-14B", "PG-DPO") == cols
    assert best_of(board, "VideoCrafter2", "PG-DPO") == cols


# --------------------------------------------------------------------------------------------------
# writing


def test_write_atomic_and_deterministic(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    dirs = [
        make_run(runs, "r1", "Wan2.1-14B", "PG-DPO", {"clip_score.cosine": 0.31, "temporal_flicker": 0.99}),
        make_run(runs, "r2", "Wan2.1-14B", "SFT", {"clip_score.cosine": 0.30}, complete=False),
        make_run(runs, "r3", "Wan2.1-14B", "PG-DPO", {"hpsv2": 0.26}, random_weights=("hpsv2",)),
    ]
    out1, out2 = tmp_path / "out1", tmp_path / "out2"
    board = run(dirs, [PAPER_CSV], out1 / "board")
    run(dirs, [PAPER_CSV], out2 / "board")
    assert sorted(p.name for p in out1.iterdir()) == ["board.csv", "board.md"]  # no temp files left
    for name in ("board.csv", "board.md"):
        assert (out1 / name).read_bytes() == (out2 / name).read_bytes()
    # the CSV round-trips: plain floats, the documented columns
    back = pd.read_csv(out1 / "board.csv", keep_default_na=False, na_values=[""])
    assert list(back.columns) == list(board.table.columns)
    assert back.loc[0, "clip_score.cosine"] == 0.2898
    measured = back[back["source"] == "run:r1; run:r3"].iloc[0]
    assert measured["random_weights"] == "hpsv2" and measured["n_videos"] == 16
    assert "clip_score.cosine.n" in back.columns and "clip_score.cosine.ci95" in back.columns
    md = (out1 / "board.md").read_text()
    assert md.startswith("# ")
    assert "temporal_flicker ↑" in md
    assert "SFT *(incomplete)*" in md


def test_failed_write_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vbench_pref.leaderboard as lb

    board = build_leaderboard([], [PAPER_CSV])
    write_leaderboard(board, tmp_path / "board")
    before = (tmp_path / "board.csv").read_bytes()

    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(lb.os, "replace", boom)
    with pytest.raises(VbenchPrefError, match="disk full"):
        write_leaderboard(board, tmp_path / "board")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["board.csv", "board.md"]
    assert (tmp_path / "board.csv").read_bytes() == before  # the old file is untouched


def test_output_paths_strip_suffix(tmp_path: Path) -> None:
    assert output_paths(tmp_path / "lb.md") == (tmp_path / "lb.csv", tmp_path / "lb.md")
    assert output_paths(tmp_path / "lb") == (tmp_path / "lb.csv", tmp_path / "lb.md")


def test_run_without_model_is_listed_and_warned(tmp_path: Path) -> None:
    a = make_run(tmp_path, "anon", None, None, {"q": 0.5})
    board = build_leaderboard([a], [])
    assert row(board, "(unknown)", "(unknown)")["source"] == "run:anon"
    assert any("anon" in w and "no model or method" in w for w in board.warnings)
