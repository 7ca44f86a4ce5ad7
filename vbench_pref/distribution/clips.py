"""Clips as the feature networks' preprocessing takes them: a (B, T, H, W, 3) batch or clips of any sizes."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from vbench_pref.errors import VbenchPrefError

Clips = torch.Tensor | Sequence[torch.Tensor]


def each_clip(videos: Clips, batch: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``batch`` applied to a (B, T, H, W, 3) tensor, or to each (T, H, W, 3) clip of a sequence (videos of a
    batch may differ in size) with the results concatenated."""
    if isinstance(videos, torch.Tensor):
        if videos.dim() != 5 or videos.shape[-1] != 3:
            raise VbenchPrefError(f"clips must be (batch, frames, height, width, 3), got {tuple(videos.shape)}")
        return batch(videos)
    if not videos:
        raise VbenchPrefError("no clips to preprocess")
    return torch.cat([each_clip(torch.as_tensor(v).unsqueeze(0), batch) for v in videos])
