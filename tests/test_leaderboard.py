"""Leaderboard: measured runs (fabricated here, no engine) + reported rows → CSV / Markdown."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from vbench_pref.errors import VbenchPrefError
from vbench_pref.stats import summarize
from vbench_pref.leaderboard import (
    build_leaderboard,
    load_reported,
    load_run,
    output_paths,
    render_markdown,
    run,
    superseded_by,
    write_leaderboard,
)

REPO = Path(__file__).resolve().parents[1]
DEMO = {"name": "demo", "digest": "d" * 64, "prompts": 16}
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
    suite: dict[str, Any] | None = DEMO,
    videos: dict[str, list[float]] | None = None,
    updated: str = "2026-01-01T00:00:00+00:00",
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a run directory shaped like the scoring engine's.

    ``scores`` maps column -> mean, or -> (mean, higher_is_better), or -> a full summary entry dict.
    ``suite=None`` writes a run.json from before suites were recorded; ``videos`` (column -> one value per
    video, video i of prompt ``prompt i``) writes scores.csv and makes each mean and interval those values'.
    """
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    n = 16
    info: dict[str, Any] = {
        "run_id": run_id,
        "model": model,
        "method": method,
        "random_weights": list(random_weights),
        "status": {"complete": complete, "videos": n, "scored": n if complete else n // 2, "failed": 0},
        "package_version": "0.0.test",
        "updated": updated,
        **({} if suite is None else {"suite": suite}),
        **(extra or {}),
    }
    (run_dir / "run.json").write_text(json.dumps(info))
    if videos:
        count = len(next(iter(videos.values())))
        frame = pd.DataFrame({"video": [f"v{i}.mp4" for i in range(count)], "prompt": [f"prompt {i}" for i in range(count)]})
        for column, values in videos.items():
            frame[column] = values
            summary = summarize(np.array(values))
            scores = {**scores, column: {**summary, "higher_is_better": True, "evaluator": column}}
        frame.to_csv(run_dir / "scores.csv", index=False)
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


def best_of(board, model: str, method: str, kind: str = "best") -> set[str]:
    cell = row(board, model, method)[kind]
    return set(cell.split(";")) if cell else set()


def tied_of(board, model: str, method: str) -> set[str]:
    return best_of(board, model, method, "tied_best")


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

    assert list(board.table.columns[:10]) == [
        "suite", "suite_digest", "model", "method", "model_random_weights", "n_videos",
        "clip_score.cosine", "temporal_flicker", "hpsv2", "source",
    ]
    # measured suite first, then the reported file's own section (grouped by model inside it)
    assert list(board.table["method"]) == ["PG-DPO", "baseline", "PaperMethod", "baseline"]
    assert list(board.table["suite"]) == ["demo", "as reported", "as reported", "as reported"]
    assert [s.title for s in board.sections] == ["Suite: demo", "As reported: rep.csv"]
    measured = row(board, "M1", "PG-DPO")
    assert measured["source"] == "run:r1; run:r2"
    assert measured["n_videos"] == 16
    assert measured["hpsv2"] == pytest.approx(0.24)
    assert measured["clip_score.cosine.n"] == 16
    assert measured["clip_score.cosine.ci95_low"] == pytest.approx(0.268)
    assert measured["clip_score.cosine.ci95_high"] == pytest.approx(0.272)
    assert "clip_score.cosine.ci95" not in board.table.columns  # no unlabelled half-width
    assert row(board, "M1", "baseline")["source"] == "Some paper, Table 9"  # default from # source:
    assert row(board, "M1", "PaperMethod")["source"] == "Other paper"
    assert pd.isna(row(board, "M1", "baseline")["n_videos"])
    assert pd.isna(row(board, "M1", "baseline")["hpsv2"])
    # a paper's numbers and ours never share a table: the lone measured value is not ranked, the
    # paper's rows are ranked among themselves per model
    assert best_of(board, "M1", "PG-DPO") == set()
    assert best_of(board, "M1", "PaperMethod") == {"clip_score.cosine"}
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
    board = build_leaderboard(dirs, [])  # no per-video scores: separated = intervals (±0.002) apart
    assert best_of(board, "M", "base") == set() and tied_of(board, "M", "base") == set()
    assert best_of(board, "M", "dpo") == {"err"}  # lower err wins
    assert tied_of(board, "M", "dpo") == tied_of(board, "M", "pgdpo") == {"q"}  # tie on q: shown as a tie
    assert best_of(board, "M", "pgdpo") == set()
    assert best_of(board, "Other", "base") == {"q", "err"}
    md = render_markdown(board)
    assert "| method | n | q ↑ | err ↓ | source |" in md
    assert md.count("≈0.7000 [0.6980, 0.7020]") == 2 and "**0.7000**" not in md
    assert "**0.1000** [0.0980, 0.1020]" in md and "**0.0500**" in md
    assert "**0.5000**" not in md  # M/base q is not best; Other/e q=0.1 not best


def test_overlapping_intervals_are_a_tie(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    dirs = [
        make_run(runs, "a", "M", "x", {"q": 0.9482}),
        make_run(runs, "b", "M", "y", {"q": 0.9483}),
        make_run(runs, "c", "M", "z", {"q": 0.6}),
    ]
    board = build_leaderboard(dirs, [])
    # 0.9483 is not bold over 0.9482: their intervals overlap; both beat 0.6 clearly
    assert best_of(board, "M", "x") == best_of(board, "M", "y") == set()
    assert tied_of(board, "M", "x") == tied_of(board, "M", "y") == {"q"}
    assert tied_of(board, "M", "z") == set()
    assert row(board, "M", "y")["q"] == 0.9483
    md = render_markdown(board)
    assert "≈0.9483 [0.9463, 0.9503]" in md and "≈0.9482" in md and "**" not in md.split("### M", 1)[1]


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
    assert "0.9000 [0.8980, 0.9020]†" in md and "±" not in md
    assert best_of(board, "M", "y") == {"hpsv2"}
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


def test_same_suite_model_method_twice_the_newer_run_wins(tmp_path: Path) -> None:
    new = make_run(tmp_path, "run-new", "M", "x", {"q": 0.6}, updated="2026-02-01T00:00:00+00:00")
    old = make_run(tmp_path, "run-old", "M", "x", {"q": 0.5, "p": 0.1}, updated="2026-01-01T00:00:00+00:00")
    gone = make_run(tmp_path, "run-gone", "M", "x", {"q": 0.4}, updated="2025-12-01T00:00:00+00:00")
    board = build_leaderboard([new, old, gone], [])  # the order given does not matter, the time does
    shown = row(board, "M", "x")
    assert shown["q"] == 0.6 and shown["p"] == 0.1  # the old run keeps the column the new one lacks
    assert shown["source"] == "run:run-new; run:run-old"
    assert "run run-old: q replaced by the newer run run-new (suite 'demo', model 'M', method 'x')" in board.warnings
    assert "run run-gone is replaced by the newer run run-new (suite 'demo', model 'M', method 'x')" in board.warnings
    # same timestamp: the one given later wins
    a = make_run(tmp_path, "a", "N", "x", {"q": 0.1})
    b = make_run(tmp_path, "b", "N", "x", {"q": 0.2})
    assert row(build_leaderboard([a, b], []), "N", "x")["q"] == 0.2
    assert row(build_leaderboard([b, a], []), "N", "x")["q"] == 0.1


def test_same_run_twice_counts_once(tmp_path: Path) -> None:
    a = make_run(tmp_path, "r", "M", "x", {"q": 0.5})
    board = build_leaderboard([a, tmp_path / "." / "r"], [])
    assert len(board.table) == 1 and row(board, "M", "x")["source"] == "run:r"
    assert any("is given twice: counted once" in w for w in board.warnings)


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
    assert "**" not in md.split("### M", 1)[1].split("## Sources")[0]


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
    assert back.loc[0, "clip_score.cosine"] == 0.31
    assert back[back["suite"] == "as reported"].iloc[0]["clip_score.cosine"] == 0.2898
    measured = back[back["source"] == "run:r1; run:r3"].iloc[0]
    assert measured["random_weights"] == "hpsv2" and measured["n_videos"] == 16
    assert measured["hpsv2.random_weights"] == True and measured["clip_score.cosine.random_weights"] == False  # noqa: E712
    for column in ("clip_score.cosine.n", "clip_score.cosine.ci95_low", "clip_score.cosine.ci95_high"):
        assert column in back.columns
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


# --------------------------------------------------------------------------------------------------
# suites, paired winners, random weights as data


MY = {"name": "my.txt", "digest": "e" * 64, "prompts": 2}


def test_one_model_on_two_suites_gives_two_sections(tmp_path: Path) -> None:
    # the same model, method and columns on two suites: two sections, never one column
    demo = make_run(tmp_path, "demo-run", "tiny", "base", {"temporal_flicker": 0.95, "q": 0.4})
    mine = make_run(tmp_path, "my-run", "tiny", "base", {"temporal_flicker": 0.97}, suite=MY)
    other = make_run(tmp_path, "my-dpo", "tiny", "dpo", {"temporal_flicker": 0.50}, suite=MY)
    board = build_leaderboard([demo, mine, other], [])
    assert board.warnings == ()
    table = board.table
    assert list(zip(table["suite"], table["method"], table["temporal_flicker"])) == [
        ("demo", "base", 0.95), ("my.txt", "base", 0.97), ("my.txt", "dpo", 0.50),
    ]
    assert list(table["suite_digest"]) == ["d" * 64, "e" * 64, "e" * 64]
    assert [(s.title, s.detail, s.rows) for s in board.sections] == [
        ("Suite: demo", "16 prompts, sha256 dddddddddddd", (0,)),
        ("Suite: my.txt", "2 prompts, sha256 eeeeeeeeeeee", (1, 2)),
    ]
    # ranked within a suite only: demo's lone row is not compared with my.txt's
    assert table.loc[0, "best"] == "" and table.loc[1, "best"] == "temporal_flicker"
    md = render_markdown(board)
    demo_part, my_part = md.split("## Suite: demo", 1)[1].split("## Suite: my.txt")
    assert "0.9500" in demo_part and "0.9700" not in demo_part and "| q ↑ |" not in my_part
    assert "**0.9700**" in my_part


def test_same_suite_name_with_other_prompts_is_another_section(tmp_path: Path) -> None:
    edited = {**MY, "digest": "f" * 64}
    a = make_run(tmp_path, "a", "M", "x", {"q": 0.5}, suite=MY)
    b = make_run(tmp_path, "b", "M", "x", {"q": 0.6}, suite=edited)
    board = build_leaderboard([a, b], [])
    assert [s.detail for s in board.sections] == ["2 prompts, sha256 eeeeeeeeeeee", "2 prompts, sha256 ffffffffffff"]
    assert board.warnings == ()  # different prompts: nothing replaced


def test_run_json_without_suite_still_loads(tmp_path: Path) -> None:
    known = make_run(tmp_path, "new", "M", "x", {"q": 0.5})
    named = make_run(tmp_path, "old", "M", "y", {"q": 0.6}, suite=None, extra={"inputs": {"prompts": "/data/vb.txt"}})
    bare = make_run(tmp_path, "older", "M", "z", {"q": 0.7}, suite=None)
    (r,) = load_run(named)
    assert (r.suite, r.suite_digest) == ("vb.txt", None)
    board = build_leaderboard([known, named, bare], [])
    assert list(board.table["suite"]) == ["demo", "vb.txt", "unknown"]
    assert board.table["suite_digest"].isna().tolist() == [False, True, True]
    assert any("run old: run.json does not record its prompt suite; grouped as 'vb.txt'" == w for w in board.warnings)
    assert "prompts unknown" in render_markdown(board)


def prompts_of(base: float, n: int = 20, step: float = 0.01) -> list[float]:
    return [base + step * i for i in range(n)]


def test_paired_test_separates_what_intervals_cannot(tmp_path: Path) -> None:
    # A beats B by 0.001 on every one of 20 prompts: the spread across prompts (0.2) hides it from the
    # intervals, the paired test does not; C is A give or take 0.0005 per prompt, a hair higher on average
    b_values = prompts_of(0.5)
    a_values = [v + 0.001 for v in b_values]
    c_values = [v + (0.00051 if i % 2 else -0.0005) for i, v in enumerate(a_values)]
    a = make_run(tmp_path, "a", "M", "a", {}, videos={"q": a_values})
    b = make_run(tmp_path, "b", "M", "b", {}, videos={"q": b_values})
    board = build_leaderboard([a, b], [])
    assert row(board, "M", "a")["q.ci95_low"] < row(board, "M", "b")["q.ci95_high"]  # intervals overlap
    assert best_of(board, "M", "a") == {"q"} and tied_of(board, "M", "b") == set()
    c = make_run(tmp_path, "c", "M", "c", {}, videos={"q": c_values})
    board = build_leaderboard([a, b, c], [])
    # C is on top, separated from B but not from A: A and C are tied, B is out
    assert tied_of(board, "M", "a") == tied_of(board, "M", "c") == {"q"}
    assert tied_of(board, "M", "b") == set() and best_of(board, "M", "a") == set()


def test_paired_on_common_prompts_else_intervals(tmp_path: Path) -> None:
    # five prompts can never give p < 0.05, however clear the gain: a tie, although the intervals are apart
    a = make_run(tmp_path, "a", "M", "a", {}, videos={"q": [0.90, 0.91, 0.92, 0.93, 0.94]})
    b = make_run(tmp_path, "b", "M", "b", {}, videos={"q": [0.10, 0.11, 0.12, 0.13, 0.14]})
    board = build_leaderboard([a, b], [])
    assert row(board, "M", "a")["q.ci95_low"] > row(board, "M", "b")["q.ci95_high"]
    assert tied_of(board, "M", "a") == tied_of(board, "M", "b") == {"q"}
    # without per-video scores on both sides the intervals decide
    (a / "scores.csv").unlink()
    board = build_leaderboard([a, b], [])
    assert best_of(board, "M", "a") == {"q"}


def test_paired_pairs_by_prompt_and_averages_a_prompts_videos(tmp_path: Path) -> None:
    (r,) = load_run(make_run(tmp_path, "r", "M", "x", {}, videos={"q": [0.1, 0.3, 0.5]}))
    frame = pd.read_csv(tmp_path / "r" / "scores.csv")
    frame["prompt"] = ["p0", "p0", ""]  # two videos of one prompt; one video without a prompt
    frame.to_csv(tmp_path / "r" / "scores.csv", index=False)
    (r,) = load_run(tmp_path / "r")
    assert r.per_prompt["q"].to_dict() == {"p0": pytest.approx(0.2), "v2.mp4": 0.5}


def test_reported_rows_are_not_tested_and_show_ties(tmp_path: Path) -> None:
    rep = write_reported(
        tmp_path / "rep.csv",
        "# higher_is_better: q\n# suite: VBench (946 prompts)\nmodel,method,source,q\nM,a,s,0.94830\nM,b,s,0.94834\nM,c,s,0.9\n",
    )
    measured = make_run(tmp_path, "r", "M", "ours", {"q": 0.99})
    board = build_leaderboard([measured], [rep])
    assert row(board, "M", "ours")["best"] == ""  # alone in its suite
    assert tied_of(board, "M", "a") == tied_of(board, "M", "b") == {"q"}  # equal at 4 decimals
    assert best_of(board, "M", "a") == set() and tied_of(board, "M", "c") == set()
    assert board.sections[1].title == "As reported: rep.csv"
    assert board.sections[1].detail.startswith("Suite: VBench (946 prompts); no per-video data, so no test")
    assert row(board, "M", "a")["suite"] == "VBench (946 prompts)"
    md = render_markdown(board)
    assert "≈0.9483 |" in md and "reported rows are not tested" in md


def test_random_weights_columns_in_csv(tmp_path: Path) -> None:
    flagged = make_run(tmp_path, "f", "gen", "a", {"q": 0.5, "p": 0.1}, random_weights=("p",),
                       extra={"model_random_weights": True})
    labelled = make_run(tmp_path, "l", "builtin:tiny-wan (random weights)", "a", {"q": 0.5})
    unknown = make_run(tmp_path, "u", "gen", "b", {"q": 0.6}, extra={"evaluators": [{"name": "q", "random_weights": True}]})
    real = make_run(tmp_path, "r", "gen", "c", {"q": 0.7}, extra={"model_random_weights": False})
    rep = write_reported(tmp_path / "rep.csv", "model,method,source,q\ngen,paper,s,0.3\n")
    prefix = tmp_path / "board"
    run([flagged, labelled, unknown, real], [rep], prefix)
    back = pd.read_csv(prefix.with_suffix(".csv"), keep_default_na=False, na_values=[""])
    by_method = {(m, x): rec for m, x, (_, rec) in zip(back["model"], back["method"], back.iterrows())}
    assert by_method["gen", "a"]["model_random_weights"] == True  # noqa: E712
    assert by_method["builtin:tiny-wan (random weights)", "a"]["model_random_weights"] == True  # noqa: E712
    assert pd.isna(by_method["gen", "b"]["model_random_weights"])  # nothing says: unknown
    assert by_method["gen", "c"]["model_random_weights"] == False  # noqa: E712
    assert by_method["gen", "paper"]["model_random_weights"] == False  # noqa: E712
    assert by_method["gen", "a"]["p.random_weights"] == True and by_method["gen", "a"]["q.random_weights"] == False  # noqa: E712
    assert by_method["gen", "b"]["q.random_weights"] == True  # noqa: E712 - from the evaluator's provenance
    assert pd.isna(by_method["gen", "c"]["p.random_weights"])  # no value, no flag
    assert by_method["gen", "paper"]["q.random_weights"] == False  # noqa: E712
    assert "0.1000 [0.0980, 0.1020]†" in prefix.with_suffix(".md").read_text()


def test_superseded_by(tmp_path: Path) -> None:
    new = make_run(tmp_path, "new", "M", "x", {"q": 0.6, "p": 0.2})
    same = make_run(tmp_path, "same", "M", "x", {"q": 0.5})
    wider = make_run(tmp_path, "wider", "M", "x", {"q": 0.5, "r": 0.1})  # keeps a column: stays listed
    other_suite = make_run(tmp_path, "other", "M", "x", {"q": 0.5}, suite=MY)
    other_method = make_run(tmp_path, "method", "M", "y", {"q": 0.5})
    broken = tmp_path / "broken"
    broken.mkdir()
    listed = [same, wider, other_suite, other_method, broken, new]
    assert superseded_by(new, listed) == [same]
    assert superseded_by(broken, listed) == []


def test_eval_replaces_the_listed_run_and_never_fails_on_a_broken_one(tmp_path: Path, capsys) -> None:
    from vbench_pref.evaluate import add_to_leaderboard

    old = make_run(tmp_path, "old", "M", "x", {"q": 0.5}, updated="2026-01-01T00:00:00+00:00")
    other = make_run(tmp_path, "other", "M", "x", {"q": 0.4}, suite=MY)
    broken = make_run(tmp_path, "broken", "M", "y", {"q": 0.3})
    (broken / "summary.json").write_text("{cut")
    new = make_run(tmp_path, "new", "M", "x", {"q": 0.6}, updated="2026-02-01T00:00:00+00:00")
    prefix = tmp_path / "board"
    listing = tmp_path / "board.runs.txt"
    listing.write_text("".join(f"{p.resolve()}\n" for p in (old, other, broken)))
    markdown = add_to_leaderboard(prefix, new, [])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("leaderboard:")]
    assert lines == [f"leaderboard: {new.resolve()} replaces {old.resolve()} (same suite, model and method)"]
    assert listing.read_text().splitlines() == [str(p.resolve()) for p in (other, broken, new)]
    board = pd.read_csv(prefix.with_suffix(".csv"))
    assert list(zip(board["suite"], board["q"])) == [("my.txt", 0.4), ("demo", 0.6)]
    assert "left out:" in markdown.read_text() and "broken" in markdown.read_text()
    add_to_leaderboard(prefix, new, [])  # again: nothing to replace, nothing listed twice
    assert listing.read_text().splitlines() == [str(p.resolve()) for p in (other, broken, new)]
