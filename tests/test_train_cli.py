"""``pairs`` -> ``train-pgdpo`` -> ``eval --model`` and ``plot-training`` through the CLI, offline; 1 vs 2 processes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from vbench_pref.cli._progress import INTERVAL_ENV
from vbench_pref.train.config import TrainConfig

pytest.importorskip("diffusers")


def _metrics(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def pairs_dir(run_cli, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    result = run_cli(folder, "pairs", "--model", "builtin:tiny-wan", "--prompts", "demo", "--n", "2",
                  "--reward", "temporal_flicker", "--out", "pairs")
    assert result.returncode == 0, result.stderr
    return folder


def test_pairs_of_a_random_weight_model_say_so(pairs_dir: Path) -> None:
    pairs = [json.loads(line) for line in (pairs_dir / "pairs" / "pairs.jsonl").read_text().splitlines()]
    assert pairs and all(p["random_weights"] and p["model_random_weights"] for p in pairs)
    assert not any(p["reward_random_weights"] for p in pairs)  # temporal_flicker has no weights
    frame = pd.read_parquet(pairs_dir / "pairs" / "pairs.parquet")
    assert frame.random_weights.all() and frame.model_random_weights.all() and not frame.reward_random_weights.any()
    reward_run = json.loads((pairs_dir / "pairs" / "reward" / "run.json").read_text())
    assert reward_run["model_random_weights"] is True


def test_pairs_train_eval_plot(run_cli, pairs_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv(INTERVAL_ENV, "0")  # a line per step: stderr is a pipe, as in a Slurm log
    (pairs_dir / "run.yaml").write_text("loss: dpo\nbeta: 500\nlora-rank: 4\nmax-steps: 50\n")
    result = run_cli(
        pairs_dir, "train-pgdpo", "--config", "run.yaml", "--model", "builtin:tiny-wan", "--pairs",
        "pairs/pairs.jsonl", "--out", "trained", "--loss", "pgdpo", "--max-steps", "2", "--effective-batch-size", "2",
        "--probe-every", "1", "--learning-rate", "1e-4",
    )
    assert result.returncode == 0, result.stderr
    assert "trained pgdpo (random weights): steps 1-2" in result.stdout
    assert re.search(r"^training: 1/2 steps \(50%\), [\d.]+ (steps/s|s/step), elapsed [\d:]+, ETA [\d:]+, loss ",
                     result.stderr, re.M), result.stderr
    assert re.search(r"^training: 2/2 steps \(100%\), .*, done", result.stderr, re.M), result.stderr
    recorded = json.loads((pairs_dir / "trained" / "train.json").read_text())
    # the command line wins over the file, the file over the defaults
    assert (recorded["loss"], recorded["beta"], recorded["lora_rank"], recorded["max_steps"]) == ("pgdpo", 500.0, 4, 2)

    result = run_cli(pairs_dir, "eval", "--model", "trained", "--prompts", "demo", "-e", "temporal_flicker",
                  "--out", "scored")
    assert result.returncode == 0, result.stderr
    run = json.loads((pairs_dir / "scored" / "run" / "run.json").read_text())
    assert run["method"] == "pgdpo" and run["model"] == "builtin:tiny-wan (random weights)"
    assert run["model_random_weights"] is True
    scores = pd.read_csv(pairs_dir / "scored" / "run" / "scores.csv")
    assert scores.model_random_weights.all() and not scores["temporal_flicker.random_weights"].any()
    assert re.search(r"^generating: 5/5 videos \(100%\), .*, done", result.stderr, re.M), result.stderr

    result = run_cli(pairs_dir, "plot-training", "trained")
    assert result.returncode == 0, result.stderr
    assert (pairs_dir / "trained" / "plots" / "likelihood.png").stat().st_size > 0

    again = run_cli(pairs_dir, "train-pgdpo", "--model", "builtin:tiny-wan", "--pairs", "pairs/pairs.jsonl",
                 "--out", "trained", "--max-steps", "2")
    assert again.returncode == 2 and "pass --resume" in again.stderr and len(again.stderr.strip().splitlines()) == 1


def test_help_documents_every_config_field(run_cli, tmp_path: Path) -> None:
    from dataclasses import fields

    result = run_cli(tmp_path, "train-pgdpo", "--help")
    assert result.returncode == 0
    for f in fields(TrainConfig):
        assert "--" + f.name.replace("_", "-") in result.stdout, f.name


def test_two_processes_train_like_one(run_cli, pairs_dir: Path) -> None:
    args = ("train-pgdpo", "--model", "builtin:tiny-wan", "--pairs", "pairs/pairs.jsonl", "--max-steps", "2",
            "--effective-batch-size", "2", "--lora-rank", "4", "--learning-rate", "1e-3", "--device", "cpu",
            "--probe-every", "2")
    one = run_cli(pairs_dir, *args, "--out", "one")
    assert one.returncode == 0, one.stderr
    launcher = ("-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29541")
    two = run_cli(pairs_dir, *args, "--out", "two", launcher=launcher)
    assert two.returncode == 0, two.stderr + two.stdout
    assert json.loads((pairs_dir / "two" / "train.json").read_text())["run"]["processes"] == 2
    # one process accumulates 2 micro-steps, two processes take one pair each: the same pairs, t and noise
    for a, b in zip(_metrics(pairs_dir / "one"), _metrics(pairs_dir / "two"), strict=True):
        for name in ("loss", "rewards/margins", "logps/chosen", "grad_norm"):
            assert a[name] == pytest.approx(b[name], rel=1e-4, abs=1e-7), (a["step"], name)
