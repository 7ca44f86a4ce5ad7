"""Two nodes (``torchrun --nnodes 2``, one process each, on the loopback address) against one process, on the
CPU with gloo: ``eval`` makes the same videos and scores, ``train-pgdpo`` the same per-step losses.

On node 1, LOCAL_RANK is 0 but RANK is 1: a process that took its local rank for its global one would
write node 0's journal, or think itself the main process and write the shared files twice.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("diffusers")

pytestmark = pytest.mark.slow

TIMEOUT_S = 300


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_two_nodes(
    env: dict[str, str], folder: Path, *args: str, node_folders: tuple[Path, Path] | None = None
) -> list[subprocess.CompletedProcess[str]]:
    """``torchrun --nnodes 2 --node_rank {0,1}`` as two launches, as a cluster runs one per node, in ``folder``
    (or each in its own of ``node_folders``); both are killed (their whole process group) if either outlives
    the timeout, so a hang fails instead of blocking."""
    port = _free_port()
    launches = []
    for node, cwd in enumerate(node_folders or (folder, folder)):
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
                   "--node_rank", str(node), "--master_addr", "127.0.0.1", "--master_port", str(port),
                   "-m", "vbench_pref", *args]
        launches.append(subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True, start_new_session=True))
    results = []
    try:
        for launch in launches:
            stdout, stderr = launch.communicate(timeout=TIMEOUT_S)
            results.append(subprocess.CompletedProcess(launch.args, launch.returncode, stdout, stderr))
    finally:
        for launch in launches:
            if launch.poll() is None:
                os.killpg(launch.pid, signal.SIGKILL)
                launch.wait()
    return results


def _assert_ok(results: list[subprocess.CompletedProcess[str]]) -> None:
    for node, result in enumerate(results):
        assert result.returncode == 0, f"node {node}:\n{result.stdout}\n{result.stderr}"


def test_two_nodes_eval_like_one_process(run_cli, cli_environment, tmp_path: Path) -> None:
    args = ("eval", "--model", "builtin:tiny-wan", "--prompts", "demo", "-n", "2", "-e", "temporal_flicker")
    single = run_cli(tmp_path, *args, "--out", "one", "--leaderboard", "board1")
    assert single.returncode == 0, single.stderr
    _assert_ok(run_two_nodes(cli_environment(tmp_path), tmp_path, *args, "--out", "two", "--leaderboard", "board2"))
    one, two = tmp_path / "one", tmp_path / "two"
    # one journal per global rank: node 1's process is rank 1, not its local rank 0
    assert sorted(p.name for p in (two / "videos").glob(".journal-*")) == [".journal-0.jsonl", ".journal-1.jsonl"]
    assert sorted(p.name for p in (two / "run").glob("records*.jsonl")) == ["records.rank0.jsonl", "records.rank1.jsonl"]

    def manifest(folder: Path) -> list[tuple[str, str, int]]:
        lines = (folder / "videos" / "manifest.jsonl").read_text().splitlines()
        return [(e["video"], e["frames_sha256"], e["seed"]) for e in map(json.loads, lines)]

    assert len(manifest(one)) == 10 and manifest(one) == manifest(two)
    a, b = pd.read_csv(one / "run" / "scores.csv"), pd.read_csv(two / "run" / "scores.csv")
    assert list(a["video"]) == list(b["video"]) and b["temporal_flicker"].notna().all()
    assert (a["temporal_flicker"] - b["temporal_flicker"]).abs().max() < 1e-3  # H.264 may round a pixel
    assert json.loads((two / "run" / "run.json").read_text())["processes"] == 2
    # the leaderboard is written once, by the global main process, and lists the run once
    assert len((tmp_path / "board2.runs.txt").read_text().splitlines()) == 1


def test_two_nodes_train_like_one_process(run_cli, cli_environment, tmp_path: Path) -> None:
    made = run_cli(tmp_path, "pairs", "--model", "builtin:tiny-wan", "--prompts", "demo", "--n", "2",
                   "--reward", "temporal_flicker", "--out", "pairs")
    assert made.returncode == 0, made.stderr
    args = ("train-pgdpo", "--model", "builtin:tiny-wan", "--pairs", "pairs/pairs.jsonl", "--max-steps", "2",
            "--effective-batch-size", "2", "--lora-rank", "4", "--learning-rate", "1e-3", "--device", "cpu",
            "--probe-every", "2")
    one = run_cli(tmp_path, *args, "--out", "one")
    assert one.returncode == 0, one.stderr
    _assert_ok(run_two_nodes(cli_environment(tmp_path), tmp_path, *args, "--out", "two"))
    assert json.loads((tmp_path / "two" / "train.json").read_text())["run"]["processes"] == 2

    def metrics(folder: Path) -> list[dict]:
        return [json.loads(line) for line in (tmp_path / folder / "metrics.jsonl").read_text().splitlines()]

    # metrics.jsonl is appended by the global main alone: one line per step, not one per node
    assert [m["step"] for m in metrics(Path("two"))] == [1, 2]
    for a, b in zip(metrics(Path("one")), metrics(Path("two")), strict=True):
        for name in ("loss", "rewards/margins", "logps/chosen", "grad_norm"):
            assert a[name] == pytest.approx(b[name], rel=1e-4, abs=1e-7), (a["step"], name)


def test_an_output_folder_that_is_not_shared_is_refused(cli_environment, tmp_path: Path) -> None:
    """A relative --out launched from two directories stands for a node-local disk: each node would see only
    its own videos and the main one would score half of them as if they were all."""
    nodes = (tmp_path / "node0", tmp_path / "node1")
    for folder in nodes:
        folder.mkdir()
    results = run_two_nodes(cli_environment(tmp_path), tmp_path, "eval", "--model", "builtin:tiny-wan", "--prompts",
                            "demo", "-e", "temporal_flicker", "--out", "run", "--leaderboard", "board",
                            node_folders=nodes)
    for result in results:
        assert result.returncode != 0
    message = [line for line in results[0].stderr.splitlines() if "not one folder that every process sees" in line]
    assert message and message[0].startswith("error: the output folder run"), results[0].stderr
    assert not (nodes[0] / "run" / "videos" / "manifest.jsonl").exists()
    assert not list((nodes[0] / "run" / "videos").glob("*.mp4"))


BUILD_ON_RANK_1 = """
import torch.distributed as dist
from vbench_pref.distributed import processes
from vbench_pref.generate.models import ensure_builtin, load_model

procs = processes()
if procs.rank == 1:
    ensure_builtin("tiny-wan")
procs.barrier()
load_model("builtin:tiny-wan")
print("loaded on rank", procs.rank)
dist.destroy_process_group()
"""


def test_a_builtin_built_on_rank_1_loads_everywhere(cli_environment, tmp_path: Path) -> None:
    """transformers writes nothing from a process whose group rank is not 0: a built-in saved there lacked its
    text encoder, and no process could load it."""
    (tmp_path / "build.py").write_text(BUILD_ON_RANK_1)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
               str(_free_port()), "build.py"]
    result = subprocess.run(command, cwd=tmp_path, env=cli_environment(tmp_path), capture_output=True, text=True,
                            timeout=TIMEOUT_S)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(line for line in result.stdout.splitlines() if line.startswith("loaded")) == [
        "loaded on rank 0", "loaded on rank 1"]
    assert (tmp_path / "cache" / "models" / "tiny-wan" / "text_encoder" / "model.safetensors").is_file()
