"""Split a batch of videos into forward passes by the number of tokens each one costs.

A Qwen-VL video costs ``T/2 * H/14 * W/14 / 4`` visual tokens (temporal patches x merged spatial patches),
so two videos of the same duration can differ tenfold in memory. A pass pads every sequence to its
longest, so its cost is (videos x longest); capping that, rather than the video count, keeps a pass within
memory whatever the sizes. A video over the cap alone is one pass.
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["qwen_visual_tokens", "token_batches"]


def qwen_visual_tokens(frames: int, height: int, width: int, patch: int = 14, merge: int = 2, temporal: int = 2) -> int:
    """Visual tokens a Qwen-VL language model receives for ``frames`` frames of ``height`` x ``width``."""
    grid_t = -(-frames // temporal)  # a trailing odd frame is padded to a full temporal patch
    return grid_t * (height // patch) * (width // patch) // (merge * merge)


def token_batches(costs: Sequence[int], budget: int) -> list[list[int]]:
    """Indices of ``costs`` grouped into passes whose padded cost (items x largest cost) stays within ``budget``.

    Items are taken in decreasing cost, so similar lengths share a pass and padding wastes little; an item
    costing more than ``budget`` forms a pass of its own.
    """
    if budget < 1:
        raise ValueError(f"the token budget must be at least 1, got {budget}")
    order = sorted(range(len(costs)), key=lambda i: -costs[i])
    passes: list[list[int]] = []
    for index in order:
        # the first item of a pass is its longest
        if passes and (len(passes[-1]) + 1) * costs[passes[-1][0]] <= budget:
            passes[-1].append(index)
        else:
            passes.append([index])
    return passes
