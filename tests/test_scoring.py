"""The engine end to end: decode once, batching, broken files, resume after Ctrl-C or kill, refusal."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vbench_pref import video as video_io
from vbench_pref.errors import RunConfigMismatch, VbenchPrefError, WeightsMissingError
from vbench_pref.scoring import RunInterrupted, ScoreOptions, run_scoring
from vbench_pref.video import write_video


def vbench_flicker(frames: np.ndarray) -> float:
    """VBench's formula as VBench computes it: float32 absdiff, mean per pair, mean over pairs."""
    pairs = [np.mean(np.abs(frames[i].astype(np.float32) - frames[i + 1].astype(np.float32))) for i in range(len(frames) - 1)]
    return (255.0 - np.mean(pairs).item()) / 255.0


def options(videos: Path, out: Path, *evaluators: str, **kwargs) -> ScoreOptions:
    return ScoreOptions(videos=videos, out=out, prompts=kwargs.pop("prompts", videos / "prompts.txt"),
                        evaluators=list(evaluators), device="cpu", **kwargs)


def add_broken_files(directory: Path, good: Path) -> None:
    (directory / "zz_empty.mp4").write_bytes(b"")
    (directory / "zz_text.mp4").write_text("this is not a video\n", encoding="utf-8")
    data = good.read_bytes()
    (directory / "zz_truncated.mp4").write_bytes(data[: len(data) // 2])


def test_flicker_equals_vbench_formula_and_broken_files_are_reported(videos, tmp_path, register, test_evaluators) -> None:
    directory, arrays = videos
    add_broken_files(directory, directory / "video_0.mp4")
    with open(directory / "prompts.txt", "a", encoding="utf-8") as handle:
        handle.write("broken one\nbroken two\nbroken three\n")
    register(test_evaluators["brightness"])
    result = run_scoring(options(directory, tmp_path / "run", "temporal_flicker", "brightness_test"))
    scores = pd.read_csv(tmp_path / "run" / "scores.csv")
    assert list(scores.columns) == ["video", "prompt", "temporal_flicker", "brightness_test", "model_random_weights",
                                    "temporal_flicker.random_weights", "brightness_test.random_weights"]
    # videos made elsewhere: whether their model had random weights is unknown, not false
    assert scores.model_random_weights.isna().all() and not scores["temporal_flicker.random_weights"].any()
    assert json.loads((tmp_path / "run" / "run.json").read_text())["model_random_weights"] is None
    good = scores[scores.video.str.startswith("video_")]
    for i, array in enumerate(arrays):
        assert good.temporal_flicker.iloc[i] == pytest.approx(vbench_flicker(array), abs=1e-6)
    errors = pd.read_csv(tmp_path / "run" / "errors.csv")
    assert set(errors.video) == {"zz_empty.mp4", "zz_text.mp4", "zz_truncated.mp4"}
    assert len(errors) == 6 and errors.error.str.startswith("decode: ").all()
    assert result.n_failed == 3 and result.exit_code == 3
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["scores"]["temporal_flicker"]["n"] == 5 and summary["scores"]["temporal_flicker"]["n_missing"] == 3
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["status"] == {**run["status"], "complete": True, "videos": 8, "scored": 5, "failed": 3}
    assert {e["name"] for e in run["evaluators"]} == {"temporal_flicker", "brightness_test"}
    assert run["package"]["version"] and run["command"] and run["device"] == "cpu"
    assert run["chunk_videos"] == ScoreOptions.chunk_videos and run["residency_groups"] == [["temporal_flicker"], ["brightness_test"]]
    assert "chunk_videos" not in json.dumps(run["config"])  # it cannot change a score: never refuses a resume


def test_each_video_is_decoded_once_and_frames_are_batched(videos, tmp_path, register, test_evaluators) -> None:
    directory, _ = videos
    register(test_evaluators["brightness"], test_evaluators["prompt_length"])
    video_io.DECODES.clear()
    run_scoring(options(directory, tmp_path / "run", "temporal_flicker", "brightness_test", "prompt_length_test", batch_size=2))
    assert sorted(video_io.DECODES.values()) == [1] * 5
    assert test_evaluators["brightness"].batch_sizes == [2, 2, 1]
    video_io.DECODES.clear()
    run_scoring(options(directory, tmp_path / "run", "temporal_flicker", "brightness_test", "prompt_length_test", batch_size=2))
    assert sum(video_io.DECODES.values()) == 0  # everything was already scored


def test_failing_video_costs_only_itself_and_nan_stays_missing(tmp_path, register, test_evaluators) -> None:
    directory = tmp_path / "videos"
    directory.mkdir()
    prompts = ["fine", "FAIL here", "NAN please", "fine again"]
    for i in range(4):
        write_video(directory / f"v{i}.mp4", np.full((3, 32, 32, 3), 40 * i, np.uint8), fps=8)
    manifest = directory / "m.jsonl"
    manifest.write_text("".join(json.dumps({"video": f"v{i}.mp4", "prompt": p}) + "\n" for i, p in enumerate(prompts)))
    register(test_evaluators["prompt_length"])
    result = run_scoring(options(directory, tmp_path / "run", "prompt_length_test", prompts=manifest, batch_size=4))
    scores = pd.read_csv(tmp_path / "run" / "scores.csv")
    chars = scores["prompt_length_test.chars"].tolist()
    assert chars[0] == 4 and math.isnan(chars[1]) and math.isnan(chars[2]) and chars[3] == 10
    assert scores["prompt_length_test.words"].tolist()[2] == 2
    errors = pd.read_csv(tmp_path / "run" / "errors.csv")
    assert errors.video.tolist() == ["v1.mp4"] and "cannot score v1.mp4" in errors.error[0]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())["scores"]["prompt_length_test.chars"]
    assert summary["n"] == 2 and summary["n_missing"] == 2
    assert result.n_failed == 1


def test_unicode_and_long_prompts_survive_the_round_trip(tmp_path) -> None:
    directory = tmp_path / "videos"
    directory.mkdir()
    prompts = ["一只猫在弹钢琴 🎹, «quoted» \"double\", comma", "x" * 5000]
    for i in range(2):
        write_video(directory / f"v{i}.mp4", np.zeros((2, 16, 16, 3), np.uint8), fps=8)
    (directory / "p.txt").write_text("\n".join(prompts) + "\n", encoding="utf-8")
    run_scoring(options(directory, tmp_path / "run", "temporal_flicker", prompts=directory / "p.txt"))
    assert pd.read_csv(tmp_path / "run" / "scores.csv", keep_default_na=False).prompt.tolist() == prompts
    assert pd.read_parquet(tmp_path / "run" / "scores.parquet").prompt.tolist() == prompts


def test_ctrl_c_then_rerun_completes_without_duplicates(videos, tmp_path, register, test_evaluators) -> None:
    directory, _ = videos
    brightness = test_evaluators["brightness"]
    calls = {"n": 0}
    original = brightness.score

    def interrupting(self, batch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, batch)

    register(brightness)
    brightness.score = interrupting
    try:
        with pytest.raises(RunInterrupted) as info:
            run_scoring(options(directory, tmp_path / "run", "temporal_flicker", "brightness_test", batch_size=1))
    finally:
        brightness.score = original
    assert info.value.result.interrupted
    partial = pd.read_csv(tmp_path / "run" / "scores.csv")
    assert 0 < partial.brightness_test.notna().sum() < 5
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"]["complete"] is False
    result = run_scoring(options(directory, tmp_path / "run", "temporal_flicker", "brightness_test", batch_size=1))
    assert result.resumed and result.exit_code == 0
    final = pd.read_csv(tmp_path / "run" / "scores.csv")
    assert final.video.tolist() == [f"video_{i}.mp4" for i in range(5)]
    assert final.drop(columns="model_random_weights").notna().all().all()  # unknown for videos made elsewhere
    journal = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    pairs = [(r["video"], r["evaluator"]) for r in journal]
    assert len(pairs) == len(set(pairs)) == 10


SLOW_PLUGIN = '''
import time
import numpy as np
from vbench_pref.evaluator import Evaluator, ScoreSpec
from vbench_pref.video import FrameSpec


class Slow(Evaluator):
    name = "slow_test"
    version = "1"
    scores = (ScoreSpec("mean", True),)
    frames = FrameSpec(sampling="count", count=2)
    reference = "test"

    def score(self, batch):
        time.sleep(0.3)
        return {"mean": np.array([s.frames.float().mean().item() for s in batch])}
'''


def slow_run_command(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """A CLI run of 10 videos with a slow plug-in evaluator, so that it can be stopped half-way."""
    directory = tmp_path / "videos"
    directory.mkdir()
    for i in range(10):
        write_video(directory / f"v{i:02d}.mp4", np.full((3, 16, 16, 3), 20 * i, np.uint8), fps=8)
    site = tmp_path / "site"
    site.mkdir()
    (site / "slow_plugin.py").write_text(textwrap.dedent(SLOW_PLUGIN))
    dist = site / "slow_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: slow-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[vbench_pref.evaluators]\nslow_test = slow_plugin:Slow\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    command = [sys.executable, "-m", "vbench_pref", "score", "--videos", str(directory), "--out", str(tmp_path / "run"),
               "-e", "slow_test", "-e", "temporal_flicker", "--batch-size", "1", "--device", "cpu"]
    return command, env


def stop_half_way(command: list[str], env: dict[str, str], journal: Path, sig: int) -> subprocess.CompletedProcess[str]:
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not journal.exists() or journal.read_text().count("\n") < 6):
        time.sleep(0.05)
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=60)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def assert_complete_without_duplicates(command: list[str], env: dict[str, str], run: Path, done_before: int) -> None:
    assert 6 <= done_before < 20, "the run finished before it could be stopped"
    finished = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert finished.returncode == 0, finished.stderr
    assert "resuming" in finished.stderr
    scores = pd.read_csv(run / "scores.csv")
    assert scores.video.tolist() == [f"v{i:02d}.mp4" for i in range(10)]
    assert scores[["slow_test", "temporal_flicker"]].notna().all().all()
    records = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    assert len(records) == len({(r["video"], r["evaluator"]) for r in records}) == 20


