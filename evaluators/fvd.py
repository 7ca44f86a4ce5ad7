"""FVD: the Fréchet distance between the Kinetics-400 I3D features of the run's videos and a reference set's
(``--reference``), as cd-fvd (and StyleGAN-V, TATS, common_metrics_on_video_quality) compute it.

Network: the I3D of ``i3d_pretrained_400.pt`` (the tf.hub ``deepmind/i3d-kinetics-400`` module converted to a
PyTorch state dict; loaded weights-only, never as TorchScript), features = the 400 Kinetics logits.
Input: the first 16 frames of each video, bilinear to 224 x 224 without antialiasing (cd-fvd's
``preprocess_i3d``; ``-O fvd.resize=short_side_crop`` gives VideoGPT's crop), scaled to [-1, 1]. FVD is
reported with 2,048 videos per set; fewer bias it upward (the run says by how much). FVD favours per-frame
quality over motion (Ge et al. 2024): ``fvd_videomae`` is the content-debiased variant.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Callable

import torch

from vbench_pref.distribution import i3d
from vbench_pref.distribution.weights import I3D_WEIGHTS
from vbench_pref.evaluator import DistanceSpec, Option

from ._clip_network import ClipNetworkFeatures, clip_options
from ._network_features import RANDOM_SEED, WEIGHTS_OPTION


class FVD(ClipNetworkFeatures):
    name = "fvd"
    version = "1"
    description = "Fréchet video distance (I3D, Kinetics-400 logits) to a reference set (lower is better)"
    distances = (DistanceSpec("fvd", "frechet", "Fréchet distance of I3D Kinetics-400 logits of 16-frame clips"),)
    feature_dim = i3d.I3D_FEATURES
    sample_size = 2048
    weights = (I3D_WEIGHTS,)
    weight_spec = I3D_WEIGHTS
    network_name = "i3d-kinetics400"
    reference = "songweige/content-debiased-fvd (fvd_i3d: preprocess_i3d + I3D logits; i3d_pretrained_400.pt)"
    options = (
        WEIGHTS_OPTION,
        Option("resize", "stretch", "stretch: bilinear to 224 x 224 (cd-fvd); short_side_crop: VideoGPT's crop",
               ("stretch", "short_side_crop")),
        *clip_options(i3d.I3D_FRAMES),
    )

    def load_file(self, path: Path) -> torch.nn.Module:
        return i3d.load_i3d(path)

    def random_network(self) -> torch.nn.Module:
        return i3d.random_i3d(seed=RANDOM_SEED)

    def preprocess(self) -> Callable[[list[torch.Tensor]], torch.Tensor]:
        return partial(i3d.preprocess_i3d, resize=self.config["resize"])
