"""Content-debiased FVD (Ge et al. 2024, cd-fvd): the Fréchet distance of VideoMAE-v2 features, which weigh
motion more than I3D's (trained on Kinetics appearance) do.

Network: VideoMAE-v2 ViT-g/14 pretrained with masking on hybrid data and fine-tuned on Something-Something
v2 (``vit_g_hybrid_pt_1200e_ssv2_ft.pth``), features = ``fc_norm`` of the mean token (1408 values), as
cd-fvd's ``fvd_videomae`` takes them. Input: the first 16 frames, /255, bilinear to 224 x 224 without
antialiasing and without mean/std normalisation (cd-fvd applies none). ``-O fvd_videomae.weights=random``
builds the test-size network unless ``random_size=full`` (1B parameters).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from vbench_pref.distribution import videomae
from vbench_pref.distribution.weights import VIDEOMAE_WEIGHTS
from vbench_pref.evaluator import DistanceSpec, Option

from ._clip_network import ClipNetworkFeatures, clip_options
from ._network_features import RANDOM_SEED, WEIGHTS_OPTION


class FVDVideoMAE(ClipNetworkFeatures):
    name = "fvd_videomae"
    version = "1"
    description = "content-debiased FVD (VideoMAE-v2 ViT-g features, cd-fvd) to a reference set (lower is better)"
    distances = (DistanceSpec("fvd_videomae", "frechet", "Fréchet distance of VideoMAE-v2 features of 16-frame clips"),)
    feature_dim = videomae.VIDEOMAE_FEATURES
    sample_size = 2048
    weights = (VIDEOMAE_WEIGHTS,)
    weight_spec = VIDEOMAE_WEIGHTS
    network_name = "videomae-v2-g"
    reference = "songweige/content-debiased-fvd (fvd_videomae: vit_g_hybrid_pt_1200e_ssv2_ft, fc_norm features)"
    options = (
        WEIGHTS_OPTION,
        Option("random_size", "tiny", "architecture of weights=random: 'tiny' (test size) or 'full' (ViT-g)",
               ("tiny", "full")),
        *clip_options(videomae.VIDEOMAE_FRAMES),
    )

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self.config["weights"] == "random" and self.config["random_size"] == "tiny":
            # the test-size network's features are shorter than the card's
            self.feature_dim = videomae.config("tiny").embed_dim  # type: ignore[misc]

    def load_file(self, path: Path) -> torch.nn.Module:
        return videomae.load_videomae(path)

    def random_network(self) -> torch.nn.Module:
        return videomae.random_videomae(self.config["random_size"], seed=RANDOM_SEED)

    def random_label(self) -> dict[str, Any]:
        return {"seed": RANDOM_SEED, "size": self.config["random_size"]}

    def preprocess(self) -> Callable[[list[torch.Tensor]], torch.Tensor]:
        return videomae.preprocess_videomae