def test_killed_run_resumes_without_lost_or_duplicated_rows(tmp_path) -> None:
    command, env = slow_run_command(tmp_path)
    journal = tmp_path / "run" / "records.jsonl"
    stop_half_way(command, env, journal, signal.SIGKILL)
    assert_complete_without_duplicates(command, env, tmp_path / "run", journal.read_text().count("\n"))


def test_ctrl_c_on_the_cli_exits_130_and_the_rerun_completes(tmp_path) -> None:
    command, env = slow_run_command(tmp_path)
    journal = tmp_path / "run" / "records.jsonl"
    stopped = stop_half_way(command, env, journal, signal.SIGINT)
    assert stopped.returncode == 130, stopped.stderr
    assert "rerun the same command to resume" in stopped.stderr
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["status"]["complete"] is False
    assert_complete_without_duplicates(command, env, tmp_path / "run", journal.read_text().count("\n"))


def test_a_different_configuration_is_refused(videos, tmp_path, register, test_evaluators) -> None:
    directory, _ = videos
    register(test_evaluators["brightness"])
    run_scoring(options(directory, tmp_path / "run", "temporal_flicker"))
    before = (tmp_path / "run" / "scores.csv").read_bytes()
    with pytest.raises(RunConfigMismatch, match="evaluators"):
        run_scoring(options(directory, tmp_path / "run", "temporal_flicker", "brightness_test"))
    (directory / "prompts.txt").write_text("".join(f"another prompt {i}\n" for i in range(5)))
    with pytest.raises(RunConfigMismatch, match="inputs.digest"):
        run_scoring(options(directory, tmp_path / "run", "temporal_flicker"))
    assert (tmp_path / "run" / "scores.csv").read_bytes() == before


