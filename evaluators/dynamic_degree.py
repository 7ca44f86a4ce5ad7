"""VBench dynamic degree: is there enough large motion in the video? (1.0 dynamic, 0.0 static)

Follows Vchitect/VBench:vbench/dynamic_degree.py:

- frames at about 8 fps; RAFT flow from each sampled frame to the next;
- per pair, the mean of the largest 5% flow magnitudes (``int(H*W*0.05)`` pixels);
- ``thres = 6.0 * min(H, W) / 256`` and ``count_num = round(4 * n_frames / 16)`` (Python's round, so
  round-half-to-even, as VBench) with ``n_frames`` the number of sampled frames;
- the video is dynamic when at least ``count_num`` pairs exceed ``thres`` (VBench's early-exit loop, so
  ``count_num == 0`` with at least one pair is dynamic).

Deviations from VBench, all deliberate:

- Weights: VBench runs the original princeton-vl RAFT with ``raft-things.pth``. torchvision's
  ``raft_large`` is the same architecture but its checkpoints are torchvision's own trainings (default
  C_T_SKHT_V2: Chairs -> Things -> Sintel+KITTI+HD1K+Things), so flows and hence borderline decisions can
  differ. The original checkpoint's key names do not load into torchvision's model.
- Resolution: VBench runs RAFT at native resolution (padded to a multiple of 8). Here frames follow the
  RAFT resize policy of ``vbench_pref.flow`` (longest side <= ``max_side``, default 512, 0 = no cap;
  shortest side >= 128; multiples of 8). H, W in ``thres`` and in the 5% count are those of the resized
  frames RAFT sees, so the threshold stays in the same units as the flow (it scales with min(H, W)).
- Sampling: ``sampling="stride"`` (default) takes all frames and keeps every ``max(1, round(fps / 8))``-th
  one, which is VBench's own rule (e.g. 7.5 fps for a 30 fps video) and reproduces its frame count and
  hence ``count_num`` exactly; ``sampling="fps"`` uses the engine's timestamp-based 8 fps sampling instead
  (closer to 8 fps for variable-frame-rate sources, but a different frame count than VBench's).
- Iterations: VBench calls RAFT with ``iters=20``; that is the default here.
- A video with fewer than 2 sampled frames raises ScoreError (VBench would return "static").
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from vbench_pref.evaluator import Option, ScoreSpec, VideoSample
from vbench_pref.evaluators._raft_base import RaftEvaluator
from vbench_pref.flow import DEFAULT_MAX_SIDE, raft_frame_spec, raft_options
from vbench_pref.video import FrameSpec

SAMPLE_FPS = 8.0
TOP_FRACTION = 0.05


# ------------------------------------------------------------------------------------ VBench's rule
def vbench_params(height: int, width: int, n_frames: int) -> tuple[float, int]:
    """VBench's ``(thres, count_num)`` for frames of ``height`` x ``width`` and ``n_frames`` sampled frames."""
    thres = 6.0 * (min(height, width) / 256.0)
    count_num = round(4 * (n_frames / 16.0))
    return thres, int(count_num)


def top_fraction_mean(flow: torch.Tensor, fraction: float = TOP_FRACTION) -> torch.Tensor:
    """Mean of the largest ``int(H*W*fraction)`` flow magnitudes per pair: N x 2 x H x W -> (N,)."""
    n, _, h, w = flow.shape
    k = max(1, int(h * w * fraction))  # VBench would average an empty slice (NaN) on < 20 pixels
    magnitude = flow.float().pow(2).sum(1).sqrt().reshape(n, -1)
    return magnitude.topk(k, dim=1).values.mean(1)


def is_dynamic(pair_scores: Sequence[float], thres: float, count_num: int) -> bool:
    """VBench's ``check_move``: True once ``count_num`` pair scores have exceeded ``thres``."""
    count = 0
    for value in pair_scores:
        if value > thres:
            count += 1
        if count >= count_num:
            return True
    return False


def stride_indices(n_frames: int, fps: float) -> list[int]:
    """VBench's frame selection from all frames: every ``round(fps/8)``-th frame (at least every frame)."""
    interval = max(1, int(round(fps / SAMPLE_FPS)))
    return list(range(0, n_frames, interval))


# ------------------------------------------------------------------------------------ evaluator
class DynamicDegree(RaftEvaluator):
    name = "dynamic_degree"
    version = "1"
    scores = (
        ScoreSpec(
            "dynamic_degree",
            higher_is_better=True,
            range=(0.0, 1.0),
            description="1.0 when enough ~8 fps frame pairs have large RAFT motion (VBench rule), else 0.0",
        ),
    )
    frames: FrameSpec = raft_frame_spec(DEFAULT_MAX_SIDE, sampling="all")
    reference = "Vchitect/VBench:vbench/dynamic_degree.py"
    description = (
        "VBench dynamic degree (per video 0 or 1: enough large RAFT motion). Deviation: torchvision raft_large "
        "weights instead of VBench's raft-things.pth (same architecture), frames resized to max_side"
    )
    options = raft_options(iters_default=20) + (
        Option(
            "sampling",
            "stride",
            "'fps': the engine's 8 fps sampling; 'stride': all frames, every round(fps/8)-th (VBench's rule)",
            choices=("fps", "stride"),
        ),
    )

    def frame_spec(self) -> FrameSpec:
        max_side = int(self.config["max_side"])
        if self.config["sampling"] == "stride":
            return raft_frame_spec(max_side, sampling="all")
        return raft_frame_spec(max_side, sampling="fps", fps=SAMPLE_FPS)

    def _sampled(self, sample: VideoSample) -> torch.Tensor:
        frames = sample.frames
        if self.config["sampling"] == "stride":
            frames = frames[stride_indices(int(frames.shape[0]), float(sample.fps))]
        return frames

    @torch.no_grad()
    def score(self, batch: Sequence[VideoSample]) -> dict[str, np.ndarray]:
        clips = [self._sampled(s) for s in batch]
        pair_scores: list[dict[int, float]] = [{} for _ in batch]
        sizes: dict[int, tuple[int, int]] = {}
        for pairs, a, _, fw, _ in self.pair_flows([s.video for s in batch], clips, backward=False):
            for (i, t), value in zip(pairs, top_fraction_mean(fw).double().cpu().tolist()):
                pair_scores[i][t] = value
                sizes[i] = (int(a.shape[-2]), int(a.shape[-1]))
        values = np.zeros(len(batch), dtype=np.float64)
        for i, frames in enumerate(clips):
            h, w = sizes[i]
            thres, count_num = vbench_params(h, w, int(frames.shape[0]))
            ordered = [pair_scores[i][t] for t in sorted(pair_scores[i])]
            values[i] = 1.0 if is_dynamic(ordered, thres, count_num) else 0.0
        return {"dynamic_degree": values}
