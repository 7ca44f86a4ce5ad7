"""LAION aesthetic predictor on CLIP ViT-L/14 image embeddings, per frame, averaged over the video.

Two heads on the L2-normalised OpenAI ViT-L/14 image embedding:

- ``v1`` (default): LAION-AI/aesthetic-predictor's linear head ``sa_0_4_vit_l_14_linear.pth``
  (Linear 768 -> 1), divided by 10 and not clamped: exactly VBench's aesthetic quality
  (Vchitect/VBench:vbench/aesthetic_quality.py), comparable with VBench and the PG-DPO paper (~0-1).
- ``v2``: christophschuhmann/improved-aesthetic-predictor's MLP ``sac+logos+ava1-l14-linearMSE.pth``
  (768-1024-128-64-16-1, no activations, dropout off at inference), on the 1-10 scale.

Frames as VBench's ``load_video`` + ``clip_transform`` make them: float32 frames (0-255), short side to 224
bicubic *without* antialiasing, the overshoot kept (no rounding, no clamping), centre crop, / 255, OpenAI
mean/std. A ViT-L-14 ``clip_score`` with ``view=tensor`` in the same run embeds each frame once for both.
``precision=reference`` runs OpenAI CLIP's float16 weights on a GPU, as VBench's ``clip.load`` does; the
embedding is cast to float32 before the normalisation and the head, as VBench does.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from vbench_pref.errors import VbenchPrefError
from vbench_pref.evaluator import Option, ScoreSpec, VideoSample
from vbench_pref.openclip import OPENAI_CLIP_WEIGHTS, clip_frame_spec
from vbench_pref.weights import WeightSpec

from ._clip_base import ClipFamilyEvaluator, frame_options, weight_option

HEAD_WEIGHTS: dict[str, WeightSpec] = {
    "v1": WeightSpec(
        name="laion-aesthetic-v1-linear",
        source="https://github.com/LAION-AI/aesthetic-predictor/raw/main/sa_0_4_vit_l_14_linear.pth",
        filename="sa_0_4_vit_l_14_linear.pth",
        sha256="2cd4e60f4f24ae3bcd57b847b13c1f3ba27edc28cc1a7f9ce74ee9f421243cba",
        licence="MIT (LAION-AI/aesthetic-predictor)",
        env_var="VBENCH_PREF_AESTHETIC_V1_WEIGHTS",
        description="LAION aesthetic predictor v1: Linear(768, 1) on CLIP ViT-L/14 (VBench's)",
    ),
    "v2": WeightSpec(
        name="laion-aesthetic-v2-mlp",
        source="https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/sac+logos+ava1-l14-linearMSE.pth",
        filename="sac+logos+ava1-l14-linearMSE.pth",
        sha256=None,
        md5="b1047fd767a00134b8fd6529bf19521a",
        licence="Apache-2.0 (christophschuhmann/improved-aesthetic-predictor)",
        env_var="VBENCH_PREF_AESTHETIC_V2_WEIGHTS",
        description="Improved aesthetic predictor (LAION v2): MLP 768-1024-128-64-16-1 on CLIP ViT-L/14",
    ),
}
SCALE = {"v1": 10.0, "v2": 1.0}  # VBench divides the v1 head's output by 10


def linear_head(width: int) -> nn.Module:
    """LAION v1: the file holds ``weight`` (1 x width) and ``bias`` (1)."""
    return nn.Linear(width, 1)


class MlpHead(nn.Module):
    """improved-aesthetic-predictor's MLP; the file's keys are ``layers.{0,2,4,6,7}.{weight,bias}``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(width, 1024), nn.Dropout(0.2),
            nn.Linear(1024, 128), nn.Dropout(0.2),
            nn.Linear(128, 64), nn.Dropout(0.1),
            nn.Linear(64, 16),
            nn.Linear(16, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def build_head(kind: str, width: int) -> nn.Module:
    return linear_head(width) if kind == "v1" else MlpHead(width)


def aesthetic_scores(head: nn.Module, image_embeddings: torch.Tensor, kind: str) -> float:
    """Mean over frames of head(normalised embedding) / scale, for one video."""
    with torch.inference_mode():
        values = head(image_embeddings.float()).squeeze(-1) / SCALE[kind]
    return float(values.double().mean())


class Aesthetic(ClipFamilyEvaluator):
    name = "aesthetic"
    version = "2"  # 2: VBench's float view, unrounded (1: rounded to uint8)
    description = "LAION aesthetic predictor on CLIP ViT-L/14 frames (v1 linear / 10 as VBench, or v2 MLP)"
    scores = (
        ScoreSpec("aesthetic", True, description="v1: head/10, ~0-1 (VBench, paper); v2: 1-10 scale"),
    )
    frames = clip_frame_spec(224)
    needs_prompt = False
    weights = (OPENAI_CLIP_WEIGHTS["ViT-L-14"], *HEAD_WEIGHTS.values())
    reference = "Vchitect/VBench:vbench/aesthetic_quality.py; christophschuhmann/improved-aesthetic-predictor"
    options = (
        Option("head", "v1", "v1: LAION linear head / 10 (VBench's, the paper's); v2: improved MLP, 1-10", ("v1", "v2")),
        weight_option("head_weights", "head weights"),
        Option("model", "ViT-L-14", "open_clip architecture of the image encoder (the heads expect ViT-L-14)"),
        weight_option("clip_weights", "CLIP weights"),
        Option("quick_gelu", True, "QuickGELU activations, as OpenAI's CLIP weights were trained with"),
        *frame_options(antialias=False, reference="VBench"),
    )
    backbone_option = "clip_weights"

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.head: nn.Module | None = None

    def backbone_spec(self) -> WeightSpec | None:
        return OPENAI_CLIP_WEIGHTS.get(self.arch)

    def head_specs(self) -> list[tuple[str, WeightSpec | None]]:
        return [("head_weights", HEAD_WEIGHTS[self.config["head"]])]

    def load_heads(self) -> None:
        assert self.backbone is not None
        kind = self.config["head"]
        width = int(self.backbone.model.visual.output_dim)
        path = self.resolve("head_weights", HEAD_WEIGHTS[kind])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            head = build_head(kind, width)
        if path is not None:
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
                head.load_state_dict(state, strict=True)
            except Exception as exc:
                raise VbenchPrefError(f"{path} is not the aesthetic {kind} head for width {width}: {_first_line(exc)}") from exc
        self.head = head.eval().requires_grad_(False)

    def device_models(self) -> tuple[Any, ...]:
        return (*super().device_models(), self.head)

    def weight_provenance(self) -> list[dict]:
        return [{"head": self.config["head"], **w} for w in super().weight_provenance()]

    def score(self, batch: Sequence[VideoSample]) -> dict[str, np.ndarray]:
        assert self.head is not None
        self.head.to(self.device)
        kind = self.config["head"]
        return {"aesthetic": np.array([aesthetic_scores(self.head, e, kind) for e in self.embeddings(batch)])}


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
