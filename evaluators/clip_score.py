"""CLIP score: how well each frame matches the prompt, as the cosine of CLIP image and text embeddings.

Per video: the mean over frames of cos(E_img(frame), E_txt(prompt)) (VBench's per-frame CLIP similarity,
Vchitect/VBench:vbench/appearance_style.py), and Hessel et al.'s CLIPScore 2.5 * max(cos, 0) per frame,
averaged (jmhessel/clipscore). Frames as VBench feeds CLIP: short side to 224 bicubic *without*
antialiasing on uint8 (``clip_transform``), centre crop, OpenAI mean/std. Prompts longer than CLIP's 77
tokens are truncated, as by every CLIP tokenizer.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from vbench_pref.evaluator import Option, ScoreSpec, VideoSample
from vbench_pref.openclip import OPENAI_CLIP_WEIGHTS, clip_frame_spec
from vbench_pref.weights import WeightSpec

from ._clip_base import ClipFamilyEvaluator, frame_options, weight_option

HESSEL_W = 2.5


def clip_scores(image_embeddings: torch.Tensor, text_embedding: torch.Tensor) -> tuple[float, float]:
    """(mean cosine, mean Hessel CLIPScore) of one video's L2-normalised frame embeddings (T x D)."""
    cos = image_embeddings.double() @ text_embedding.double()
    return float(cos.mean()), float((HESSEL_W * cos.clamp(min=0)).mean())


class ClipScore(ClipFamilyEvaluator):
    name = "clip_score"
    version = "1"
    description = "Text-video alignment: mean per-frame cosine of CLIP image and prompt embeddings"
    scores = (
        ScoreSpec("cosine", True, (-1.0, 1.0), "mean over frames of cos(image, text); ~0.2-0.35 for real videos"),
        ScoreSpec("hessel", True, (0.0, 2.5), "mean over frames of 2.5 * max(cos, 0) (Hessel et al. 2021)"),
    )
    frames = clip_frame_spec(224)
    needs_prompt = True
    weights = tuple(OPENAI_CLIP_WEIGHTS.values())
    reference = "Vchitect/VBench:vbench/appearance_style.py (per-frame cos); jmhessel/clipscore (2.5*max(cos,0))"
    options = (
        Option("model", "ViT-B-32", "open_clip architecture: ViT-B-32 (VBench's) or ViT-L-14, OpenAI weights"),
        weight_option("weights", "CLIP weights"),
        Option("quick_gelu", True, "QuickGELU activations, as OpenAI's CLIP weights were trained with"),
        *frame_options(antialias=False),
    )

    def backbone_spec(self) -> WeightSpec | None:
        return OPENAI_CLIP_WEIGHTS.get(self.arch)

    def score(self, batch: Sequence[VideoSample]) -> dict[str, np.ndarray]:
        texts = self.prompt_embeddings(batch)
        pairs = [clip_scores(images, text) for images, text in zip(self.embeddings(batch), texts)]
        return {"cosine": np.array([p[0] for p in pairs]), "hessel": np.array([p[1] for p in pairs])}
