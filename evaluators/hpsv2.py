"""HPS v2: the Human Preference Score of each frame for the prompt, averaged over the video.

HPSv2 is open_clip ViT-H-14 fine-tuned on human preference pairs; the score is the dot product of the
L2-normalised image and text features, without the logit scale (tgxs002/HPSv2:hpsv2/img_score.py).
v2.0 and v2.1 are different checkpoints whose scores are not comparable; the version is an option and is
recorded. Frames are prepared as HPSv2's ``preprocess_val`` does on a PIL image: ``ToTensor`` first (float
in [0, 1]), longest side to 224 (bicubic, antialiased as torchvision >= 0.17 does by default; the floats are
not clamped), black padding to a square (``ResizeMaxSize``), OpenAI mean/std. ``precision=reference``
runs under float16 autocast on CUDA, as HPSv2's ``score()`` does. The ``hpsv2`` package itself is not
used: its checkpoint is read here as the open_clip state dict it wraps (``{"state_dict": ...}``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from vbench_pref.errors import VbenchPrefError
from vbench_pref.evaluator import Option, ScoreSpec, VideoSample
from vbench_pref.openclip import clip_frame_spec, image_size
from vbench_pref.video import FrameSpec
from vbench_pref.weights import WeightSpec

from ._clip_base import ClipFamilyEvaluator, frame_options, weight_option

HPS_ARCH = "ViT-H-14"
HPS_WEIGHTS: dict[str, WeightSpec] = {
    version: WeightSpec(
        name=f"hpsv{version[1:]}",
        source="hf://xswu/HPSv2",
        filename=filename,
        sha256=None,  # checked against the hub's LFS sha256 at download
        licence="Apache-2.0 (tgxs002/HPSv2)",
        env_var=f"VBENCH_PREF_HPS_{version.upper().replace('.', '_')}_WEIGHTS",
        description=f"HPS {version}: open_clip ViT-H-14 fine-tuned on HPD v2 (whole model, 686 tensors)",
    )
    for version, filename in (("v2.0", "HPS_v2_compressed.pt"), ("v2.1", "HPS_v2.1_compressed.pt"))
}


def hps_scores(image_embeddings: torch.Tensor, text_embedding: torch.Tensor) -> float:
    """Mean over frames of norm(img) . norm(txt) (no logit scale), for one video."""
    return float((image_embeddings.double() @ text_embedding.double()).mean())


class HPSv2(ClipFamilyEvaluator):
    name = "hpsv2"
    version = "2"  # 2: resized as floats in [0, 1], unclamped (1: rounded to uint8)
    description = "Human Preference Score v2 (ViT-H-14) of each frame for the prompt, averaged"
    scores = (
        ScoreSpec("hpsv2", True, (-1.0, 1.0), "mean over frames of the HPS (~0.2-0.35); v2.0 and v2.1 differ"),
    )
    frames = clip_frame_spec(224, resize="longest_pad", antialias=True, pixels="float_0_1")
    needs_prompt = True
    weights = tuple(HPS_WEIGHTS.values())
    reference = "tgxs002/HPSv2:hpsv2/img_score.py"
    options = (
        Option("version", "v2.1", "HPS checkpoint: v2.1 (recommended by its authors) or v2.0", ("v2.0", "v2.1")),
        weight_option("weights", "HPS checkpoint"),
        Option("model", HPS_ARCH, "open_clip architecture of the checkpoint (ViT-H-14 for the published ones)"),
        Option("resize", "pad", "pad: HPSv2's longest side + black pad; crop: short side + centre crop", ("pad", "crop")),
        *frame_options(antialias=True, reference="HPSv2"),
    )
    reference_precision = "cuda_amp"

    @property
    def quick_gelu(self) -> bool:
        return False  # LAION-trained ViT-H-14: plain GELU

    def backbone_spec(self) -> WeightSpec | None:
        return HPS_WEIGHTS[self.config["version"]]  # another architecture fails the tensor check in one line

    def build_frame_spec(self) -> FrameSpec:
        resize = "longest_pad" if self.config["resize"] == "pad" else "short_side_crop"
        return clip_frame_spec(image_size(self.arch), int(self.config["num_frames"]), resize, bool(self.config["antialias"]),
                               pixels="float_0_1")

    def residency_key(self) -> str:
        return f"{super().residency_key()}:{self.config['version']}"

    def weight_provenance(self) -> list[dict]:
        return [{"hps_version": self.config["version"], **w} for w in super().weight_provenance()]

    def score(self, batch: Sequence[VideoSample]) -> dict[str, np.ndarray]:
        texts = self.prompt_embeddings(batch)
        values = [hps_scores(images, text) for images, text in zip(self.embeddings(batch), texts)]
        if not np.all(np.isfinite(values)):
            raise VbenchPrefError("hpsv2: non-finite score (NaN in the model output)")
        return {"hpsv2": np.array(values)}
