"""FAST-VQA-B / FasterVQA: technical video quality from fragments, rescaled to 0-1 as the reference does.

FAST-VQA (Wu et al., ECCV 2022; FasterVQA, TPAMI 2023) is a Video Swin-T with gated relative position bias
on a 7x7 grid of 32x32 native-resolution fragments (DOVER's technical branch is the same network).
FAST-VQA-B reads 4 clips of 32 frames (interval 2); FasterVQA one clip of 32 frames taken as 8 temporal
fragments of 4. The head's output averaged over clips and positions is ``raw``; ``score`` is the
reference's ``vqa.py`` rescaling ``sigmoid((raw - mean) / std)`` with its per-model constants (FAST-VQA
``(-0.110198185, 0.04178565)``, FasterVQA ``(0.14759505, 0.03613452)``): the mean and std of the model's
predictions over a benchmark set, so 0.5 is that set's average video.

``sampling``: ``loader`` (default) takes frames as FAST-VQA's test-set loader does (``FusionDataset``:
random segment offsets, FasterVQA's temporal fragments), the sampling of the published benchmark results and
most likely of the benchmark predictions whose mean and std the rescaling constants are (the repository
does not say how it computed them; its evaluation scripts all use the loader); ``script`` takes them as ``vqa.py`` does: fixed
centred clips of 32 consecutive frames, and for FasterVQA no temporal fragments at all, since its ``t_frag``
test reads the wrong dictionary. Fragment offsets are random in both, seeded here by (run seed, video, draw).

This is the model the PG-DPO paper's Table 1 "VQA" column cites (Wu et al. 2022).
"""

from __future__ import annotations

import numpy as np

from vbench_pref.evaluator import Option, ScoreSpec
from vbench_pref.vqa.weights import FAST_VQA_B_WEIGHTS, FASTER_VQA_WEIGHTS

from ._vqa_base import VQAEvaluator, vqa_options

# vqa.py's mean_stds, by variant
RESCALE = {"fast_vqa_b": (-0.110198185, 0.04178565), "faster_vqa": (0.14759505, 0.03613452)}
PRESETS = {("fast_vqa_b", "loader"): "fast_vqa", ("faster_vqa", "loader"): "faster_vqa",
           ("fast_vqa_b", "script"): "fast_vqa_script", ("faster_vqa", "script"): "faster_vqa_script"}


def rescaled(raw: np.ndarray, variant: str) -> np.ndarray:
    mean, std = RESCALE[variant]
    return 1.0 / (1.0 + np.exp(-(raw - mean) / std))


class FastVQA(VQAEvaluator):
    name = "fast_vqa"
    version = "1"
    description = "FAST-VQA-B / FasterVQA technical video quality, rescaled to 0-1 as the reference's vqa.py does"
    scores = (
        ScoreSpec("score", True, (0.0, 1.0),
                  "sigmoid((raw - mean) / std) with vqa.py's per-model constants; 0.5 = the benchmark set's average"),
        ScoreSpec("raw", True, description="the head's output, mean over clips and positions"),
    )
    primary_score = "score"
    weights = (FAST_VQA_B_WEIGHTS, FASTER_VQA_WEIGHTS)
    reference = ("VQAssessment/FAST-VQA-and-FasterVQA:vqa.py (sigmoid_rescale) and fastvqa/datasets/fusion_datasets.py "
                 "(test-set sampling), commit 9f264e4; MIT")
    options = (
        *vqa_options(("fast_vqa_b", "faster_vqa"), "FAST-VQA"),
        Option("sampling", "loader",
               "loader: the test-set loader's frame sampling (the published results and the rescaling constants); "
               "script: vqa.py's fixed centred clips (FasterVQA without temporal fragments, as vqa.py runs it)",
               ("loader", "script")),
    )
    variant_weights = {"fast_vqa_b": FAST_VQA_B_WEIGHTS, "faster_vqa": FASTER_VQA_WEIGHTS}

    @property
    def preset(self) -> str:
        return PRESETS[(str(self.config["variant"]), str(self.config["sampling"]))]

    def finish(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        value = raw["fragments"]
        return {"score": rescaled(value, str(self.config["variant"])), "raw": value}

    def provenance(self) -> dict:
        mean, std = RESCALE[str(self.config["variant"])]
        return {**super().provenance(), "rescale": {"mean": mean, "std": std}}
