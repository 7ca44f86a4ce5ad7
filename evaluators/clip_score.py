"""CLIP score: how well each frame matches the prompt, as the cosine of CLIP image and text embeddings.

Per video: the mean over frames of cos(E_img(frame), E_txt(prompt)) (VBench's per-frame CLIP similarity,
Vchitect/VBench:vbench/appearance_style.py), and Hessel et al.'s CLIPScore 2.5 * max(cos, 0) per frame,
averaged (jmhessel/clipscore). Frames as ``appearance_style`` feeds CLIP (``clip_transform_Image`` on
``PIL.Image.fromarray`` of each frame): PIL bicubic resize of the short side to 224 (antialiased, uint8),
centre crop, ``ToTensor``, OpenAI mean/std. ``view=tensor`` takes VBench's other CLIP view instead (its
``clip_transform`` on float frames, aesthetic's): a ViT-L-14 ``clip_score`` then shares aesthetic's frame
embeddings. Prompts longer than CLIP's 77 tokens are truncated, as by every CLIP tokenizer.

``precision=reference`` on a GPU computes as VBench does there: OpenAI CLIP's float16 weights, features
normalised in float16 and the similarity read from the float16 logits (scale 100, divided by 100).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from vbench_pref.evaluator import Option, ScoreSpec, VideoSample
from vbench_pref.openclip import OPENAI_CLIP_WEIGHTS, clip_frame_spec, image_size
from vbench_pref.video import FrameSpec
from vbench_pref.weights import WeightSpec

from ._clip_base import ClipFamilyEvaluator, frame_options, weight_option

HESSEL_W = 2.5
OPENAI_LOGIT_SCALE = 100.0  # exp(logit_scale) of OpenAI's CLIP weights; appearance_style divides by 100


def clip_scores(image_embeddings: torch.Tensor, text_embedding: torch.Tensor) -> tuple[float, float]:
    """(mean cosine, mean Hessel CLIPScore) of one video's L2-normalised frame embeddings (T x D)."""
    return _summarise(image_embeddings.double() @ text_embedding.double())


def float16_cosines(image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
    """Per-frame cosines as OpenAI CLIP's forward gives them from float16 features (VBench on a GPU).

    ``x / x.norm()`` in float16, ``logit_scale * image @ text.T`` in float16, then divided by 100.
    """
    image = image_features / image_features.norm(dim=1, keepdim=True)
    text = text_features / text_features.norm(dim=1, keepdim=True)
    logits = torch.tensor(OPENAI_LOGIT_SCALE, device=image.device) * image @ text.t()
    return logits[:, 0].double() / OPENAI_LOGIT_SCALE


def _summarise(cos: torch.Tensor) -> tuple[float, float]:
    return float(cos.mean()), float((HESSEL_W * cos.clamp(min=0)).mean())


class ClipScore(ClipFamilyEvaluator):
    name = "clip_score"
    version = "2"  # 2: frames through PIL as appearance_style (1: torch resize rounded to uint8)
    description = "Text-video alignment: mean per-frame cosine of CLIP image and prompt embeddings"
    scores = (
        ScoreSpec("cosine", True, (-1.0, 1.0), "mean over frames of cos(image, text); ~0.2-0.35 for real videos"),
        ScoreSpec("hessel", True, (0.0, 2.5), "mean over frames of 2.5 * max(cos, 0) (Hessel et al. 2021)"),
    )
    frames = clip_frame_spec(224, resampler="pil")
    needs_prompt = True
    weights = tuple(OPENAI_CLIP_WEIGHTS.values())
    reference = "Vchitect/VBench:vbench/appearance_style.py (per-frame cos); jmhessel/clipscore (2.5*max(cos,0))"
    options = (
        Option("model", "ViT-B-32", "open_clip architecture: ViT-B-32 (VBench's) or ViT-L-14, OpenAI weights"),
        weight_option("weights", "CLIP weights"),
        Option("quick_gelu", True, "QuickGELU activations, as OpenAI's CLIP weights were trained with"),
        Option(
            "view", "pil",
            "pil: frames resized by PIL (VBench appearance_style); tensor: float bicubic without antialias "
            "(VBench clip_transform, aesthetic's view: a ViT-L-14 clip_score shares its frame embeddings)",
            ("pil", "tensor"),
        ),
        *frame_options(antialias=None, reference="VBench"),
    )

    def backbone_spec(self) -> WeightSpec | None:
        return OPENAI_CLIP_WEIGHTS.get(self.arch)

    def build_frame_spec(self) -> FrameSpec:
        resampler = "pil" if self.config["view"] == "pil" else "torch"
        return clip_frame_spec(image_size(self.arch), int(self.config["num_frames"]), resampler=resampler)

    def score(self, batch: Sequence[VideoSample]) -> dict[str, np.ndarray]:
        if self.compute.half_weights:
            pairs = self._float16_scores(batch)
        else:
            texts = self.prompt_embeddings(batch)
            pairs = [clip_scores(images, text) for images, text in zip(self.embeddings(batch), texts)]
        return {"cosine": np.array([p[0] for p in pairs]), "hessel": np.array([p[1] for p in pairs])}

    def _float16_scores(self, batch: Sequence[VideoSample]) -> list[tuple[float, float]]:
        self.prompt_embeddings(batch)  # checks the prompts
        assert self.backbone is not None
        self.backbone.to(self.device)
        images = self.backbone.video_features(batch, self._spec, self.compute, int(self.config["frame_batch"]))
        texts = self.backbone.text_features([str(s.prompt) for s in batch], self.compute)
        return [_summarise(float16_cosines(f, t[None])) for f, t in zip(images, texts)]
