"""Frame memory in the engine: enlarged or float views reach batch-reading evaluators as FrameViews, and a
memory budget sizes the chunks. (Peak RSS itself is measured in benchmarks/frame_memory.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from vbench_pref.errors import VbenchPrefError
from vbench_pref.evaluator import Evaluator, ScoreSpec
from vbench_pref.scoring import ScoreOptions, _Engine, parse_size, run_scoring
from vbench_pref.synthetic import smooth_motion
from vbench_pref.video import FrameSpec, FrameView, write_video

SEEN: dict[str, list[str]] = {}
ENLARGE = FrameSpec(sampling="all", resize="short_side_crop", size=96, antialias=False, pixels="float_0_255")
SHRINK = FrameSpec(sampling="all", resize="short_side_crop", size=16)


class Probe(Evaluator):
    """Records what type of frames it is given; scores the mean pixel, reading frames 3 at a time."""

    version = "1"
    scores = (ScoreSpec("value", True),)
    reference = "test"

    def score(self, batch):
        values = []
        for sample in batch:
            SEEN.setdefault(self.name, []).append(type(sample.frames).__name__)
            frames = sample.frames
            parts = [frames.frames(i, i + 3) if isinstance(frames, FrameView) else frames[i : i + 3]
                     for i in range(0, len(frames), 3)]
            values.append(torch.cat(parts).double().mean().item())
        return {"value": np.array(values)}


class LazyEnlarged(Probe):
    name = "lazy_enlarged_test"
    frames = ENLARGE
    lazy_frames = True


class EagerEnlarged(Probe):
    name = "eager_enlarged_test"
    frames = ENLARGE


class LazyShrunk(Probe):
    name = "lazy_shrunk_test"
    frames = SHRINK
    lazy_frames = True


def make_videos(folder: Path, n: int, frames: int = 6, size: int = 48) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        write_video(folder / f"video_{i}.mp4", smooth_motion(frames, size, size, seed=i), fps=8, lossless=True)


def score(videos: Path, out: Path, names: list[str], **extra: Any) -> pd.DataFrame:
    opts = ScoreOptions(videos=videos, out=out, evaluators=names, device="cpu", batch_size=2, **extra)
    assert run_scoring(opts).exit_code == 0
    return pd.read_csv(out / "scores.csv").set_index("video")


def test_views_larger_than_their_frames_reach_lazy_evaluators_as_frame_views(tmp_path, register) -> None:
    register(LazyEnlarged, LazyShrunk)
    make_videos(tmp_path / "videos", 2, frames=7, size=24)
    SEEN.clear()
    table = score(tmp_path / "videos", tmp_path / "run", ["lazy_enlarged_test", "lazy_shrunk_test"])
    assert set(SEEN["lazy_enlarged_test"]) == {"FrameView"}  # 24 px -> 96 px float: 64x the bytes
    assert set(SEEN["lazy_shrunk_test"]) == {"Tensor"}  # smaller than its frames: kept whole
    assert table["lazy_enlarged_test"].notna().all()


def test_a_view_is_whole_when_one_of_its_evaluators_wants_a_tensor(tmp_path, register) -> None:
    register(LazyEnlarged, EagerEnlarged)
    make_videos(tmp_path / "videos", 2, frames=7, size=24)
    SEEN.clear()
    table = score(tmp_path / "videos", tmp_path / "run", ["lazy_enlarged_test", "eager_enlarged_test"])
    assert set(SEEN["lazy_enlarged_test"]) == set(SEEN["eager_enlarged_test"]) == {"Tensor"}
    assert np.allclose(table["lazy_enlarged_test"], table["eager_enlarged_test"], rtol=0, atol=1e-12)


def test_memory_budget_sizes_chunks_from_the_videos_seen_and_keeps_the_scores(tmp_path, register, monkeypatch) -> None:
    register(LazyEnlarged, LazyShrunk)
    make_videos(tmp_path / "videos", 7, frames=5, size=24)
    names = ["lazy_enlarged_test", "lazy_shrunk_test"]
    free = score(tmp_path / "videos", tmp_path / "free", names)
    # one prepared video holds 5 frames of 24x24x3 (the FrameView's source) + the 16 px view
    per_video = 5 * 24 * 24 * 3 + 5 * 16 * 16 * 3
    sizes: list[list[int]] = []
    original = _Engine.run

    def run(self) -> None:
        original(self)
        sizes.append(self.chunk_sizes)

    monkeypatch.setattr(_Engine, "run", run)
    budgeted = score(tmp_path / "videos", tmp_path / "budget", names, memory_budget=str(4 * per_video + 10))
    assert sizes == [[1, 2, 2, 2]]  # one video first tells the size; then half the budget's worth per chunk
    pd.testing.assert_frame_equal(free, budgeted)
    run_json = json.loads((tmp_path / "budget" / "run.json").read_text())
    assert run_json["memory_budget"] == 4 * per_video + 10


def test_memory_budget_sizes_parse_and_bad_ones_are_one_line_errors(tmp_path) -> None:
    assert parse_size("4GB") == 4 * 10**9
    assert parse_size("2GiB") == 2 * 2**30
    assert parse_size("1.5 mb") == 1_500_000
    assert parse_size("123") == 123
    assert parse_size(77) == 77
    for bad in ("lots", "-1GB", "0", "3 parsecs", "IB"):
        with pytest.raises(VbenchPrefError, match="memory-budget") as info:
            parse_size(bad)
        assert "\n" not in str(info.value)
    make_videos(tmp_path / "videos", 1)
    opts = ScoreOptions(videos=tmp_path / "videos", out=tmp_path / "run", evaluators=["temporal_flicker"],
                        device="cpu", memory_budget="much")
    with pytest.raises(VbenchPrefError, match="memory-budget"):
        run_scoring(opts)
    assert not (tmp_path / "run").exists()
