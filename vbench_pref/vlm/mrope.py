"""Qwen2.5-VL's multimodal rotary positions as the checkpoints were trained with (transformers 4.4x-4.5x).

Qwen2.5-VL gives each token three position ids (time, height, width). Text tokens count up by one on all
three; a video's tokens take ``start + (t * tokens_per_second * second_per_grid_t, h, w)`` over its
(temporal, merged height, merged width) grid, and the text after a video starts at one past the **largest
id used so far** -- for a long video that is the last temporal id, not the grid side.

transformers 5 restarts the text after a vision block at ``start + max(grid_h, grid_w)``, ignoring the
temporal extent. For a video whose ``(T - 1) * interval`` exceeds its merged grid side (at 2 fps and
336 x 336 frames: longer than about 6 s) every later token then sits at a position the model never saw in
training, and the answer changes. ``use_trained_rope`` gives a loaded model the trained rule back; it
changes nothing else.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["trained_rope_index", "use_trained_rope"]


def trained_rope_index(
    input_ids: torch.Tensor,
    mm_token_type_ids: torch.Tensor,
    image_grid_thw: torch.Tensor | None,
    video_grid_thw: torch.Tensor | None,
    second_per_grid_ts: torch.Tensor | list[float] | None,
    attention_mask: torch.Tensor | None,
    spatial_merge_size: int,
    tokens_per_second: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(position ids 3 x B x L, deltas B x 1) under the trained rule; padding (mask 0) gets position 0.

    ``mm_token_type_ids`` marks text (0), image (1) and video (2) tokens; consecutive tokens of one kind
    form one block, in the order the grids are given. The delta is what generation adds to a new token's
    index among the unpadded tokens to get its position (the largest id + 1 - the unpadded length).
    """
    batch, length = input_ids.shape
    device = input_ids.device
    positions = torch.zeros(3, batch, length, dtype=torch.long, device=device)
    grids = {1: iter(image_grid_thw.tolist()) if image_grid_thw is not None else iter(()),
             2: iter(video_grid_thw.tolist()) if video_grid_thw is not None else iter(())}
    seconds = iter([float(s) for s in second_per_grid_ts] if second_per_grid_ts is not None else ())
    deltas = []
    for row in range(batch):
        keep = attention_mask[row].bool() if attention_mask is not None else torch.ones(length, dtype=torch.bool, device=device)
        kinds = mm_token_type_ids[row][keep].tolist()
        pieces: list[torch.Tensor] = []
        next_id = 0
        start = 0
        while start < len(kinds):
            kind = kinds[start]
            end = start
            while end < len(kinds) and kinds[end] == kind:
                end += 1
            if kind == 0:
                pieces.append(torch.arange(end - start, device=device).expand(3, -1) + next_id)
            else:
                t, h, w = next(grids[kind])
                h, w = h // spatial_merge_size, w // spatial_merge_size
                interval = tokens_per_second * (next(seconds, 1.0) if kind == 2 else 0.0)
                times = (torch.arange(t, device=device, dtype=torch.float64) * interval).long()
                grid = torch.stack(torch.meshgrid(times, torch.arange(h, device=device), torch.arange(w, device=device),
                                                  indexing="ij")).reshape(3, -1)
                if grid.shape[1] != end - start:
                    raise ValueError(f"a vision block of {end - start} tokens does not match its grid {t}x{h}x{w}")
                pieces.append(grid + next_id)
            next_id = int(pieces[-1].max()) + 1
            start = end
        ids = torch.cat(pieces, dim=1)
        positions[:, row, keep] = ids
        deltas.append(next_id - len(kinds))
    return positions, torch.tensor(deltas, device=device).unsqueeze(1)


def use_trained_rope(model: Any) -> None:
    """Give a loaded ``Qwen2_5_VLForConditionalGeneration`` the trained position rule (in place)."""
    inner = model.model
    vision = model.config.vision_config

    def get_rope_index(input_ids: torch.Tensor, mm_token_type_ids: torch.Tensor, image_grid_thw: torch.Tensor | None = None,
                       video_grid_thw: torch.Tensor | None = None, second_per_grid_ts: torch.Tensor | None = None,
                       attention_mask: torch.Tensor | None = None, **_: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return trained_rope_index(input_ids, mm_token_type_ids, image_grid_thw, video_grid_thw, second_per_grid_ts,
                                  attention_mask, vision.spatial_merge_size, vision.tokens_per_second)

    inner.get_rope_index = get_rope_index
