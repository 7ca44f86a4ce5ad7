"""Residency groups and chunks: which models are on the device when, and every video still decoded once.

A CUDA device cannot be had in these tests; the engine decides whether groups take turns from the
device it is given, so the schedule is checked by building ``_Engine`` with ``torch.device("cuda")`` while
the evaluators (which only log their calls) and the decoding stay on the CPU.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
import torch

from vbench_pref import video as video_io
from vbench_pref.errors import VbenchPrefError
from vbench_pref.evaluator import Evaluator, ScoreSpec, SharedModels
from vbench_pref.matching import match_videos
from vbench_pref.results import RunDir
from vbench_pref.scoring import (
    ScoreOptions,
    _Engine,
    residency_groups,
    run_scoring,
    swaps_residency,
)
from vbench_pref.video import FrameSpec

LOG: list[tuple[Any, ...]] = []
V = [f"video_{i}.mp4" for i in range(5)]


class Logged(Evaluator):
    """Logs activate/score/deactivate/chunk_done to LOG; scores the mean pixel value."""

    version = "1"
    scores = (ScoreSpec("value", True),)
    frames = FrameSpec(sampling="count", count=2, resize="short_side_crop", size=16)
    reference = "test"
    key: str | None = None
    fail_on: tuple[str, int] | None = None  # (what, at its n-th call): raise there

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.calls: dict[str, int] = {}

    def _log(self, *entry: Any) -> None:
        LOG.append(entry)
        self.calls[entry[0]] = self.calls.get(entry[0], 0) + 1
        if self.fail_on == (entry[0], self.calls[entry[0]]):
            raise (KeyboardInterrupt if entry[0] == "score" else RuntimeError)(f"{self.name} {entry[0]} failed")

    def residency_key(self) -> str:
        return self.key or self.name

    def activate(self) -> None:
        self._log("activate", self.name)

    def deactivate(self) -> None:
        self._log("deactivate", self.name)

    def chunk_done(self) -> None:
        self._log("chunk_done", self.name)

    def score(self, batch):
        self._log("score", self.name, tuple(s.video for s in batch))
        return {"value": np.array([s.frames.float().mean().item() for s in batch])}


class EvalA(Logged):
    name = "res_a_test"


class EvalB(Logged):
    name = "res_b_test"
    frames = FrameSpec()  # another view than A's: views are dropped group by group


class Backbone:
    built = 0

    def __init__(self) -> None:
        Backbone.built += 1


class SharedOne(Logged):
    name = "res_shared_one_test"
    key = "backbone"
    model_ids: ClassVar[list[int]] = []

    def load(self, device="cpu", dtype=torch.float32, shared: SharedModels | None = None) -> None:
        super().load(device, dtype, shared)
        assert shared is not None, "run_scoring passes the run's SharedModels"
        self.backbone = shared.get_or_create("backbone", Backbone)
        SharedOne.model_ids.append(id(self.backbone))


class SharedTwo(SharedOne):
    name = "res_shared_two_test"


@pytest.fixture(autouse=True)
def clean_log() -> None:
    LOG.clear()
    SharedOne.model_ids = []
    Backbone.built = 0


def make_engine(directory: Path, run: Path, evaluators: list[Evaluator], device: str, **kwargs: Any) -> _Engine:
    opts = ScoreOptions(videos=directory, out=run, prompts=directory / "prompts.txt", device="cpu", **kwargs)
    matching = match_videos(directory, directory / "prompts.txt", False)
    run.mkdir(parents=True)
    return _Engine(opts, evaluators, matching.tasks, RunDir(run), [], lambda: LOG.append(("video",)), torch.device(device))


def chunk(names: list[str], videos: list[str], batch: int, swap: bool) -> list[tuple[Any, ...]]:
    """The expected log of one chunk when every name is its own group."""
    entries: list[tuple[Any, ...]] = []
    for name in names:
        entries += [("activate", name)] if swap else []
        entries += [("score", name, tuple(videos[i : i + batch])) for i in range(0, len(videos), batch)]
        entries += [("deactivate", name)] if swap else []
    return entries + [("chunk_done", name) for name in names] + [("video",)] * len(videos)


def test_swaps_only_on_cuda_with_several_groups() -> None:
    assert swaps_residency(torch.device("cuda"), 2) and swaps_residency("cuda:1", 3)
    assert not swaps_residency("cuda", 1) and not swaps_residency("cpu", 2) and not swaps_residency("mps", 2)
    a, b, one, two = EvalA(), EvalB(), SharedOne(), SharedTwo()
    assert residency_groups([one, a, two, b]) == [[one, two], [a], [b]]


def test_two_groups_on_cuda_take_turns_chunk_by_chunk(videos, tmp_path) -> None:
    directory, _ = videos
    engine = make_engine(directory, tmp_path / "run", [EvalA(), EvalB()], "cuda", batch_size=2, chunk_videos=3)
    engine.run()
    names = [EvalA.name, EvalB.name]
    assert LOG == chunk(names, V[:3], 2, swap=True) + chunk(names, V[3:], 2, swap=True)
    assert engine.resident == []
    journal = engine.run_dir.read_records()
    assert len(journal) == 10 and all(r.error is None for r in journal)


@pytest.mark.parametrize("device, selection", [("cpu", (EvalA, EvalB)), ("cuda", (SharedOne, SharedTwo))])
def test_one_group_or_cpu_activates_once_and_never_deactivates(videos, tmp_path, device, selection) -> None:
    directory, _ = videos
    engine = make_engine(directory, tmp_path / "run", [cls() for cls in selection], device, batch_size=2, chunk_videos=3)
    engine.run()
    names = [cls.name for cls in selection]
    first, second = chunk(names, V[:3], 2, swap=False), chunk(names, V[3:], 2, swap=False)
    assert LOG == [("activate", n) for n in names] + first + second
    assert not any(entry[0] == "deactivate" for entry in LOG)


def test_keyboard_interrupt_in_a_group_deactivates_it_and_keeps_earlier_batches(videos, tmp_path) -> None:
    directory, _ = videos
    b = EvalB()
    b.fail_on = ("score", 2)
    engine = make_engine(directory, tmp_path / "run", [EvalA(), b], "cuda", batch_size=2, chunk_videos=5)
    with pytest.raises(KeyboardInterrupt):
        engine.run()
    assert LOG[-2:] == [("score", EvalB.name, tuple(V[2:4])), ("deactivate", EvalB.name)]
    assert engine.resident == []
    done = {(r.video, r.evaluator) for r in engine.run_dir.read_records()}
    assert done == {(v, EvalA.name) for v in V} | {(v, EvalB.name) for v in V[:2]}


def test_a_failing_deactivate_does_not_mask_the_interrupt(videos, tmp_path) -> None:
    directory, _ = videos
    a = EvalA()
    a.fail_on = ("deactivate", 1)
    original = EvalA.score

    def interrupt(self, batch):
        raise KeyboardInterrupt

    engine = make_engine(directory, tmp_path / "run", [a, EvalB()], "cuda", chunk_videos=5)
    EvalA.score = interrupt
    try:
        with pytest.raises(KeyboardInterrupt):
            engine.run()
    finally:
        EvalA.score = original
    assert LOG == [("activate", EvalA.name), ("deactivate", EvalA.name)]


def test_a_failing_activate_is_undone_and_propagates(videos, tmp_path) -> None:
    directory, _ = videos
    b = EvalB()
    b.fail_on = ("activate", 2)  # "out of memory" in the second chunk
    engine = make_engine(directory, tmp_path / "run", [EvalA(), b], "cuda", chunk_videos=3)
    with pytest.raises(RuntimeError, match="activate failed"):
        engine.run()
    assert LOG[-4:] == [("score", EvalA.name, tuple(V[3:])), ("deactivate", EvalA.name),
                        ("activate", EvalB.name), ("deactivate", EvalB.name)]
    assert engine.resident == []


class WaitsForPrefetch(EvalA):
    """Its first batch waits until the next chunk starts decoding (which it does only if submitted ahead)."""

    saw_prefetch: bool | None = None

    def score(self, batch):
        if WaitsForPrefetch.saw_prefetch is None:
            deadline = time.monotonic() + 10
            while ("decode", V[2]) not in LOG and time.monotonic() < deadline:
                time.sleep(0.01)
            WaitsForPrefetch.saw_prefetch = ("decode", V[2]) in LOG
            time.sleep(0.5)  # time for chunk 2 to decode too, were it (wrongly) submitted already
        return super().score(batch)


def test_the_next_chunk_decodes_during_scoring_but_not_the_one_after(videos, tmp_path) -> None:
    directory, _ = videos
    WaitsForPrefetch.saw_prefetch = None
    engine = make_engine(directory, tmp_path / "run", [WaitsForPrefetch(), EvalB()], "cuda", chunk_videos=2, workers=1)
    prepare = engine._prepare

    def logged(task):
        LOG.append(("decode", task.video))
        return prepare(task)

    engine._prepare = logged  # type: ignore[method-assign]
    engine.run()
    assert WaitsForPrefetch.saw_prefetch, "chunk 1 was not decoding while chunk 0 was scored"
    assert sorted(e[1] for e in LOG if e[0] == "decode") == V  # once each
    decoded_at = {e[1]: i for i, e in enumerate(LOG) if e[0] == "decode"}
    chunk_done_at = [i for i, e in enumerate(LOG) if e == ("chunk_done", EvalB.name)]
    # chunk 2 is submitted only once chunk 0 is done: at most two chunks of frames are alive
    assert decoded_at[V[4]] > chunk_done_at[0]


def test_shared_key_evaluators_are_scored_back_to_back_with_one_model(videos, tmp_path, register) -> None:
    directory, _ = videos
    register(SharedOne, SharedTwo, EvalA)
    opts = ScoreOptions(videos=directory, out=tmp_path / "run", prompts=directory / "prompts.txt", device="cpu",
                        evaluators=[SharedOne.name, EvalA.name, SharedTwo.name], batch_size=2, chunk_videos=3)
    run_scoring(opts)
    assert len(SharedOne.model_ids) == 2 and len(set(SharedOne.model_ids)) == 1 and Backbone.built == 1
    scored = [e[1] for e in LOG if e[0] == "score"]
    first = [SharedOne.name] * 2 + [SharedTwo.name] * 2 + [EvalA.name] * 2  # 3 videos: batches of 2 and 1
    assert scored == first + [SharedOne.name, SharedTwo.name, EvalA.name]  # one's batches, two's, then A
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["residency_groups"] == [[SharedOne.name, SharedTwo.name], [EvalA.name]]
    assert run["chunk_videos"] == 3


def test_chunks_of_two_decode_each_video_once_and_resume_with_another_chunk_size(videos, tmp_path, register) -> None:
    directory, _ = videos
    register(EvalA, EvalB)
    progress: list[int] = []

    def opts(chunk_videos: int, *names: str) -> ScoreOptions:
        return ScoreOptions(videos=directory, out=tmp_path / "run", prompts=directory / "prompts.txt", device="cpu",
                            evaluators=list(names), batch_size=4, chunk_videos=chunk_videos)

    video_io.DECODES.clear()
    run_scoring(opts(2, EvalA.name, "temporal_flicker"), on_video=lambda: progress.append(len(LOG)))
    assert sorted(video_io.DECODES.values()) == [1] * 5
    assert [e for e in LOG if e[0] == "chunk_done"] == [("chunk_done", EvalA.name)] * 3
    assert [len(e[2]) for e in LOG if e[0] == "score"] == [2, 2, 1]  # batches never span chunks
    assert len(progress) == 5
    scores = pd.read_csv(tmp_path / "run" / "scores.csv")
    # model_random_weights is unknown (empty) for videos made elsewhere; every other cell is filled
    assert scores.video.tolist() == V and scores.drop(columns="model_random_weights").notna().all().all()
    # chunk_videos cannot change a score: another value resumes the same run
    video_io.DECODES.clear()
    result = run_scoring(opts(3, EvalA.name, "temporal_flicker"))
    assert result.resumed and sum(video_io.DECODES.values()) == 0
    assert json.loads((tmp_path / "run" / "run.json").read_text())["chunk_videos"] == 3


def test_chunk_videos_below_one_is_refused(videos, tmp_path) -> None:
    directory, _ = videos
    with pytest.raises(VbenchPrefError, match="--chunk-videos must be at least 1"):
        run_scoring(ScoreOptions(videos=directory, out=tmp_path / "run", device="cpu", chunk_videos=0))
    assert not (tmp_path / "run").exists()
