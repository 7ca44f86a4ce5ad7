"""A cheap, deterministic set-level evaluator for the engine's tests (not a metric: never registered for users).

Per video: the mean and standard deviation of each colour channel over 4 frames at 32 px, and the mean
absolute change between consecutive frames per channel (motion): 9 numbers. ``per_frame=true`` gives one
row per frame instead (the mean and std of each channel and the change to the next frame, 0 for the last),
as a per-frame network (FID) would.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from vbench_pref.errors import ScoreError
from vbench_pref.evaluator import DistanceSpec, Option, SetEvaluator, VideoSample
from vbench_pref.video import FrameSpec


def colour_motion_features(frames: np.ndarray, per_frame: bool) -> np.ndarray:
    """uint8 T x H x W x 3 → (9,) per video, or (T, 9) per frame."""
    pixels = frames.astype(np.float64) / 255.0
    mean = pixels.mean(axis=(1, 2))
    std = pixels.std(axis=(1, 2))
    change = np.abs(np.diff(pixels, axis=0)).mean(axis=(1, 2))
    if per_frame:
        return np.concatenate([mean, std, np.vstack([change, np.zeros((1, 3))])], axis=1)
    return np.concatenate([mean.mean(axis=0), std.mean(axis=0), change.mean(axis=0)])


class ColourStats(SetEvaluator):
    name = "colour_stats_test"
    version = "1"
    description = "test only: colour and motion statistics as features"
    distances = (DistanceSpec("fd", "frechet"), DistanceSpec("kid", "kid"))
    feature_dim = 9
    sample_size = 2048
    sample_unit = "videos"
    frames = FrameSpec(sampling="count", count=4, resize="short_side_crop", size=32)
    reference = "test"
    options = (Option("per_frame", False, "one feature row per frame"),)
    calls: list[int] = []  # batch sizes seen, in order
    interrupt_after: int | None = None  # raise KeyboardInterrupt once this many batches are done

    def features(self, batch: Sequence[VideoSample]) -> list[np.ndarray]:
        if ColourStats.interrupt_after is not None and len(ColourStats.calls) >= ColourStats.interrupt_after:
            raise KeyboardInterrupt
        ColourStats.calls.append(len(batch))
        out = []
        for sample in batch:
            if "broken" in sample.video:
                raise ScoreError(f"cannot featurise {sample.video}")
            out.append(colour_motion_features(sample.frames.numpy(), self.config["per_frame"]))
        return out
