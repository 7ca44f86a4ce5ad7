"""Fail fast: every fault a user can cause or fix is one line and exit 2, found before a model loads or a file
is written; and a write that fails later (permissions, a full disk) is one line naming the path."""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from vbench_pref import atomic
from vbench_pref.cli import app
from vbench_pref.errors import VbenchPrefError, os_error
from vbench_pref.preflight import check_device, check_output_file, check_output_folder, check_range

from vbench_pref.synthetic import smooth_motion
from vbench_pref.video import write_video

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


# A plain progress line ("scoring: 2/5 videos (40%), ..."): a log may hold some before a run fails midway.
PROGRESS_LINE = re.compile(r"^[\w -]+: \d+/(\d+|\?) \w+s\b")


def one_error_line(result: Any) -> str:
    """The command failed with exit 2 and said why in exactly one line, after any progress lines."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    assert lines and lines[-1].startswith("error: "), result.stderr
    assert all(PROGRESS_LINE.match(line) for line in lines[:-1]), result.stderr
    return lines[-1]


def make_videos(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        write_video(folder / f"video_{i}.mp4", smooth_motion(5, 32, 32, seed=i), fps=8)


def _can_write(folder: Path) -> bool:
    try:
        handle, name = tempfile.mkstemp(dir=folder)
    except OSError:
        return False
    os.close(handle)
    os.unlink(name)
    return True


@pytest.fixture
def unwritable(tmp_path: Path) -> Any:
    """A real folder this process cannot write to: mode 0555, or under root (which ignores mode bits) sysfs."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if _can_write(folder):
            folder = Path("/sys/kernel")
            if not folder.is_dir() or _can_write(folder):
                pytest.skip("no folder this process cannot write to")
        yield folder
    finally:
        (tmp_path / "read-only").chmod(0o755)


