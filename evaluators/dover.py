"""DOVER: technical and aesthetic video quality, and their fused overall score.

DOVER (Wu et al., ICCV 2023) has two branches: the technical one is FAST-VQA's network (Video Swin-T with
gated relative position bias) on 3 clips of 32 frames cut into a 7x7 grid of 32x32 native-resolution
fragments; the aesthetic one is an inflated ConvNeXt-T on 32 frames resized to 224x224. Each branch's head
gives one raw number per video (mean over clips and the output map). The fused score is DOVER's
``evaluate_one_video.py --fusion``: ``sigmoid(0.6104 t + 0.3896 a)`` with ``t = (T - 0.1107) / 0.07355`` and
``a = (A + 0.08285) / 0.03774``, constants fitted on KoNViD-1k; here the branches are fused by name (the
reference fuses its output list by position). The reference script applies the same constants whichever
checkpoint it loads (``-o dover-mobile.yml`` included), and so does this evaluator for every variant;
they were fitted for DOVER, so DOVER-Mobile's and DOVER++'s ``overall`` are on a scale only roughly alike.

Views: ``vbench_pref.vqa.views`` presets ``dover`` (= ``dover_mobile``), the reference's test-time sampling;
the random temporal and fragment offsets are seeded by (run seed, video, draw) (see ``_vqa_base``).
The PG-DPO paper's Table 1 "VQA" column cites FAST-VQA; the reported CSV maps it to ``dover.overall`` by
convention (``fast_vqa.score`` is the model the paper cites).
"""

from __future__ import annotations

import numpy as np
import torch

from vbench_pref.evaluator import ScoreSpec
from vbench_pref.vqa import models
from vbench_pref.vqa.weights import DOVER_MOBILE_WEIGHTS, DOVER_PLUS_PLUS_WEIGHTS, DOVER_WEIGHTS

from ._vqa_base import VQAEvaluator, vqa_options

MEAN_T, STD_T, W_T = models.DOVER_FUSION["technical"]
MEAN_A, STD_A, W_A = models.DOVER_FUSION["aesthetic"]


def standardised(raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each branch's raw score in KoNViD-1k standard deviations from that set's mean (the fusion's inputs)."""
    return {name: (raw[name] - mean) / std for name, (mean, std, _) in models.DOVER_FUSION.items()}


class Dover(VQAEvaluator):
    name = "dover"
    version = "1"
    description = "DOVER technical and aesthetic video quality (standardised on KoNViD-1k) and their fused 0-1 score"
    scores = (
        ScoreSpec("overall", True, (0.0, 1.0),
                  "sigmoid(0.6104 t + 0.3896 a), DOVER's fused score (KoNViD-1k constants); ~0.5 = that set's mean"),
        ScoreSpec("technical", True,
                  description=f"t = (technical_raw - {MEAN_T}) / {STD_T}: technical quality in KoNViD-1k std units"),
        ScoreSpec("aesthetic", True,
                  description=f"a = (aesthetic_raw + {-MEAN_A}) / {STD_A}: aesthetic quality in KoNViD-1k std units"),
        ScoreSpec("technical_raw", True, description=f"the technical head's output, mean over clips and positions (KoNViD-1k: mean {MEAN_T}, std {STD_T})"),
        ScoreSpec("aesthetic_raw", True, description=f"the aesthetic head's output, mean over positions (KoNViD-1k: mean {MEAN_A}, std {STD_A})"),
    )
    primary_score = "overall"
    weights = (DOVER_WEIGHTS, DOVER_MOBILE_WEIGHTS, DOVER_PLUS_PLUS_WEIGHTS)
    reference = "VQAssessment/DOVER:evaluate_one_video.py --fusion (commit f1ddc96; S-Lab licence, non-commercial)"
    options = vqa_options(("dover", "dover_mobile", "dover_plus_plus"), "DOVER")
    variant_weights = {"dover": DOVER_WEIGHTS, "dover_mobile": DOVER_MOBILE_WEIGHTS,
                       "dover_plus_plus": DOVER_PLUS_PLUS_WEIGHTS}

    @property
    def preset(self) -> str:
        return "dover_mobile" if self.config["variant"] == "dover_mobile" else "dover"

    def finish(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        z = standardised(raw)
        overall = models.dover_overall({name: torch.from_numpy(v) for name, v in raw.items()}).numpy()
        return {"overall": overall, "technical": z["technical"], "aesthetic": z["aesthetic"],
                "technical_raw": raw["technical"], "aesthetic_raw": raw["aesthetic"]}

    def provenance(self) -> dict:
        return {**super().provenance(), "fusion": {n: {"mean": m, "std": s, "weight": w}
                                                   for n, (m, s, w) in models.DOVER_FUSION.items()}}
