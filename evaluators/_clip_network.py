"""What ``fvd`` and ``fvd_videomae`` share: one clip of ``clip_frames`` consecutive frames from the start of
each video (as FVD's reference code feeds 16-frame clips), preprocessed by the network's own rule, batched
across videos, one feature vector per video.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from vbench_pref.errors import ScoreError, VbenchPrefError
from vbench_pref.evaluator import Option, VideoSample
from vbench_pref.video import FrameSpec

from ._network_features import NetworkFeatures


def clip_options(frames: int) -> tuple[Option, ...]:
    return (
        Option("clip_frames", frames,
               f"frames of the clip taken from the start of each video (the metric's: {frames}); shorter videos fail"),
        Option("video_batch", 4, "clips per forward pass"),
    )


class ClipNetworkFeatures(NetworkFeatures):
    """One feature vector per video from a clip network; subclasses give ``preprocess``."""

    frames = FrameSpec()  # native frames: the network's own resize is part of the metric
    sample_unit = "videos"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        for name in ("clip_frames", "video_batch"):
            if int(self.config[name]) < 1:
                raise VbenchPrefError(f"{self.name}: option {name} must be at least 1, got {self.config[name]}")

    def preprocess(self) -> Callable[[list[torch.Tensor]], torch.Tensor]:
        """uint8 (T, H, W, 3) clips -> the network's input batch."""
        raise NotImplementedError

    def clip(self, sample: VideoSample) -> torch.Tensor:
        frames = torch.as_tensor(sample.frames)
        wanted = int(self.config["clip_frames"])
        if frames.shape[0] < wanted:
            raise ScoreError(f"{sample.video} has {frames.shape[0]} frames; {self.name} takes clips of {wanted} "
                             f"(-O {self.name}.clip_frames=N for shorter clips, compared only with statistics of N)")
        return frames[:wanted]

    def features(self, batch: Sequence[VideoSample]) -> list[np.ndarray | torch.Tensor]:
        network = self.require_network()
        clips = [self.clip(sample) for sample in batch]
        step = int(self.config["video_batch"])
        prepare = self.preprocess()
        out: list[np.ndarray | torch.Tensor] = []
        with torch.inference_mode():
            for start in range(0, len(clips), step):
                # float32 always: features (and so distances) must not depend on the run's --dtype
                x = prepare(clips[start : start + step]).to(self.device)
                out.extend(network(x).float().cpu().clone())
        return out
