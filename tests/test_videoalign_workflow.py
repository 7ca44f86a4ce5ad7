"""The paper's workflow with VideoAlign through the CLI, offline, on a tiny VideoReward in the published layout:
``pairs`` (VideoAlign Overall is the default reward) -> ``train-pgdpo``; ``pairs`` without the weights stops
before generating; the leaderboard puts measured VQ, MQ, TA and Overall beside the paper's rows."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from vbench_pref.vlm import videoreward


@pytest.fixture(scope="module")
def tiny_reward(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The ``-O`` arguments that load a tiny random VideoReward (labelled nowhere as random: it is a file)."""
    options = videoreward.write_tiny_videoreward(tmp_path_factory.mktemp("videoreward"), seed=1)
    return [arg for name, value in options.items() for arg in ("-O", f"videoalign.{name}={value}")]


def test_pairs_by_overall_by_default_then_training(run_cli, tmp_path: Path, tiny_reward: list[str]) -> None:
    result = run_cli(tmp_path, "pairs", "--model", "builtin:tiny-wan", "--prompts", "demo", "--n", "2",
                     "--frames", "5", "--steps", "2", "--out", "pairs", *tiny_reward)
    assert result.returncode == 0, result.stdout + result.stderr
    pairs = [json.loads(line) for line in (tmp_path / "pairs" / "pairs.jsonl").read_text().splitlines()]
    assert pairs and {p["reward"] for p in pairs} == {"videoalign.overall"}
    scores = pd.read_csv(tmp_path / "pairs" / "reward" / "scores.csv").set_index("video")
    overall = scores["videoalign.overall"]
    # Overall is the sum of the normalised sub-scores, and each pair is the prompt's best against its worst
    total = scores["videoalign.vq"] + scores["videoalign.mq"] + scores["videoalign.ta"]
    assert (overall - total).abs().max() < 1e-9
    for pair in pairs:
        chosen, rejected = (overall[Path(pair[k]).name] for k in ("chosen", "rejected"))
        assert pair["chosen_score"] == pytest.approx(chosen) and pair["rejected_score"] == pytest.approx(rejected)
        assert chosen > rejected
    result = run_cli(tmp_path, "train-pgdpo", "--model", "builtin:tiny-wan", "--pairs", "pairs/pairs.jsonl",
                     "--out", "trained", "--max-steps", "1", "--effective-batch-size", "2", "--lora-rank", "4")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads((tmp_path / "trained" / "train.json").read_text())


def test_pairs_without_the_weights_stops_before_generating(run_cli, tmp_path: Path) -> None:
    result = run_cli(tmp_path, "pairs", "--model", "builtin:tiny-wan", "--prompts", "demo", "--n", "2",
                     "--out", "pairs")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "videoalign" in lines[0] and "weights pull" in lines[0], result.stderr
    assert not (tmp_path / "pairs" / "videos").exists()


def test_leaderboard_shows_vq_mq_ta_overall_beside_the_paper(run_cli, tmp_path: Path, tiny_reward: list[str]) -> None:
    from vbench_pref.synthetic import smooth_motion
    from vbench_pref.video import write_video

    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(3):
        write_video(videos / f"v{i}.mp4", smooth_motion(9, 32, 48, i), fps=8, lossless=True)
    (videos / "prompts.txt").write_text("a cat\na dog\na red car\n")
    result = run_cli(tmp_path, "score", "--videos", "videos", "--prompts", "videos/prompts.txt", "--out", "run",
                     "-e", "videoalign", *tiny_reward)
    assert result.returncode == 0, result.stdout + result.stderr
    result = run_cli(tmp_path, "leaderboard", "run", "--reported", "pgdpo_paper", "--out", "board")
    assert result.returncode == 0, result.stdout + result.stderr
    board = pd.read_csv(tmp_path / "board.csv")
    for column in ("videoalign.vq", "videoalign.mq", "videoalign.ta", "videoalign.overall"):
        assert column in board.columns
    measured = board[board["source"].isna() | ~board["source"].astype(str).str.contains("PG-DPO paper")]
    reported = board[board["source"].astype(str).str.contains("PG-DPO paper")]
    assert len(measured) == 1 and measured[["videoalign.vq", "videoalign.mq", "videoalign.ta"]].notna().all(axis=None)
    wan = reported[(reported.model == "Wan2.1-14B") & (reported.method == "baseline")]
    assert wan["videoalign.vq"].iloc[0] == pytest.approx(0.1601)  # the paper's Table 1, as printed
    markdown = (tmp_path / "board.md").read_text()
    assert "videoalign.vq" in markdown and "videoalign.overall" in markdown
