"""The per-branch quality head of DOVER and FAST-VQA, and how its output map becomes one score.

Published as ``VQAHead``: Conv3d(in, hidden, 1) -> GELU -> Conv3d(hidden, 1, 1) applied at every
position of the backbone's feature map (names ``fc_hid``, ``fc_last``). Its two dropouts are identity at
inference and are left out. The score of a video is the mean of the map over positions and clips.
"""

from __future__ import annotations

import torch
from torch import nn


class VQAHead(nn.Module):
    """(N, C, T, H, W) features -> (N, 1, T, H, W) quality map."""

    def __init__(self, in_channels: int = 768, hidden_channels: int = 64) -> None:
        super().__init__()
        self.fc_hid = nn.Conv3d(in_channels, hidden_channels, kernel_size=1)
        self.gelu = nn.GELU()
        self.fc_last = nn.Conv3d(hidden_channels, 1, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_last(self.gelu(self.fc_hid(x)))


def pool_clips(maps: torch.Tensor, videos: int) -> torch.Tensor:
    """(videos * clips, 1, T, H, W) maps -> (videos,) scores: the mean over each video's clips and positions."""
    return maps.reshape(videos, -1).float().mean(1)
