"""Shared fixtures: synthetic video folders and small evaluators registered for one test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest

from vbench_pref import registry
from vbench_pref.errors import ScoreError
from vbench_pref.evaluator import Evaluator, ScoreSpec
from vbench_pref.synthetic import flickering, smooth_motion
from vbench_pref.video import FrameSpec, write_video


class Brightness(Evaluator):
    """Mean brightness of 4 frames at 32 px: a second frame view next to the native one."""

    name = "brightness_test"
    version = "1"
    scores = (ScoreSpec("brightness", True, (0.0, 1.0)),)
    frames = FrameSpec(sampling="count", count=4, resize="short_side_crop", size=32)
    reference = "test"
    batch_sizes: list[int] = []

    def score(self, batch):
        Brightness.batch_sizes.append(len(batch))
        return {"brightness": np.array([s.frames.float().mean().item() / 255.0 for s in batch])}


class PromptLength(Evaluator):
    """Prompt length, fails on videos whose prompt contains 'FAIL', NaN when it contains 'NAN'."""

    name = "prompt_length_test"
    version = "1"
    scores = (ScoreSpec("chars", True), ScoreSpec("words", True))
    frames = FrameSpec(sampling="count", count=2, resize="short_side_crop", size=32)
    needs_prompt = True
    reference = "test"

    def score(self, batch):
        for sample in batch:
            if "FAIL" in sample.prompt:
                raise ScoreError(f"cannot score {sample.video}")
        chars = np.array([np.nan if "NAN" in s.prompt else len(s.prompt) for s in batch], dtype=float)
        return {"chars": chars, "words": np.array([len(s.prompt.split()) for s in batch], dtype=float)}


class NeedsWeights(Evaluator):
    name = "needs_weights_test"
    version = "1"
    scores = (ScoreSpec("value", True),)
    frames = FrameSpec()
    reference = "test"

    def missing_weights(self):
        return "weights file model.pt is missing; run `vbench-pref weights pull needs_weights_test`"

    def load(self, device="cpu", dtype=None, shared=None):
        from vbench_pref.errors import WeightsMissingError

        raise WeightsMissingError(self.missing_weights())

    def score(self, batch):  # pragma: no cover - never loads
        raise AssertionError


@pytest.fixture
def own_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The project's cache (digest memos, licence acceptances) and the hub cache inside the test's folder."""
    for variable, folder in (("VBENCH_PREF_CACHE", "cache"), ("HF_HUB_CACHE", "hf")):
        monkeypatch.setenv(variable, str(tmp_path / folder))


@pytest.fixture
def register() -> Iterator[Callable[..., None]]:
    added: list[str] = []

    def _register(*classes: type[Evaluator]) -> None:
        for cls in classes:
            registry.register(cls)
            added.append(cls.name)

    yield _register
    for name in added:
        registry._registered.pop(name, None)


@pytest.fixture
def test_evaluators() -> dict[str, type[Evaluator]]:
    Brightness.batch_sizes = []
    return {"brightness": Brightness, "prompt_length": PromptLength, "needs_weights": NeedsWeights}


def make_videos(directory: Path, n: int, frames: int = 6, size: int = 48, seed: int = 0) -> list[np.ndarray]:
    """``n`` lossless videos video_<i>.mp4 (smooth and flickering in turn) and prompts.txt; returns the frames."""
    directory.mkdir(parents=True, exist_ok=True)
    arrays = []
    for i in range(n):
        maker = smooth_motion if i % 2 == 0 else flickering
        array = maker(frames, size, size, seed=seed + i) if maker is smooth_motion else maker(frames, size, size, seed=seed + i, amplitude=40)
        write_video(directory / f"video_{i}.mp4", array, fps=8, lossless=True)
        arrays.append(array)
    (directory / "prompts.txt").write_text("".join(f"prompt number {i}\n" for i in range(n)), encoding="utf-8")
    return arrays


@pytest.fixture
def videos(tmp_path: Path) -> tuple[Path, list[np.ndarray]]:
    directory = tmp_path / "videos"
    return directory, make_videos(directory, 5)


@pytest.fixture(scope="module")
def tiny_model_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Built-in models are built once per test module, in a temporary cache, offline."""
    cache = tmp_path_factory.mktemp("cache")
    saved = {k: os.environ.get(k) for k in ("VBENCH_PREF_CACHE", "HF_HUB_CACHE", "HF_HUB_OFFLINE")}
    os.environ.update(VBENCH_PREF_CACHE=str(cache), HF_HUB_CACHE=str(cache / "hf"), HF_HUB_OFFLINE="1")
    yield cache
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def cli_env(folder: Path) -> dict[str, str]:
    """The environment of a CLI subprocess: its own caches, offline, one thread as torchrun sets it (so one and
    two processes compute alike), wide lines."""
    return {
        **os.environ,
        "VBENCH_PREF_CACHE": str(folder / "cache"),
        "HF_HUB_CACHE": str(folder / "hf"),
        "HF_HUB_OFFLINE": "1",
        "TORCH_HOME": str(folder / "torch"),
        "OMP_NUM_THREADS": "1",
        "COLUMNS": "200",
    }


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_cli(folder, *args, launcher=())``: ``python [launcher] -m vbench_pref ARGS`` in ``folder``."""

    def run(folder: Path, *args: str, launcher: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, *launcher, "-m", "vbench_pref", *args]
        return subprocess.run(command, cwd=folder, env=cli_env(folder), capture_output=True, text=True, timeout=600)

    return run


@pytest.fixture(scope="session")
def cli_environment() -> Callable[[Path], dict[str, str]]:
    """``cli_env`` for tests that start the CLI themselves (several launches at once)."""
    return cli_env
