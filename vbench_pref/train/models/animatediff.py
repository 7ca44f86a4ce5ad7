"""AnimateDiff (SD-1.x UNet + motion modules): the UNet3D spec, but the text states go in once per frame.

``UNetMotionModel`` takes its sample as (B, C, F, H, W) like UNet3D, yet unlike ``UNet3DConditionModel`` it does
not repeat ``encoder_hidden_states`` over frames: ``AnimateDiffPipeline`` hands it states already repeated
with ``repeat_interleave(num_frames)``, one row per (video, frame), and so must training.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from vbench_pref.train.models.unet3d import UNet3DSpec


@dataclass(frozen=True)
class AnimateDiffSpec(UNet3DSpec):
    """Epsilon prediction for ``AnimateDiffPipeline``; everything but the text layout is UNet3D's."""

    family: str = field(default="animatediff", init=False)

    def _frame_conditions(self, encoder_hidden_states: torch.Tensor, frames: int) -> torch.Tensor:
        return encoder_hidden_states.repeat_interleave(frames, dim=0)


SPEC = AnimateDiffSpec()
