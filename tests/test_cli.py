"""The command line as a user meets it: exit codes, one-line errors, the demo, the leaderboard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from vbench_pref.synthetic import smooth_motion
from vbench_pref.video import write_video


def cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", **(env or {})}  # rich wraps tables at the terminal width
    return subprocess.run([sys.executable, "-m", "vbench_pref", *args], capture_output=True, text=True, cwd=cwd, env=env)


def error_line(process: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in process.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, process.stderr
    return lines[0]


def test_score_with_broken_files_exits_3_and_writes_the_run(videos, tmp_path) -> None:
    directory, _ = videos
    (directory / "zz_empty.mp4").write_bytes(b"")
    with open(directory / "prompts.txt", "a", encoding="utf-8") as handle:
        handle.write("an empty file\n")
    process = cli("score", "--videos", str(directory), "--prompts", str(directory / "prompts.txt"),
                  "--out", str(tmp_path / "run"), "-e", "temporal_flicker", "--device", "cpu")
    assert process.returncode == 3, process.stderr
    assert "1 of 6 videos could not be scored" in process.stderr
    assert "temporal_flicker" in process.stdout
    for name in ("scores.csv", "scores.parquet", "errors.csv", "summary.csv", "summary.json", "run.json"):
        assert (tmp_path / "run" / name).is_file(), name
    assert pd.read_csv(tmp_path / "run" / "errors.csv").video.tolist() == ["zz_empty.mp4"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-e", "temporal_flick"], "Did you mean temporal_flicker"),
        (["--prompts", "missing.txt"], "prompt file missing.txt does not exist"),
        (["-O", "temporal_flicker"], "-O takes EVALUATOR.OPTION=VALUE"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
    ],
)
def test_bad_input_is_one_line_with_exit_2(videos, tmp_path, args, expected) -> None:
    directory, _ = videos
    process = cli("score", "--videos", str(directory), "--out", str(tmp_path / "run"), *args, cwd=tmp_path)
    assert process.returncode == 2
    assert expected in error_line(process)
    assert not (tmp_path / "run").exists()


def test_empty_prompt_file_and_empty_folder(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    process = cli("score", "--videos", str(tmp_path / "empty"), "--out", str(tmp_path / "run"))
    assert process.returncode == 2 and "no videos in" in error_line(process)
    (tmp_path / "p.txt").write_text("\n\n")
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "a.mp4").write_bytes(b"")
    process = cli("score", "--videos", str(tmp_path / "v"), "--prompts", str(tmp_path / "p.txt"), "--out", str(tmp_path / "run"))
    assert process.returncode == 2 and "has no prompts" in error_line(process)


def test_demo_runs_offline_and_prints_the_leaderboard(tmp_path) -> None:
    process = cli("demo", "--out", str(tmp_path / "demo"), "--device", "cpu")
    assert process.returncode == 0, process.stderr
    assert "temporal_flicker" in process.stdout and "PG-DPO" in process.stdout
    board = pd.read_csv(tmp_path / "demo" / "leaderboard.csv")
    measured = board[board.source.str.startswith("run:")]
    assert measured.method.tolist() == ["demo"] and measured.temporal_flicker.notna().all()
    assert (board.source.str.contains("PG-DPO paper")).sum() == len(board) - 1
    again = cli("demo", "--out", str(tmp_path / "demo"), "--device", "cpu")
    assert again.returncode == 0 and "resuming" in again.stderr


def test_evaluators_command_lists_cards() -> None:
    process = cli("evaluators", "--json")
    cards = {card["name"]: card for card in json.loads(process.stdout)}
    assert cards["temporal_flicker"]["reference"] == "Vchitect/VBench:vbench/temporal_flickering.py"
    table = cli("evaluators")
    assert table.returncode == 0 and "temporal_flicker" in table.stdout


def test_leaderboard_command_with_bundled_reported_rows(tmp_path) -> None:
    process = cli("leaderboard", "--reported", "pgdpo_paper", "--out", str(tmp_path / "board"))
    assert process.returncode == 0, process.stderr
    assert (tmp_path / "board.csv").is_file() and "**0.3156**" in (tmp_path / "board.md").read_text()
    missing = cli("leaderboard", str(tmp_path / "nope"), "--out", str(tmp_path / "b2"))
    assert missing.returncode == 2 and "nope" in error_line(missing)


def test_random_weight_smoke_mode_is_labelled_end_to_end(tmp_path) -> None:
    for i in range(2):
        write_video(tmp_path / "v" / f"v{i}.mp4", smooth_motion(3, 64, 64, seed=i), fps=8)
    process = cli("score", "--videos", str(tmp_path / "v"), "--out", str(tmp_path / "run"), "-e", "warp_flicker",
                  "-O", "warp_flicker.model=raft_small", "-O", "warp_flicker.weights=random", "-O", "warp_flicker.iters=2",
                  "--device", "cpu")
    assert process.returncode == 0, process.stderr
    assert "random weights" in process.stdout
    scores = pd.read_csv(tmp_path / "run" / "scores.csv")
    assert scores.random_weights.tolist() == ["warp_flicker", "warp_flicker"] and scores.warp_flicker.notna().all()
    assert json.loads((tmp_path / "run" / "run.json").read_text())["random_weights"] == ["warp_flicker"]
    offline = cli("score", "--videos", str(tmp_path / "v"), "--out", str(tmp_path / "run2"), "-e", "warp_flicker",
                  env={"TORCH_HOME": str(tmp_path / "empty_torch_home"), "VBENCH_PREF_RAFT_WEIGHTS": ""})
    assert offline.returncode == 2 and "raft_large_C_T_SKHT_V2" in error_line(offline)


def test_help_imports_no_heavy_module() -> None:
    # structural, not timed: --help of the program and of every command must not load torch & co.
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from vbench_pref.cli import app\n"
        "commands = [[], ['eval'], ['generate'], ['pairs'], ['score'], ['train-pgdpo'], ['precompute'],\n"
        "            ['lab', 'displacement'], ['leaderboard'], ['evaluators'], ['weights', 'pull'],\n"
        "            ['plot-training'], ['examples'], ['demo'], ['reference-stats']]\n"
        "commands += [['study'], ['study', 'create'], ['study', 'invite'], ['study', 'export-pairs'], ['study', 'results'],\n"
        "            ['study', 'serve'], ['browse']]\n"
        "for command in commands:\n"
        "    result = CliRunner().invoke(app, [*command, '--help'])\n"
        "    assert result.exit_code == 0, (command, result.output)\n"
        "heavy = ('torch', 'diffusers', 'transformers', 'open_clip', 'pandas', 'matplotlib', 'accelerate', 'peft',\n"
        "         'av', 'numpy')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"imported for --help: {done.stdout.strip()}"
    plain = cli("--help")
    assert plain.returncode == 0 and "train-pgdpo" in plain.stdout
