"""Qwen-VL frame rules (frame count, which frames, frame size) against an independent reading of the reference.

The expected values come from re-deriving VideoAlign's ``vision_process.py`` and qwen-vl-utils' rules
step by step here (plain integer arithmetic, torchvision's own ``resize`` for the pixels), on constant and
variable frame rate videos, very short and very long ones, odd sizes and extreme aspect ratios.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from torchvision.transforms import InterpolationMode

from vbench_pref import synthetic
from vbench_pref.errors import VbenchPrefError
from vbench_pref.qwen_vision import QwenVideoRule, smart_resize
from vbench_pref.video import FrameSpec, decode_video, write_video

VIDEOALIGN = QwenVideoRule(max_pixels=448 * 448, nframes_rounding="round")
QWEN_UTILS = QwenVideoRule(nframes_rounding="floor", total_pixels=128000 * 28 * 28 * 0.9)


def reference_nframes(n: int, video_fps: float, rounding: str, fps: float = 2.0,
                      min_frames: int = 4, max_frames: int = 768) -> int:
    """The count rule, re-derived: even counts between the (even) bounds, capped by the video."""
    lo = 2 * math.ceil(min_frames / 2)
    hi = 2 * math.floor(min(max_frames, n) / 2)
    wanted = n / video_fps * fps
    if rounding == "round":
        count = 2 * round(min(max(wanted, lo), hi) / 2)
        return min(count, n)
    return 2 * math.floor(min(min(max(wanted, lo), hi), n) / 2)


def reference_size(h: int, w: int, max_pixels: float, min_pixels: float = 128 * 28 * 28) -> tuple[int, int]:
    hb, wb = max(28, 28 * round(h / 28)), max(28, 28 * round(w / 28))
    if hb * wb > max_pixels:
        beta = math.sqrt(h * w / max_pixels)
        return 28 * math.floor(h / beta / 28), 28 * math.floor(w / beta / 28)
    if hb * wb < min_pixels:
        beta = math.sqrt(min_pixels / (h * w))
        return 28 * math.ceil(h * beta / 28), 28 * math.ceil(w * beta / 28)
    return hb, wb


@pytest.mark.parametrize("n,video_fps", [
    (2, 8.0), (3, 30.0), (5, 24.0), (8, 16.0), (17, 8.0), (49, 8.0), (81, 16.0), (121, 24.0),
    (33, 29.97), (300, 30000 / 1001), (4000, 25.0), (20000, 30.0), (10, 1.0), (7, 0.5),
])
@pytest.mark.parametrize("rule", [VIDEOALIGN, QWEN_UTILS], ids=["videoalign", "qwen-vl-utils"])
def test_frame_count_and_indices(rule: QwenVideoRule, n: int, video_fps: float) -> None:
    expected = reference_nframes(n, video_fps, rule.nframes_rounding)
    assert rule.nframes(n, video_fps) == expected
    assert expected % 2 == 0 or expected == n
    got = rule.frame_indices(n, video_fps)
    assert list(got) == torch.linspace(0, n - 1, expected).round().long().tolist()
    assert got[0] == 0 and got[-1] == n - 1 and np.all(np.diff(got) >= 0)


def test_one_frame_video_is_refused_in_one_line() -> None:
    with pytest.raises(VbenchPrefError, match="1 frame"):
        VIDEOALIGN.nframes(1, 8.0)


@pytest.mark.parametrize("hw", [
    (480, 832), (832, 480), (720, 1280), (64, 64), (33, 45), (1080, 1920), (17, 3000), (3000, 17),
    (449, 449), (200, 360), (28, 5600),
])
def test_frame_size(hw: tuple[int, int]) -> None:
    h, w = hw
    assert VIDEOALIGN.frame_size(h, w, 16) == reference_size(h, w, 448 * 448)
    for count in (4, 300, 768):
        cap = max(min(768 * 28 * 28, 128000 * 28 * 28 * 0.9 / count * 2), int(128 * 28 * 28 * 1.05))
        assert QWEN_UTILS.frame_size(h, w, count) == reference_size(h, w, cap)


def test_extreme_aspect_ratio_is_refused_in_one_line() -> None:
    with pytest.raises(VbenchPrefError, match="aspect ratio") as info:
        smart_resize(10, 2500, 28, 128 * 28 * 28, 448 * 448)
    assert "\n" not in str(info.value)


def _write_vfr(path: Path, frames: np.ndarray, pts_ms: list[int]) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264rgb", rate=25)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "rgb24"
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.time_base = Fraction(1, 1000)
        stream.options = {"qp": "0"}
        for array, p in zip(frames, pts_ms):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
            frame.pts, frame.time_base = p, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _reference_view(path: Path, rule: QwenVideoRule, n: int, video_fps: float, source: np.ndarray) -> torch.Tensor:
    """The reference's steps on the decoded frames: index by the count rule, torchvision bicubic resize."""
    count = reference_nframes(n, video_fps, rule.nframes_rounding)
    idx = torch.linspace(0, n - 1, count).round().long()
    video = torch.from_numpy(source).permute(0, 3, 1, 2)[idx]  # T x C x H x W, channels-last strides
    h, w = video.shape[-2:]
    rh, rw = reference_size(h, w, rule.frame_max_pixels(count))
    return TF.resize(video, [rh, rw], interpolation=InterpolationMode.BICUBIC, antialias=True).permute(0, 2, 3, 1)


