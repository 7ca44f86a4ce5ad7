"""What ``fid`` and ``kid`` share: the FID Inception-v3 (``vbench_pref.distribution.inception``), its weights
option, the frames it reads and its per-frame 2048-d pool3 features.

Both evaluators of one run share one network (``SharedModels``, keyed by the weights), so asking for both
loads it once; each computes its own features (a run stores features per evaluator).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from vbench_pref import weights as weight_files
from vbench_pref.distribution import inception
from vbench_pref.errors import VbenchPrefError
from vbench_pref.evaluator import Option, SetEvaluator, SharedModels, VideoSample
from vbench_pref.video import FrameSpec

from ._clip_base import resolve_weights_option, weights_option_missing

RANDOM_SEED = 0  # weights=random: always the same untrained network, so random-weight runs compare


def inception_options() -> tuple[Option, ...]:
    return (
        Option("weights", "official",
               "'official' (the manifest file, see `vbench-pref weights list`), a local copy of it or a folder "
               "holding it, or 'random' (untrained weights, smoke tests only; distances are labelled)"),
        Option("convention", "clean",
               "resize and scaling: 'clean' (clean-fid: per-channel PIL bicubic on float) or 'pytorch_fid' "
               "(bilinear tensor resize); features of the two are never compared", inception.CONVENTIONS),
        Option("stride", 1, "use every stride-th frame of each video"),
        Option("max_frames", 0, "at most this many frames per video after the stride (0: no limit)"),
        Option("frame_batch", 32, "frames per forward pass"),
    )


class InceptionFeatures(SetEvaluator):
    """Per-frame FID Inception features; subclasses name the distance."""

    frames = FrameSpec()  # every frame at native size: the convention's resize is part of the metric
    feature_dim = inception.FEATURE_DIM
    sample_unit = "frames"
    weights = (inception.FID_INCEPTION_WEIGHTS,)
    location_options = ("weights",)
    options = inception_options()

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        for name, low in (("stride", 1), ("max_frames", 0), ("frame_batch", 1)):
            if int(self.config[name]) < low:
                raise VbenchPrefError(f"{self.name}: option {name} must be at least {low}, got {self.config[name]}")
        self.network: inception.FIDInceptionV3 | None = None
        self._weights: list[dict[str, Any]] = []

    @property
    def uses_random_weights(self) -> bool:
        return self.config["weights"] == "random"

    def required_weights(self) -> tuple[weight_files.WeightSpec, ...]:
        return self.weights if self.config["weights"] == "official" else ()

    def residency_key(self) -> str:
        return f"fid-inception:{self.config['weights']}"

    def missing_weights(self) -> str | None:
        return weights_option_missing(str(self.config["weights"]), inception.FID_INCEPTION_WEIGHTS, self.name)

    def load(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
             shared: SharedModels | None = None) -> None:
        super().load(device, dtype, shared)
        value = str(self.config["weights"])
        if value == "random":
            self._weights = [{"option": "weights", "weights": "random", "seed": RANDOM_SEED}]
            build = lambda: inception.random_network(RANDOM_SEED)  # noqa: E731
        else:
            path, provenance = resolve_weights_option(value, inception.FID_INCEPTION_WEIGHTS, self.name)
            self._weights = [provenance]
            build = lambda: inception.load_inception(Path(path))  # noqa: E731
        key = ("fid-inception", value)
        self.network = shared.get_or_create(key, build) if shared is not None else build()

    def device_models(self) -> tuple[Any, ...]:
        return (self.network,)

    def weight_provenance(self) -> list[dict[str, Any]]:
        return list(self._weights)

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "extractor": self.settings()}

    def settings(self) -> dict[str, Any]:
        max_frames = int(self.config["max_frames"]) or None
        return inception.extractor_settings(self.config["convention"], int(self.config["stride"]), max_frames)

    def features(self, batch: Sequence[VideoSample]) -> list[np.ndarray | torch.Tensor]:
        if self.network is None:
            raise RuntimeError(f"{self.name}: call load() before features()")
        videos = [torch.as_tensor(sample.frames) for sample in batch]
        # float32 always: features (and so distances) must not depend on the run's --dtype
        return inception.video_features(
            self.network, videos, stride=int(self.config["stride"]),
            max_frames=int(self.config["max_frames"]) or None, convention=self.config["convention"],
            batch_size=int(self.config["frame_batch"]),
        )
