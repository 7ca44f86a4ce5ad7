"""``benchmarks/gpu_check.py`` end to end at smoke sizes on the CPU: every part runs and writes its figures, an
overrunning part is recorded as timed out while the next one runs, and a full run without CUDA refuses."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import torch

pytest.importorskip("diffusers")
pytest.importorskip("open_clip")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def _run(tmp_path: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VBENCH_PREF_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _numbers(value: object) -> list[float]:
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    return [float(value)] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


@pytest.mark.slow
def test_smoke_run_writes_every_part(tmp_path: Path) -> None:
    result = _run(tmp_path, "--smoke", "--device", "cpu", "--out", "check.json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "check.json").read_text())
    parts = report["parts"]
    assert list(parts) == ["clip_family", "generation", "training", "engine", "precision", "vlm_rewards", "vqa",
                          "distribution"]
    for name, part in parts.items():
        assert part["status"] == "ok", (name, part)
        assert all(math.isfinite(n) for n in _numbers(part)), (name, part)
        assert part["random_weights"] is True
    for name in ("clip_score", "aesthetic", "hpsv2"):
        assert parts["clip_family"][name]["frames_per_s"] > 0
    assert parts["training"]["s_per_step"] > 0 and parts["training"]["lora_rank"] == 4
    assert parts["generation"]["total_s"] > 0 and parts["generation"]["frames"] == 5
    engine = parts["engine"]
    assert {"temporal_flicker", "clip_score", "aesthetic", "hpsv2"} <= set(engine["evaluators"])
    assert set(engine["evaluator_compute_s"]) == set(engine["evaluators"]) and engine["videos_per_s"] > 0
    for dtype in ("reference", "bfloat16", "float16"):  # every score column of the CLIP family, against fp32
        assert {"clip_score.cosine", "aesthetic", "hpsv2"} <= set(parts["precision"][dtype])
    for name in ("videoalign", "videoscore2"):
        assert parts["vlm_rewards"][name]["videos_per_s"] > 0 and parts["vlm_rewards"][name]["options"]["weights"] == "random"
    for name in ("dover", "fast_vqa_b"):
        assert parts["vqa"][name]["videos_per_s"] > 0
        assert next(iter(parts["vqa"][name]["options"].values()))["weights"] == "random"
    for name in ("fvd", "fid", "fvd_videomae"):
        assert parts["distribution"][name]["videos_per_s"] > 0 and parts["distribution"][name]["options"]["weights"] == "random"
    assert parts["distribution"]["bootstrap_frechet_s"] > 0
    # one summary line per part, then where the JSON went
    lines = result.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines[:len(parts)]] == list(parts) and lines[-1].startswith("-> check.json")


def test_an_overrunning_part_is_recorded_and_the_next_runs(tmp_path: Path) -> None:
    # a limit below the child's start-up time: killed, recorded, and the driver goes on to the next part
    result = _run(tmp_path, "--smoke", "--device", "cpu", "--only", "generation,training", "--limit", "generation=0.2",
                  "--out", "check.json", timeout=300)
    assert result.returncode == 0, result.stderr
    parts = json.loads((tmp_path / "check.json").read_text())["parts"]
    assert parts["generation"]["status"] == "timed_out" and parts["generation"]["limit_s"] == 0.2
    assert parts["generation"]["wall_s"] < 30
    assert parts["training"]["status"] == "ok" and parts["training"]["s_per_step"] > 0
    assert "generation   TIMED_OUT after 0 s" in result.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_full_run_without_cuda_says_so(tmp_path: Path) -> None:
    result = _run(tmp_path, "--out", "check.json", timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "no CUDA device" in result.stderr
    assert not (tmp_path / "check.json").exists()
