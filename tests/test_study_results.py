"""``vbench-pref study results`` end to end and the leaderboard's ``--study`` source."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.test_cli import cli
from tests.test_leaderboard import DEMO, make_run, row
from tests.test_study_analysis import make_plan, random_study, study_with
from vbench_pref.errors import VbenchPrefError
from vbench_pref.leaderboard import build_leaderboard, render_markdown
from vbench_pref.study import analysis
from vbench_pref.study.report import load_judgements, write_results
from vbench_pref.study.store import open_answers

def invoke(*args: str) -> tuple[int, str]:
    """The command in this process (no interpreter start): exit code and its one error line."""
    from typer.testing import CliRunner

    from vbench_pref.cli import app

    result = CliRunner().invoke(app, list(args))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return result.exit_code, lines[0]


FILES = {"win_rates.csv", "strengths.csv", "agreement.csv", "participants.csv", "summary.md", "user_study.png"}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("study")
    random_study(folder, participants=6, prompts=4)
    return folder


def test_results_cli_writes_every_file_with_the_analysis_numbers(study: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    done = cli("study", "results", str(study), "--out", str(out), "--bootstrap", "300", "--seed", "5")
    assert done.returncode == 0, done.stderr
    assert "144 judgements from 6 participants (0 excluded)" in done.stderr
    assert {p.name for p in out.iterdir()} == FILES  # no temporary file left behind
    plan, table = load_judgements(study)
    expected = analysis.analyse(plan, table, resamples=300, seed=5)
    rates = pd.read_csv(out / "win_rates.csv")
    assert list(rates[["aspect", "method_a", "method_b"]].itertuples(index=False, name=None)) == list(
        expected.pairs[["aspect", "method_a", "method_b"]].itertuples(index=False, name=None))
    for name in ("win", "tie", "loss", "win_rate"):
        for suffix in ("", "_low", "_high"):
            assert rates[f"{name}_pct{suffix}"].to_numpy() == pytest.approx(
                100 * expected.pairs[f"{name}{suffix}"].to_numpy(), abs=1e-3)
    strengths = pd.read_csv(out / "strengths.csv")
    assert strengths["strength"].to_numpy() == pytest.approx(expected.strengths["strength"].to_numpy())
    people = pd.read_csv(out / "participants.csv")
    assert list(people["answered"]) == [12] * 6 and not people["excluded"].any()
    agreement = pd.read_csv(out / "agreement.csv")
    assert list(agreement["aspect"]) == ["vq", "overall"] and (agreement["units"] == 12).all()
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "| Visual quality (vq) | pgdpo vs base | 24 |" in summary
    assert "two-way bootstrap (300 replicates, seed 5)" in summary and "Excluded" in summary
    png = (out / "user_study.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    # the same seed gives the same files
    again = tmp_path / "again"
    assert cli("study", "results", str(study), "--out", str(again), "--bootstrap", "300", "--seed", "5").returncode == 0
    assert (again / "win_rates.csv").read_text() == (out / "win_rates.csv").read_text()


def test_results_of_a_gsb_study_with_four_aspects_and_exclusions(tmp_path: Path) -> None:
    items = [(f"p{k % 3}", f"q{k % 4}", *(("dpo", "base") if k % 2 else ("base", "dpo"))) for k in range(12)]
    plan = make_plan(items, answers="gsb", aspects=("vq", "mq", "ta", "overall"),
                     checks=[("p0", "q9", "base", "left"), ("p1", "q9", "base", "right")])
    picks = {f"i{k}": {a: ("dpo", "base", "tie")[(k + j) % 3] for j, a in enumerate(plan.aspects)} for k in range(12)}
    study = study_with(tmp_path / "study", plan, picks)
    store = open_answers(study)
    store.record("p0", "i12", {a: "left" for a in plan.aspects})  # p0 prefers the corrupted video: excluded
    store.record("p1", "i13", {a: "left" for a in plan.aspects})  # p1 picks the clean one
    store.close()
    written = write_results(study, tmp_path / "out", resamples=200)
    assert {p.name for p in written.files} == FILES | {"gsb.csv"}
    gsb = pd.read_csv(tmp_path / "out" / "gsb.csv")
    kept = [k for k in range(12) if k % 3 != 0]  # p0 answered items 0, 3, 6, 9
    good = sum(("dpo", "base", "tie")[(k + 0) % 3] == "dpo" for k in kept) / len(kept)
    assert gsb.set_index("aspect").loc["vq", "good_pct"] == pytest.approx(100 * good, abs=1e-3)
    assert {"gsb", "gsb_low", "gsb_high", "same_pct"} <= set(gsb.columns)
    people = pd.read_csv(tmp_path / "out" / "participants.csv").set_index("participant")
    assert list(people["checks_failed"]) == [1, 0, 0] and list(people["excluded"]) == [True, False, False]
    summary = (tmp_path / "out" / "summary.md").read_text(encoding="utf-8")
    assert "Excluded (more than 0 failed attention check(s)): p0" in summary and "## GSB" in summary
    lenient = write_results(study, tmp_path / "lenient", allowed_failures=1, resamples=200)
    assert lenient.result.excluded == [] and lenient.result.judgements == 12 * 4


# --------------------------------------------------------------------------------------------------
# one-line errors


def broken_studies(root: Path, good: Path) -> dict[str, tuple[Path, str]]:
    """name -> (study folder, what the error line says)."""
    plan_only = root / "plan-only"
    plan_only.mkdir()
    (plan_only / "study.json").write_text((good / "study.json").read_text())
    empty = root / "empty-answers"
    empty.mkdir()
    (empty / "study.json").write_text((good / "study.json").read_text())
    open_answers(empty).close()
    corrupt = root / "corrupt-answers"
    corrupt.mkdir()
    (corrupt / "study.json").write_text((good / "study.json").read_text())
    (corrupt / "answers.sqlite").write_bytes(b"this is not a database" * 100)
    bad_plan = root / "bad-plan"
    bad_plan.mkdir()
    (bad_plan / "study.json").write_text('{"format": 1, "study_id": "x"')
    no_plan = root / "no-plan"
    no_plan.mkdir()
    return {
        "missing": (root / "nowhere", "study folder not found"),
        "no plan": (no_plan, "study.json: file not found"),
        "bad plan": (bad_plan, "not a study plan"),
        "no answers file": (plan_only, "no answers yet"),
        "no answers": (empty, "no answers yet"),
        "corrupt answers": (corrupt, "cannot read the answers"),
    }


def test_broken_studies_give_one_line_errors(study: Path, tmp_path: Path) -> None:
    for name, (folder, says) in broken_studies(tmp_path, study).items():
        code, line = invoke("study", "results", str(folder), "--out", str(tmp_path / "out"))
        assert code == 2 and says in line and line.startswith("error: "), (name, line)
    assert not (tmp_path / "out").exists()
    (tmp_path / "a-file").write_text("")
    code, line = invoke("study", "results", str(study), "--out", str(tmp_path / "a-file"))
    assert code == 2 and line.endswith("a-file is a file, not a folder")


@pytest.mark.parametrize("option, value, says", [
    ("--bootstrap", "5", "--bootstrap must be in [100, 20000]"),
    ("--allowed-check-failures", "-1", "--allowed-check-failures must be at least 0"),
    ("--seed", "-3", "--seed must be"),
])
def test_bad_numbers_give_one_line_errors(study: Path, tmp_path: Path, option: str, value: str, says: str) -> None:
    code, line = invoke("study", "results", str(study), "--out", str(tmp_path / "out"), option, value)
    assert code == 2 and says in line


def test_everyone_excluded_is_an_error_not_an_empty_table(tmp_path: Path) -> None:
    plan = make_plan([("p1", "q1", "pgdpo", "base")], checks=[("p1", "q2", "base", "left")])
    study = study_with(tmp_path, plan, {"i0": {"vq": "pgdpo", "overall": "pgdpo"}})
    store = open_answers(study)
    store.record("p1", "i1", {"vq": "left", "overall": "left"})
    store.close()
    with pytest.raises(VbenchPrefError, match="1 participant.*excluded.*--allowed-check-failures"):
        write_results(study, tmp_path / "out")
    assert write_results(study, tmp_path / "out", allowed_failures=1, resamples=100).result.judgements == 2


# --------------------------------------------------------------------------------------------------
# the leaderboard


def test_leaderboard_study_columns_merge_with_the_runs_of_the_same_model_and_method(study: Path, tmp_path: Path) -> None:
    pgdpo = make_run(tmp_path, "r-pgdpo", "tiny", "pgdpo", {"clip_score.cosine": 0.31})
    base = make_run(tmp_path, "r-base", "tiny", "base", {"clip_score.cosine": 0.30})
    other = make_run(tmp_path, "r-other", "tiny", "pgdpo", {"clip_score.cosine": 0.2},
                     suite={"name": "other", "digest": "e" * 64, "prompts": 4})
    board = build_leaderboard([pgdpo, base, other], [], studies=[study])
    plan, table = load_judgements(study)
    expected = analysis.analyse(plan, table).vs_baseline.set_index(["method", "aspect"])
    demo = board.table[board.table["suite"] == "demo"]
    assert len(demo) == 3  # pgdpo and base merged with their runs, dpo from the study alone
    merged = demo[demo["method"] == "pgdpo"].iloc[0]
    assert merged["clip_score.cosine"] == 0.31 and merged["source"] == "run:r-pgdpo; study:study-test"
    for aspect in ("vq", "overall"):
        assert merged[f"user_study.{aspect}"] == pytest.approx(expected.loc[("pgdpo", aspect), "win_rate"])
        assert merged[f"user_study.{aspect}.ci95_low"] == pytest.approx(expected.loc[("pgdpo", aspect), "win_rate_low"])
        assert merged[f"user_study.{aspect}.n"] == 24
        assert 0 <= merged[f"user_study.{aspect}.ci95_low"] <= merged[f"user_study.{aspect}"] <= 1
    baseline = demo[demo["method"] == "base"].iloc[0]
    assert pd.isna(baseline["user_study.vq"]) and baseline["clip_score.cosine"] == 0.30
    dpo = demo[demo["method"] == "dpo"].iloc[0]
    assert dpo["source"] == "study:study-test" and not pd.isna(dpo["user_study.overall"])
    assert pd.isna(board.table[board.table["suite"] == "other"].iloc[0]["user_study.vq"])  # another suite
    assert board.directions["user_study.vq"] is True
    markdown = render_markdown(board)
    assert "user_study.vq ↑" in markdown and "study:study-test" in markdown
    assert "user_study.vq (study:study-test): user study: visual quality, the share of human judgements won against the baseline tiny / base" in markdown


def test_leaderboard_from_a_study_alone_and_twice(study: Path, tmp_path: Path) -> None:
    board = build_leaderboard([], [], studies=[study, study])
    assert sorted(board.table["method"]) == ["base", "dpo", "pgdpo"]
    assert set(board.table["suite"]) == {"demo"} and set(board.table["suite_digest"]) == {DEMO["digest"]}
    assert "counted once" in " ".join(board.warnings)
    done = cli("leaderboard", "--study", str(study), "--out", str(tmp_path / "board"))
    assert done.returncode == 0, done.stderr
    csv = pd.read_csv(tmp_path / "board.csv")
    assert {"user_study.vq", "user_study.vq.ci95_low", "user_study.vq.n", "user_study.overall"} <= set(csv.columns)
    assert "## Columns" in (tmp_path / "board.md").read_text(encoding="utf-8")
    code, line = invoke("leaderboard", "--study", str(tmp_path / "nowhere"), "--out", str(tmp_path / "b2"))
    assert code == 2 and "study folder not found" in line


def test_study_methods_sharing_a_model_and_method_stay_apart(tmp_path: Path) -> None:
    plan = make_plan([("p1", "q1", "a", "base"), ("p1", "q2", "base", "b")], methods=("base", "a", "b"),
                     models={"a": ("tiny", "dpo"), "b": ("tiny", "dpo"), "base": ("tiny", "sft")})
    study = study_with(tmp_path, plan, {"i0": {"vq": "a", "overall": "a"}, "i1": {"vq": "b", "overall": "tie"}})
    board = build_leaderboard([], [], studies=[study])
    assert sorted(board.table["method"]) == ["dpo [a]", "dpo [b]", "sft"]
    assert row(board, "tiny", "dpo [b]")["user_study.overall"] == 0.5
    assert any("share model 'tiny'" in w for w in board.warnings)


def test_leaderboard_cli_needs_some_input(tmp_path: Path) -> None:
    code, line = invoke("leaderboard", "--out", str(tmp_path / "b"))
    assert code == 2 and "--study" in line
