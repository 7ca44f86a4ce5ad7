"""``eval`` and ``pairs`` end to end through the CLI, offline, on the built-in tiny model; 1 vs 2 processes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("diffusers")


def test_eval_end_to_end_then_reuses_everything(run_cli, tmp_path: Path) -> None:
    first = run_cli(tmp_path, "eval", "--model", "builtin:tiny-wan", "--prompts", "demo")
    assert first.returncode == 0, first.stderr
    out = tmp_path / "runs" / "tiny-wan-demo"
    manifest = [json.loads(line) for line in (out / "videos" / "manifest.jsonl").read_text().splitlines()]
    assert len(manifest) == 5 and all((out / "videos" / e["video"]).is_file() for e in manifest)
    scores = pd.read_csv(out / "run" / "scores.csv")
    assert len(scores) == 5 and scores["temporal_flicker"].notna().all()
    run_json = json.loads((out / "run" / "run.json").read_text())
    assert run_json["model"] == "builtin:tiny-wan (random weights)"
    assert run_json["generation"]["binding"]["model"] == "builtin:tiny-wan"
    board = pd.read_csv(tmp_path / "runs" / "leaderboard.csv")
    assert list(board["model"]) == ["builtin:tiny-wan (random weights)"]
    assert "skipped clip_score" in first.stderr and "weights pull" in first.stderr
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "videos").glob("*.mp4")}

    second = run_cli(tmp_path, "eval", "--model", "builtin:tiny-wan", "--prompts", "demo")
    assert second.returncode == 0, second.stderr
    assert "reusing 5 of 5 videos" in second.stderr and "5 of 5 videos already scored" in second.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (out / "videos").glob("*.mp4")} == stamps
    assert len(pd.read_csv(tmp_path / "runs" / "leaderboard.csv")) == 1


def test_bad_inputs_are_one_line_errors(run_cli, tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    cases = {
        ("--model", "ckpt/", "--prompts", "demo"): "no such folder",
        ("--model", "builtin:tiny-wan", "--prompts", "empty.txt"): "has no prompts",
        ("--model", "builtin:tiny-wan", "--prompts", "demo", "--frames", "8"): "not valid for wan",
    }
    for args, message in cases.items():
        result = run_cli(tmp_path, "eval", *args)
        assert result.returncode == 2, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and message in lines[0], result.stderr


def test_pairs_for_the_trainer(run_cli, tmp_path: Path) -> None:
    result = run_cli(
        tmp_path, "pairs", "--model", "builtin:tiny-wan", "--prompts", "demo", "--n", "3",
        "--reward", "temporal_flicker", "--out", "pairs",
    )
    assert result.returncode == 0, result.stderr
    pairs = [json.loads(line) for line in (tmp_path / "pairs" / "pairs.jsonl").read_text().splitlines()]
    table = pd.read_parquet(tmp_path / "pairs" / "pairs.parquet")
    assert len(pairs) == len(table) == 5  # one per prompt: best vs worst of 3
    scores = pd.read_csv(tmp_path / "pairs" / "reward" / "scores.csv").set_index("video")["temporal_flicker"]
    for pair in pairs:
        chosen, rejected = (Path(pair[k]).name for k in ("chosen", "rejected"))
        assert (tmp_path / "pairs" / pair["chosen"]).is_file() and (tmp_path / "pairs" / pair["rejected"]).is_file()
        siblings = scores[[v for v in scores.index if v.startswith(pair["prompt_id"] + "-")]]
        assert pair["chosen_score"] == pytest.approx(siblings.max()) == pytest.approx(scores[chosen])
        assert pair["rejected_score"] == pytest.approx(siblings.min()) == pytest.approx(scores[rejected])
        assert pair["margin"] == pytest.approx(pair["chosen_score"] - pair["rejected_score"]) and pair["margin"] > 0


def test_two_processes_make_the_same_videos_and_scores(run_cli, tmp_path: Path) -> None:
    args = ("eval", "--model", "builtin:tiny-wan", "--prompts", "demo", "-n", "2", "-e", "temporal_flicker")
    single = run_cli(tmp_path, *args, "--out", "one", "--leaderboard", "board1")
    assert single.returncode == 0, single.stderr
    launcher = ("-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533")
    double = run_cli(tmp_path, *args, "--out", "two", "--leaderboard", "board2", launcher=launcher)
    assert double.returncode == 0, double.stderr + double.stdout
    one, two = tmp_path / "one", tmp_path / "two"
    assert sorted(p.name for p in (two / "videos").glob(".journal-*")) == [".journal-0.jsonl", ".journal-1.jsonl"]
    videos = sorted(p.name for p in (one / "videos").glob("*.mp4"))
    assert len(videos) == 10 and videos == sorted(p.name for p in (two / "videos").glob("*.mp4"))
    def manifest(folder: Path) -> list[tuple[str, str, int]]:
        lines = (folder / "videos" / "manifest.jsonl").read_text().splitlines()
        return [(e["video"], e["frames_sha256"], e["seed"]) for e in map(json.loads, lines)]

    assert manifest(one) == manifest(two)  # the same pixels, in the same order
    a, b = pd.read_csv(one / "run" / "scores.csv"), pd.read_csv(two / "run" / "scores.csv")
    assert list(a["video"]) == list(b["video"])
    # scores of the mp4s: H.264 may round a pixel differently between runs, never the content
    assert (a["temporal_flicker"] - b["temporal_flicker"]).abs().max() < 1e-3
    assert json.loads((two / "run" / "run.json").read_text())["processes"] == 2
    assert sorted(p.name for p in (two / "run").glob("records*.jsonl")) == ["records.rank0.jsonl", "records.rank1.jsonl"]


def test_two_suites_share_one_leaderboard_and_a_rerun_replaces_its_run(run_cli, tmp_path: Path) -> None:
    (tmp_path / "my.txt").write_text("a red ball rolls\na blue cube spins\n")
    args = ("eval", "--model", "builtin:tiny-wan", "-e", "temporal_flicker")
    for suite in ("demo", "my.txt"):
        result = run_cli(tmp_path, *args, "--prompts", suite)
        assert result.returncode == 0, result.stderr
    board = pd.read_csv(tmp_path / "runs" / "leaderboard.csv")
    assert list(zip(board["suite"], board["n_videos"])) == [("demo", 5), ("my.txt", 2)]
    assert board["model_random_weights"].tolist() == [True, True]
    suite = json.loads((tmp_path / "runs" / "tiny-wan-my" / "run" / "run.json").read_text())["suite"]
    assert (suite["name"], suite["prompts"], len(suite["digest"])) == ("my.txt", 2, 64)
    markdown = (tmp_path / "runs" / "leaderboard.md").read_text()
    assert "## Suite: demo" in markdown and "## Suite: my.txt" in markdown

    again = run_cli(tmp_path, *args, "--prompts", "my.txt", "--out", "runs/again", "--memory-budget", "1GB")
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "runs" / "again" / "run" / "run.json").read_text())["memory_budget"] == 10**9
    replaced = [line for line in again.stderr.splitlines() if "replaces" in line]
    assert len(replaced) == 1 and str(tmp_path / "runs" / "tiny-wan-my" / "run") in replaced[0]
    listed = (tmp_path / "runs" / "leaderboard.runs.txt").read_text().splitlines()
    assert [Path(p).parent.name for p in listed] == ["tiny-wan-demo", "again"]
    board = pd.read_csv(tmp_path / "runs" / "leaderboard.csv")
    assert board["suite"].tolist() == ["demo", "my.txt"] and board["source"].str.startswith("run:run-").all()
    assert json.loads((tmp_path / "runs" / "again" / "run" / "run.json").read_text())["run_id"] in board["source"][1]
