"""What ``fid`` and ``kid`` share: the FID Inception-v3 (``vbench_pref.distribution.inception``), the frames
it reads and its per-frame 2048-d pool3 features.

Both evaluators of one run share one network (``SharedModels``), so asking for both loads it once; each
computes its own features (a run stores features per evaluator).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from vbench_pref.distribution import inception
from vbench_pref.errors import VbenchPrefError
from vbench_pref.evaluator import Option, VideoSample
from vbench_pref.video import FrameSpec

from ._network_features import RANDOM_SEED, WEIGHTS_OPTION, NetworkFeatures


def inception_options() -> tuple[Option, ...]:
    return (
        WEIGHTS_OPTION,
        Option("convention", "clean",
               "resize and scaling: 'clean' (clean-fid: per-channel PIL bicubic on float) or 'pytorch_fid' "
               "(bilinear tensor resize); features of the two are never compared", inception.CONVENTIONS),
        Option("stride", 1, "use every stride-th frame of each video"),
        Option("max_frames", 0, "at most this many frames per video after the stride (0: no limit)"),
        Option("frame_batch", 32, "frames per forward pass"),
    )


class InceptionFeatures(NetworkFeatures):
    """Per-frame FID Inception features; subclasses name the distance."""

    frames = FrameSpec()  # every frame at native size: the convention's resize is part of the metric
    feature_dim = inception.FEATURE_DIM
    sample_unit = "frames"
    weights = (inception.FID_INCEPTION_WEIGHTS,)
    weight_spec = inception.FID_INCEPTION_WEIGHTS
    network_name = "fid-inception"
    options = inception_options()

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        for name, low in (("stride", 1), ("max_frames", 0), ("frame_batch", 1)):
            if int(self.config[name]) < low:
                raise VbenchPrefError(f"{self.name}: option {name} must be at least {low}, got {self.config[name]}")

    def load_file(self, path: Path) -> torch.nn.Module:
        return inception.load_inception(path)

    def random_network(self) -> torch.nn.Module:
        return inception.random_network(RANDOM_SEED)

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "extractor": self.settings()}

    def settings(self) -> dict[str, Any]:
        max_frames = int(self.config["max_frames"]) or None
        return inception.extractor_settings(self.config["convention"], int(self.config["stride"]), max_frames)

    def features(self, batch: Sequence[VideoSample]) -> list[np.ndarray | torch.Tensor]:
        network = self.require_network()
        videos = [torch.as_tensor(sample.frames) for sample in batch]
        # float32 always: features (and so distances) must not depend on the run's --dtype
        return inception.video_features(
            network, videos, stride=int(self.config["stride"]),  # type: ignore[arg-type]
            max_frames=int(self.config["max_frames"]) or None, convention=self.config["convention"],
            batch_size=int(self.config["frame_batch"]),
        )