@pytest.fixture
def no_model_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a generator or a model to train fails the test: preflight must stop the command first."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the model was loaded before the inputs were checked")

    monkeypatch.setattr("vbench_pref.evaluate.load_model", refuse)
    monkeypatch.setattr("vbench_pref.train.trainer.load_model", refuse)


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Empty weight caches, offline, no weight files named by environment variables."""
    monkeypatch.setenv("VBENCH_PREF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in [k for k in os.environ if k.startswith("VBENCH_PREF_") and k.endswith("_WEIGHTS")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def pairs_file(tmp_path: Path) -> Path:
    """A pairs file whose videos exist (nothing decodes them before the model loads)."""
    make_videos(tmp_path / "pairs" / "videos", 2)
    pairs = tmp_path / "pairs" / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "a cat", "chosen": "videos/video_0.mp4", "rejected": "videos/video_1.mp4"}) + "\n")
    return pairs


# ------------------------------------------------------------------------------------------- the helpers
def test_check_device_refuses_unknown_and_absent_devices() -> None:
    assert check_device("cpu") == torch.device("cpu")
    assert check_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("tpu", "gpu", "cuda:x", ""):
        with pytest.raises(VbenchPrefError, match="is not a device|not supported"):
            check_device(bad)
    with pytest.raises(VbenchPrefError, match="CUDA"):
        check_device(f"cuda:{torch.cuda.device_count() + 3}")


@NO_CUDA
def test_check_device_refuses_cuda_without_cuda() -> None:
    with pytest.raises(VbenchPrefError, match="--device cuda was asked for but torch sees no CUDA device"):
        check_device("cuda")


def test_check_output_folder_leaves_no_trace(tmp_path: Path) -> None:
    assert check_output_folder(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert list(tmp_path.iterdir()) == []  # probed, not created
    (tmp_path / "file").write_text("x")
    with pytest.raises(VbenchPrefError, match=r"--out .*file is a file, not a folder"):
        check_output_folder(tmp_path / "file")
    with pytest.raises(VbenchPrefError, match=r"--out .*file/run: .*file is a file, not a folder"):
        check_output_folder(tmp_path / "file" / "run")
    with pytest.raises(VbenchPrefError, match="is a folder; give a file name"):
        check_output_file(tmp_path)


def test_check_output_folder_refuses_an_unwritable_folder(unwritable: Path) -> None:
    with pytest.raises(VbenchPrefError, match=f"--out {unwritable}/run: cannot write to {unwritable} "):
        check_output_folder(unwritable / "run")


def test_check_range_words() -> None:
    check_range("--x", None, 1)
    check_range("--x", 0.5, 0, 1, high_open=True)
    cases = [((1.5, 0, 1), {"high_open": True}, "--x must be in [0, 1); got 1.5"),
             ((-1.0, 0), {"low_open": True}, "--x must be positive; got -1.0"),
             ((0, 1), {}, "--x must be at least 1; got 0"),
             ((float("nan"), 0), {}, "--x must be a finite number; got nan")]
    for args, kwargs, message in cases:
        with pytest.raises(VbenchPrefError) as caught:
            check_range("--x", *args, **kwargs)
        assert str(caught.value) == message


def test_os_error_maps_only_what_a_user_can_fix() -> None:
    assert "read-only file system" in str(os_error(OSError(errno.EROFS, "Read-only file system", "/x/y")))
    assert str(os_error(OSError(errno.EACCES, "Permission denied", "/x/y"))) == "/x/y: permission denied"
    full = str(os_error(OSError(errno.ENOSPC, "No space left on device"), "/x/scores.csv"))
    assert full.startswith("disk full while writing /x/scores.csv: what finished is kept")
    assert os_error(OSError(errno.EBADF, "Bad file descriptor")) is None  # a bug, not the user's


def test_atomic_writes_name_the_file_a_nameless_error_hit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")  # as fsync raises it: no file name

    monkeypatch.setattr(atomic.os, "fsync", full)
    for write in (lambda p: atomic.append_synced(p, "x\n"), lambda p: atomic.atomic_write_text(p, "x")):
        with pytest.raises(OSError) as caught:
            write(tmp_path / "out.txt")
        assert caught.value.filename == str(tmp_path / "out.txt")


# ---------------------------------------------------- section 3: nothing generated or loaded in vain
@pytest.mark.parametrize("command", [
    ("eval", "-e", "hpsv2", "--out", "ev"),
    ("pairs", "--reward", "hpsv2", "--n", "2", "--out", "ev"),
])
def test_eval_and_pairs_without_weights_fail_before_any_video(offline, no_model_load, tmp_path: Path,
                                                              command: tuple[str, ...]) -> None:
    pytest.importorskip("diffusers")
    result = invoke(*command[:-2], "--model", "builtin:tiny-wan", "--prompts", "demo", *command[-2:])
    line = one_error_line(result)
    assert "HPS_v2.1_compressed.pt" in line and "weights pull" in line
    assert not list(tmp_path.rglob("*.mp4")) and not (tmp_path / "ev").exists()


def test_eval_checks_scoring_and_leaderboard_options_before_generating(offline, no_model_load, tmp_path: Path) -> None:
    pytest.importorskip("diffusers")
    (tmp_path / "board").write_text("a file where the leaderboard's folder goes")
    cases = {
        ("--batch-size", "0"): "--batch-size must be at least 1",
        ("--score-dtype", "fp8"): "--dtype must be one of",
        ("-e", "temporal_flick"): "Did you mean temporal_flicker",
        ("--reported", "no_such_paper"): "reported file 'no_such_paper' not found",
        ("--leaderboard", "board/lb"): "board is a file, not a folder",
        ("--steps", "0"): "--steps must be at least 1",
        ("--seed", "-1"): "--seed must be in [0, ",
        ("--memory-budget", "lots"): "--memory-budget takes a size like 4GB",
    }
    for args, message in cases.items():
        line = one_error_line(invoke("eval", "--model", "builtin:tiny-wan", "--prompts", "demo", "--out", "ev", *args))
        assert message in line, (args, line)
    assert not (tmp_path / "ev").exists()


def test_pairs_refuses_options_for_another_evaluator(offline, no_model_load) -> None:
    pytest.importorskip("diffusers")
    result = invoke("pairs", "--model", "builtin:tiny-wan", "--prompts", "demo", "--reward", "temporal_flicker",
                    "-O", "clip_score.weights=random", "--out", "p")
    assert "options given for evaluator(s) not selected: clip_score" in one_error_line(result)


def test_train_with_missing_pairs_fails_before_the_model_loads(offline, no_model_load, tmp_path: Path) -> None:
    result = invoke("train-pgdpo", "--model", "builtin:tiny-wan", "--pairs", "missing.jsonl", "--out", "t")
    assert "pairs file missing.jsonl not found" in one_error_line(result)
    assert not (tmp_path / "t").exists()


def test_train_with_a_missing_pair_video_fails_before_the_model_loads(offline, no_model_load, pairs_file: Path) -> None:
    (pairs_file.parent / "videos" / "video_1.mp4").unlink()
    result = invoke("train-pgdpo", "--model", "builtin:tiny-wan", "--pairs", str(pairs_file), "--out", "t")
    assert "1 video(s) of the pairs not found, e.g." in one_error_line(result)


# ------------------------------------------------------- section 5: read-only, full disk, file as --out
def test_score_into_an_unwritable_folder(offline, videos, unwritable: Path) -> None:
    directory, _ = videos
    result = invoke("score", "--videos", str(directory), "--out", str(unwritable / "run"), "-e", "temporal_flicker")
    assert f"cannot write to {unwritable}" in one_error_line(result)


def test_generate_into_an_unwritable_folder_or_a_file(offline, no_model_load, unwritable: Path, tmp_path: Path) -> None:
    pytest.importorskip("diffusers")
    (tmp_path / "taken").write_text("x")
    for out, message in ((unwritable / "videos", f"cannot write to {unwritable}"), (tmp_path / "taken", "is a file")):
        result = invoke("generate", "--model", "builtin:tiny-wan", "--prompts", "demo", "--out", str(out))
        assert message in one_error_line(result)


def test_train_into_an_unwritable_folder_or_a_file(offline, no_model_load, unwritable: Path, pairs_file: Path,
                                                   tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("x")
    for out, message in ((unwritable / "run", f"cannot write to {unwritable}"), (tmp_path / "taken", "is a file")):
        result = invoke("train-pgdpo", "--model", "builtin:tiny-wan", "--pairs", str(pairs_file), "--out", str(out))
        assert message in one_error_line(result)
    unwritable_cache = invoke("train-pgdpo", "--model", "builtin:tiny-wan", "--pairs", str(pairs_file), "--out",
                              str(tmp_path / "t"), "--cache", str(unwritable / "cache"))
    assert f"--cache {unwritable}/cache: cannot write" in one_error_line(unwritable_cache)


def _fail_fsync_of(name: str, after: int, monkeypatch: pytest.MonkeyPatch, code: int = errno.ENOSPC) -> None:
    """The ``after``-th and later fsyncs of files called ``name`` fail as a full (or read-only) disk does."""
    real, calls = os.fsync, {"n": 0}

    def fsync(fd: int) -> None:
        if name in Path(os.readlink(f"/proc/self/fd/{fd}")).name:  # the file or its temporary twin
            calls["n"] += 1
            if calls["n"] >= after:
                raise OSError(code, os.strerror(code))
        real(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_disk_full_during_score_is_one_line_and_resumes(offline, videos, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    directory, _ = videos
    args = ("score", "--videos", str(directory), "--out", str(tmp_path / "run"), "-e", "temporal_flicker",
            "--batch-size", "1", "--chunk-videos", "1", "--workers", "1", "--device", "cpu")
    with monkeypatch.context() as patch:
        _fail_fsync_of("records.jsonl", 3, patch)
        line = one_error_line(invoke(*args))
    assert line == (f"error: disk full while writing {tmp_path / 'run' / 'records.jsonl'}: what finished is kept; "
                    "free space and rerun")
    again = invoke(*args)
    assert again.exit_code == 0, again.stderr
    assert "of 5 videos already scored" in again.stderr


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_a_write_refused_deep_inside_a_command_is_one_line_naming_the_path(offline, videos, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    directory, _ = videos
    _fail_fsync_of("summary.json", 1, monkeypatch, errno.EROFS)  # e.g. the disk was remounted read-only
    result = invoke("score", "--videos", str(directory), "--out", str(tmp_path / "run"), "-e", "temporal_flicker",
                    "--device", "cpu")
    assert one_error_line(result) == f"error: {tmp_path / 'run' / 'summary.json'}: read-only file system"


# ---------------------------------------------------------------------- section 5: option ranges
@pytest.mark.parametrize(("args", "message"), [
    (("--adam-beta1", "1.5"), "--adam-beta1 must be in [0, 1); got 1.5"),
    (("--adam-beta2", "-0.1"), "--adam-beta2 must be in [0, 1); got -0.1"),
    (("--num-frames", "0"), "--num-frames must be at least 1; got 0"),
    (("--k1", "-1"), "--k1 must be positive; got -1.0"),
    (("--k2", "-5"), "--k2 must be positive; got -5.0"),
    (("--max-grad-norm", "-1"), "--max-grad-norm must be at least 0; got -1.0"),
    (("--lora-dropout", "1"), "--lora-dropout must be in [0, 1); got 1.0"),
    (("--learning-rate", "nan"), "--learning-rate must be a finite number"),
    (("--keep-checkpoints", "0"), "--keep-checkpoints must be at least 1"),
    (("--sdpo-clip-min", "2"), "--sdpo-clip-min 2.0 is above --sdpo-clip-max 1.0"),
    (("--device", "tpu"), "--device must be one of auto, cpu, cuda; got 'tpu'"),
    (("--lr-scheduler", "exponential"), "--lr-scheduler must be one of"),
    (("--timestep-sampling", "normal"), "--timestep-sampling must be one of logit_normal, uniform"),
])
def test_train_option_ranges(offline, no_model_load, pairs_file: Path, tmp_path: Path, args: tuple[str, ...],
                             message: str) -> None:
    result = invoke("train-pgdpo", "--model", "builtin:tiny-wan", "--pairs", str(pairs_file), "--out", "t", *args)
    assert message in one_error_line(result)
    assert not (tmp_path / "t").exists()


def test_config_file_values_are_held_to_the_same_ranges(offline, tmp_path: Path) -> None:
    (tmp_path / "run.yaml").write_text("adam-beta1: 1.5\n")
    result = invoke("train-pgdpo", "--config", "run.yaml", "--model", "m", "--pairs", "p.jsonl", "--out", "t")
    assert "--adam-beta1 must be in [0, 1); got 1.5" in one_error_line(result)


@NO_CUDA
def test_train_on_cuda_without_cuda_is_refused(offline, no_model_load, pairs_file: Path, tmp_path: Path) -> None:
    result = invoke("train-pgdpo", "--model", "builtin:tiny-wan", "--pairs", str(pairs_file), "--out", "t",
                    "--device", "cuda")
    assert "--device cuda was asked for but torch sees no CUDA device" in one_error_line(result)
    assert not (tmp_path / "t" / "train.json").exists()


@pytest.mark.parametrize(("args", "message"), [
    (("--k1", "-1"), "--k1 must be positive; got -1.0"),
    (("--k2", "10,-5"), "--k2 must be positive; got -5.0"),
    (("--lr", "0"), "--lr must be positive"),
    (("--beta", "-100"), "--beta must be positive"),
    (("--steps", "0"), "--steps must be at least 1"),
])
def test_lab_option_ranges(offline, tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = invoke("lab", "displacement", "--out", "lab", *args)
    assert message in one_error_line(result)
    assert not (tmp_path / "lab").exists()


@pytest.mark.parametrize("command", [
    ("score", "--videos", "videos", "--out", "run", "-e", "temporal_flicker"),
    ("generate", "--model", "builtin:tiny-wan", "--prompts", "demo", "--out", "gen"),
    ("demo", "--out", "demo"),
])
@pytest.mark.parametrize(("device", "message"), [
    ("tpu", "--device 'tpu' is not a device"),
    pytest.param("cuda", "--device cuda was asked for but torch sees no CUDA device", marks=NO_CUDA),
])
def test_devices_are_checked_before_anything_runs(offline, no_model_load, tmp_path: Path, command: tuple[str, ...],
                                                 device: str, message: str) -> None:
    if command[0] == "generate":
        pytest.importorskip("diffusers")
    make_videos(tmp_path / "videos", 2)
    assert message in one_error_line(invoke(*command, "--device", device))
    assert not (tmp_path / command[-3 if command[0] == "score" else -1]).exists()


@pytest.mark.parametrize(("command", "message"), [
    (("score", "--videos", "videos", "--out", "run", "--seed", str(2**64)), "--seed must be in [0, "),
    (("score", "--videos", "videos", "--out", "run", "--backend", "opencv"), "--backend must be one of pyav, decord"),
    (("examples", "--per-kind", "0"), "--per-kind must be at least 1"),
    (("leaderboard", "--reported", "pgdpo_paper", "--out", "videos/video_0.mp4/board"), "is a file, not a folder"),
    (("plot-training", "videos", "--out", "videos/video_0.mp4"), "is a file, not a folder"),
])
def test_other_options_checked_where_they_are_parsed(offline, tmp_path: Path, command: tuple[str, ...],
                                                     message: str) -> None:
    make_videos(tmp_path / "videos", 2)
    (tmp_path / "videos" / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 0.5}) + "\n")
    assert message in one_error_line(invoke(*command))


def test_train_frames_follow_the_model_family_before_encoding(offline, pairs_file: Path, tmp_path: Path) -> None:
    pytest.importorskip("diffusers")
    result = invoke("train-pgdpo", "--model", "builtin:tiny-wan", "--pairs", str(pairs_file), "--out", "t",
                    "--num-frames", "2", "--device", "cpu")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]  # after "loading the model"
    assert result.exit_code == 2 and errors == ["error: --num-frames 2 is not valid for wan: use 4k+1 frames, e.g. 1 or 5"]
    assert not (pairs_file.parent / "cache").exists()


def test_weights_pull_into_an_unwritable_cache_is_refused_before_downloading(offline, unwritable: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(unwritable / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE")
    result = invoke("weights", "pull", "hpsv2.1")
    assert f"error: weights cache {unwritable}/hub: cannot write to {unwritable}" in result.stderr
    assert result.exit_code == 2