@pytest.mark.parametrize("kind", ["vfr", "short", "long", "odd", "wide"])
def test_views_equal_the_reference_steps(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.mp4"
    if kind == "vfr":
        pts = [0, 40, 90, 100, 250, 260, 400, 410, 420, 700, 701, 1000, 1250, 1300, 1900, 2100]
        source = synthetic.smooth_motion(len(pts), 40, 56, 0, velocity=(1.0, 2.0))
        _write_vfr(path, source, pts)
    else:
        t, h, w, fps = {"short": (5, 40, 56, 8), "long": (400, 24, 40, 16), "odd": (9, 37, 61, 24),
                        "wide": (6, 20, 500, 8)}[kind]
        source = synthetic.smooth_motion(t, h, w, 1, velocity=(1.0, 2.0))
        write_video(path, source, fps=fps, lossless=True)
    spec = FrameSpec(sampling="qwen", resize="qwen", qwen=VIDEOALIGN)
    video = decode_video(path, [spec, FrameSpec()])
    decoded = video.view(FrameSpec())[0].numpy()
    expected = _reference_view(path, VIDEOALIGN, video.n_frames, video.fps, decoded)
    got, _ = video.view(spec)
    assert got.dtype == torch.uint8
    assert got.shape == expected.shape
    assert torch.equal(got, expected)
    if kind == "vfr":  # counted by the container's average rate, as decord/torchvision report it
        assert video.fps == pytest.approx(len(pts) / 2.1, rel=0.2)


def test_a_video_the_rule_refuses_fails_only_that_evaluator(tmp_path: Path, register) -> None:
    """One frame, or an aspect ratio above the model's limit: a per-video error for the Qwen-rule evaluator
    alone; the other evaluator in the run scores every video."""
    import json

    import pandas as pd

    from vbench_pref.evaluator import Evaluator, ScoreSpec
    from vbench_pref.scoring import ScoreOptions, run_scoring

    class QwenFrames(Evaluator):
        name = "qwen_frames_test"
        version = "1"
        scores = (ScoreSpec("frames", True),)
        frames = FrameSpec(sampling="qwen", resize="qwen", qwen=QwenVideoRule(min_pixels=28 * 28, max_pixels=56 * 56))
        reference = "test"

        def score(self, batch):
            return {"frames": np.array([len(s.frames) for s in batch], dtype=float)}

    class Mean(Evaluator):
        name = "mean_test"
        version = "1"
        scores = (ScoreSpec("mean", True),)
        frames = FrameSpec()
        reference = "test"

        def score(self, batch):
            return {"mean": np.array([s.frames.float().mean().item() for s in batch])}

    register(QwenFrames, Mean)
    folder = tmp_path / "videos"
    folder.mkdir()
    write_video(folder / "a_ok.mp4", np.full((9, 32, 32, 3), 90, np.uint8), fps=8, lossless=True)
    write_video(folder / "b_one_frame.mp4", np.full((1, 32, 32, 3), 90, np.uint8), fps=8, lossless=True)
    write_video(folder / "c_wide.mp4", np.full((4, 2, 600, 3), 90, np.uint8), fps=8, lossless=True)
    (folder / "prompts.txt").write_text("x\nx\nx\n")
    run_scoring(ScoreOptions(videos=folder, out=tmp_path / "run", prompts=None,
                             evaluators=["qwen_frames_test", "mean_test"], device="cpu"))
    scores = pd.read_csv(tmp_path / "run" / "scores.csv").set_index("video")
    assert scores["mean_test"].notna().all()
    assert scores.loc["a_ok.mp4", "qwen_frames_test"] == 4  # 9 frames at 8 fps -> 2.25 -> min 4
    assert scores[["qwen_frames_test"]].isna().sum().item() == 2
    errors = pd.read_csv(tmp_path / "run" / "errors.csv").set_index("video")
    assert set(errors.index) == {"b_one_frame.mp4", "c_wide.mp4"}
    assert (errors.evaluator == "qwen_frames_test").all()
    assert "1 frame" in errors.loc["b_one_frame.mp4", "error"]
    assert "aspect ratio" in errors.loc["c_wide.mp4", "error"]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())