def test_missing_weights_are_skipped_by_default_and_fatal_when_asked_for(videos, tmp_path, register, test_evaluators) -> None:
    directory, _ = videos
    register(test_evaluators["needs_weights"])
    with pytest.raises(WeightsMissingError, match="vbench-pref weights pull"):
        run_scoring(options(directory, tmp_path / "explicit", "needs_weights_test"))
    assert not (tmp_path / "explicit").exists()
    result = run_scoring(options(directory, tmp_path / "default"))
    assert "needs_weights_test" in result.skipped
    assert "temporal_flicker" in pd.read_csv(tmp_path / "default" / "scores.csv").columns


def test_prompt_needing_evaluator_without_prompts_is_refused(tmp_path, register, test_evaluators) -> None:
    directory = tmp_path / "videos"
    directory.mkdir()
    write_video(directory / "a.mp4", np.zeros((2, 16, 16, 3), np.uint8), fps=8)
    register(test_evaluators["prompt_length"])
    with pytest.raises(VbenchPrefError, match="need\\(s\\) prompts"):
        run_scoring(options(directory, tmp_path / "run", "prompt_length_test", prompts=None))


def test_plugins_with_the_old_load_signature_still_run(videos, tmp_path, register) -> None:
    import numpy as np

    from vbench_pref.evaluator import Evaluator, ScoreSpec
    from vbench_pref.video import FrameSpec

    class OldStyle(Evaluator):
        name = "old_style_test"
        version = "1"
        scores = (ScoreSpec("frames", True),)
        frames = FrameSpec()
        loaded: list[str] = []

        def load(self, device="cpu", dtype=None):  # written before models could be shared
            super().load(device, dtype)
            OldStyle.loaded.append(str(device))

        def score(self, batch):
            return {"frames": np.array([s.frames.shape[0] for s in batch], dtype=float)}

    register(OldStyle)
    directory, _ = videos
    result = run_scoring(ScoreOptions(videos=directory, out=tmp_path / "run", evaluators=["old_style_test"], device="cpu"))
    assert result.exit_code == 0 and OldStyle.loaded == ["cpu"]


