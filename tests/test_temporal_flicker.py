"""temporal_flicker against VBench's formula computed independently on the same frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vbench_pref.errors import ScoreError
from vbench_pref.evaluators.temporal_flicker import TemporalFlicker, vbench_flicker_score
from vbench_pref.evaluator import VideoSample


def vbench_cal_score(frames: np.ndarray) -> float:
    """Vchitect/VBench temporal_flickering.cal_score on decoded frames: float32 absdiff, means, float32."""
    pairs = [np.mean(np.abs(frames[i].astype(np.float32) - frames[i + 1].astype(np.float32))) for i in range(len(frames) - 1)]
    return (255.0 - np.mean(np.array(pairs)).item()) / 255.0


@pytest.mark.parametrize("shape", [(2, 8, 8, 3), (17, 33, 47, 3), (49, 120, 208, 3)])
def test_parity_with_vbench_formula(shape: tuple[int, ...]) -> None:
    frames = np.random.default_rng(sum(shape)).integers(0, 256, size=shape, dtype=np.uint8)
    assert vbench_flicker_score(torch.from_numpy(frames)) == pytest.approx(vbench_cal_score(frames), abs=1e-6)


def test_known_values() -> None:
    still = torch.full((5, 4, 4, 3), 77, dtype=torch.uint8)
    assert vbench_flicker_score(still) == 1.0
    alternating = torch.zeros((4, 2, 2, 3), dtype=torch.uint8)
    alternating[1::2] = 255
    assert vbench_flicker_score(alternating) == 0.0
    step = torch.zeros((2, 2, 2, 3), dtype=torch.uint8)
    step[1] = 51
    assert vbench_flicker_score(step) == pytest.approx((255 - 51) / 255)


def test_one_frame_is_a_per_video_error() -> None:
    sample = VideoSample("one.mp4", torch.zeros((1, 4, 4, 3), dtype=torch.uint8), np.zeros(1), 8.0)
    with pytest.raises(ScoreError, match="at least 2 frames"):
        TemporalFlicker().score([sample])
