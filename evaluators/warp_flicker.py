"""Temporal flicker by flow-warping error (EvalCrafter's RAFT warping error, Lai et al. 2018).

For every consecutive pair (I_t, I_{t+1}) of all frames, RAFT gives the forward flow t -> t+1 and the
backward flow t+1 -> t; I_{t+1} is warped back onto I_t with the forward flow and the squared difference
is averaged over channels and over the pixels that pass the forward-backward occlusion test of Sundaram
et al. (out-of-frame samples count as occluded):

    score = 1 - mean_t [ sum_x nonocc * mean_c (warp(I_{t+1})(x) - I_t(x))^2 / sum_x nonocc ]

with frames in [0, 1]. Higher is better; the range is (-inf, 1], in practice about 0.97-0.999.

Frames are resized to the RAFT policy of ``vbench_pref.flow`` (longest side <= ``max_side``, shortest side
>= 128, both multiples of 8, bilinear) and the error is measured at that size, so scores of videos at
different native resolutions are comparable only at the same ``max_side``. RAFT runs in float32 whatever
dtype ``load`` is given: flow in half precision drifts by more than the errors this metric measures.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from vbench_pref.evaluator import Option, ScoreSpec, VideoSample
from vbench_pref.evaluators._raft_base import RaftEvaluator
from vbench_pref.flow import DEFAULT_MAX_SIDE, raft_frame_spec, raft_options, warping_error
from vbench_pref.video import FrameSpec


class WarpFlicker(RaftEvaluator):
    name = "warp_flicker"
    version = "1"
    scores = (
        ScoreSpec(
            "warp_flicker",
            higher_is_better=True,
            range=(-float("inf"), 1.0),
            description="1 - mean occlusion-masked RAFT warping error of consecutive frames (frames in [0,1])",
        ),
    )
    frames: FrameSpec = raft_frame_spec(DEFAULT_MAX_SIDE)
    reference = "evalcrafter/EvalCrafter:metrics/RAFT (warping error, Lai et al. 2018)"
    description = (
        "Flow-warping temporal consistency: torchvision RAFT forward/backward flow, forward-backward "
        "occlusion test, squared error of the warped next frame on non-occluded pixels"
    )
    options = raft_options(iters_default=12) + (
        Option(
            "motion_boundaries",
            False,
            "also mask flow motion boundaries (the second test of Lai et al.'s detect_occlusion)",
        ),
    )

    def frame_spec(self) -> FrameSpec:
        return raft_frame_spec(int(self.config["max_side"]))

    @torch.no_grad()
    def score(self, batch: Sequence[VideoSample]) -> dict[str, np.ndarray]:
        errors: list[list[float]] = [[] for _ in batch]
        clips = [s.frames for s in batch]
        for pairs, a, b, fw, bw in self.pair_flows([s.video for s in batch], clips, backward=True):
            err = warping_error(a, b, fw, bw, motion_boundaries=bool(self.config["motion_boundaries"]))
            for (i, _), e in zip(pairs, err.double().cpu().tolist()):
                errors[i].append(e)
        values = np.array([1.0 - float(np.mean(e)) for e in errors], dtype=np.float64)
        return {"warp_flicker": values}