def test_run_json_records_the_prompt_suite(tmp_path) -> None:
    import hashlib

    directory = tmp_path / "videos"
    directory.mkdir()
    for name in ("a-0", "a-1", "b-0"):
        write_video(directory / f"{name}.mp4", np.zeros((2, 16, 16, 3), np.uint8), fps=8)
    manifest = [("a-0.mp4", "id-a", "a cat"), ("a-1.mp4", "id-a", "a cat"), ("b-0.mp4", "id-b", "a dog")]
    (directory / "manifest.jsonl").write_text(
        "".join(json.dumps({"video": v, "prompt_id": i, "prompt": p}) + "\n" for v, i, p in reversed(manifest))
    )
    # the distinct (id, prompt) pairs as JSON lines, sorted: independent of video order and count per prompt
    expected = hashlib.sha256(b'["id-a", "a cat"]\n["id-b", "a dog"]\n').hexdigest()
    run_scoring(options(directory, tmp_path / "run", "temporal_flicker", prompts=None))
    suite = json.loads((tmp_path / "run" / "run.json").read_text())["suite"]
    assert suite == {"name": "videos", "digest": expected, "prompts": 2}
    run_scoring(options(directory, tmp_path / "named", "temporal_flicker", prompts=None, suite="demo"))
    assert json.loads((tmp_path / "named" / "run.json").read_text())["suite"]["name"] == "demo"

    # a prompt file: named after the file; a prompt without an id has the id a prompt file gives it
    (directory / "manifest.jsonl").unlink()
    (directory / "p.txt").write_text("a cat\na cat\na dog\n", encoding="utf-8")
    run_scoring(options(directory, tmp_path / "file", "temporal_flicker", prompts=directory / "p.txt"))
    ids = {p: "p-" + hashlib.sha256(p.encode()).hexdigest()[:10] for p in ("a cat", "a dog")}
    lines = sorted(json.dumps([ids[p], p]) + "\n" for p in ids)
    suite = json.loads((tmp_path / "file" / "run.json").read_text())["suite"]
    assert suite == {"name": "p.txt", "digest": hashlib.sha256("".join(lines).encode()).hexdigest(), "prompts": 2}


def test_named_evaluators_scan_the_plugins_once(monkeypatch, register, test_evaluators) -> None:
    """Reading every installed package's entry points is the slow part of a lookup: one scan per run."""
    from vbench_pref import registry
    from vbench_pref.scoring import build_evaluators

    register(test_evaluators["brightness"], test_evaluators["prompt_length"])
    scans = []
    original = registry._plugins
    monkeypatch.setattr(registry, "_plugins", lambda names: scans.append(1) or original(names))
    chosen, _ = build_evaluators(["temporal_flicker", "brightness_test", "prompt_length_test"], {}, True)
    assert [e.name for e in chosen] == ["temporal_flicker", "brightness_test", "prompt_length_test"]
    assert len(scans) == 1
    with pytest.raises(VbenchPrefError, match="unknown evaluator 'brightnes'"):
        build_evaluators(["temporal_flicker", "brightnes"], {}, True)
