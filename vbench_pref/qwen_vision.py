"""How Qwen-VL family reward models see a video: how many frames, which ones, at what size.

Qwen2-VL and Qwen2.5-VL read a video as frames whose sides are multiples of the patch grid (patch 14 x
merge 2 = 28 px), two frames per temporal patch, so the frame count is even. The rules below are the
ones in ``qwen_vl_utils.vision_process`` (and the copy of it that VideoAlign ships); each reward model
pins its own constants, so a ``QwenVideoRule`` carries them instead of this module hard-coding one set:

- **Frame count** (``smart_nframes``): ``n / video_fps * fps`` frames, clamped to
  ``[ceil_even(min_frames), floor_even(min(max_frames, n))]``, then made even -- VideoAlign rounds to
  the nearest even count and caps it at ``n`` afterwards (``nframes_rounding="round"``); qwen-vl-utils
  0.0.9+ caps at ``n`` first and rounds down (``"floor"``). ``video_fps`` is the container's average
  frame rate (what decord's ``get_avg_fps`` and torchvision's ``read_video`` report), not the timestamps:
  for a variable-frame-rate video the reference counts frames by the average rate, and so do we.
- **Which frames**: ``torch.linspace(0, n - 1, count).round()`` in float32, as the reference computes
  them (float32 and round-half-to-even decide which frame a tie lands on).
- **Frame size** (``smart_resize``): both sides rounded to the nearest multiple of ``factor``; if that
  exceeds ``max_pixels`` (or falls under ``min_pixels``) the frame is scaled by the square root of the
  ratio and the sides floored (or ceiled) to multiples of ``factor``. When ``total_pixels`` is set, the
  per-frame cap is ``max(min(max_pixels, total_pixels / count * 2), int(min_pixels * 1.05))``, the
  token budget of a whole video spread over its frames. Aspect ratios above ``max_ratio`` are refused.
- **Resampling**: torchvision's tensor ``resize`` (bicubic, antialias) on uint8 frames, which rounds and
  clamps back to uint8 -- ``FrameSpec(resampler="torch", pixels="uint8")`` does exactly that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from vbench_pref.errors import VbenchPrefError

__all__ = ["QwenVideoRule", "smart_resize", "smart_nframes", "qwen_frame_indices"]


def _round_by(value: float, factor: int) -> int:
    return round(value / factor) * factor  # Python's round: halves to even, as the reference


def _ceil_by(value: float, factor: int) -> int:
    return math.ceil(value / factor) * factor


def _floor_by(value: float, factor: int) -> int:
    return math.floor(value / factor) * factor


@dataclass(frozen=True)
class QwenVideoRule:
    """One reward model's frame constants (hashable: part of a ``FrameSpec``)."""

    fps: float = 2.0
    min_frames: int = 4
    max_frames: int = 768
    frame_factor: int = 2
    nframes_rounding: Literal["round", "floor"] = "round"
    factor: int = 28
    min_pixels: int = 128 * 28 * 28
    max_pixels: int = 768 * 28 * 28
    total_pixels: float | None = None
    max_ratio: float = 200.0

    def __post_init__(self) -> None:
        if not (isinstance(self.fps, (int, float)) and math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"QwenVideoRule.fps must be > 0, got {self.fps!r}")
        for name in ("min_frames", "max_frames", "frame_factor", "factor", "min_pixels", "max_pixels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"QwenVideoRule.{name} must be an int >= 1, got {value!r}")
        if self.nframes_rounding not in ("round", "floor"):
            raise ValueError(f"QwenVideoRule.nframes_rounding must be 'round' or 'floor', got {self.nframes_rounding!r}")
        if self.max_pixels < self.min_pixels:
            raise ValueError("QwenVideoRule.max_pixels must be >= min_pixels")

    def describe(self) -> str:
        cap = f"<= {self.max_pixels} px"
        if self.total_pixels is not None:
            cap += f" and {self.total_pixels:g} px per video"
        return (f"{self.fps:g} fps by the average frame rate ({self.min_frames}-{self.max_frames} frames, "
                f"a multiple of {self.frame_factor}), sides multiples of {self.factor}, "
                f">= {self.min_pixels} px, {cap}")

    def nframes(self, total_frames: int, video_fps: float) -> int:
        return smart_nframes(self, total_frames, video_fps)

    def frame_indices(self, total_frames: int, video_fps: float) -> np.ndarray:
        return qwen_frame_indices(total_frames, self.nframes(total_frames, video_fps))

    def frame_max_pixels(self, nframes: int) -> float:
        """The per-frame pixel cap for a video of ``nframes`` sampled frames."""
        if self.total_pixels is None:
            return self.max_pixels
        spread = self.total_pixels / max(nframes, 1) * self.frame_factor
        return max(min(self.max_pixels, spread), int(self.min_pixels * 1.05))

    def frame_size(self, height: int, width: int, nframes: int) -> tuple[int, int]:
        """(height, width) every sampled frame is resized to."""
        return smart_resize(height, width, self.factor, self.min_pixels, self.frame_max_pixels(nframes),
                            self.max_ratio)


def smart_nframes(rule: QwenVideoRule, total_frames: int, video_fps: float) -> int:
    """How many frames ``rule`` samples from a video of ``total_frames`` at ``video_fps`` (average rate)."""
    factor = rule.frame_factor
    if total_frames < factor:
        raise VbenchPrefError(f"the video has {total_frames} frame(s); this model needs at least {factor}")
    if not (math.isfinite(video_fps) and video_fps > 0):
        raise VbenchPrefError(f"the video has no usable frame rate ({video_fps!r}); cannot sample at {rule.fps:g} fps")
    min_frames = _ceil_by(rule.min_frames, factor)
    max_frames = _floor_by(min(rule.max_frames, total_frames), factor)
    wanted = total_frames / video_fps * rule.fps
    if rule.nframes_rounding == "round":
        count = _round_by(min(max(wanted, min_frames), max_frames), factor)
        count = min(count, total_frames)
    else:
        count = _floor_by(min(min(max(wanted, min_frames), max_frames), total_frames), factor)
    if not factor <= count <= total_frames:
        raise VbenchPrefError(f"cannot sample {count} frames from a video of {total_frames} frames")
    return int(count)


def qwen_frame_indices(total_frames: int, count: int) -> np.ndarray:
    """``torch.linspace(0, total_frames - 1, count).round()``: float32 and half-to-even, as the reference."""
    return torch.linspace(0, total_frames - 1, count).round().long().numpy().astype(np.int64)


def smart_resize(
    height: int, width: int, factor: int, min_pixels: float, max_pixels: float, max_ratio: float = 200.0
) -> tuple[int, int]:
    """Qwen-VL's frame size: sides multiples of ``factor``, area within [min_pixels, max_pixels]."""
    if max(height, width) / min(height, width) > max_ratio:
        raise VbenchPrefError(
            f"the video's aspect ratio {max(height, width) / min(height, width):.1f}:1 exceeds the model's "
            f"limit of {max_ratio:g}:1 ({width}x{height})"
        )
    h_bar = max(factor, _round_by(height, factor))
    w_bar = max(factor, _round_by(width, factor))
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = _floor_by(height / beta, factor)
        w_bar = _floor_by(width / beta, factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = _ceil_by(height * beta, factor)
        w_bar = _ceil_by(width * beta, factor)
    if h_bar < factor or w_bar < factor:
        raise VbenchPrefError(f"a {width}x{height} frame cannot fit {max_pixels:g} px in sides that are multiples of {factor}")
    return int(h_bar), int(w_bar)
