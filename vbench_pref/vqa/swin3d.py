"""Video Swin-T with gated relative position bias: FAST-VQA's network, DOVER's technical branch.

The state-dict names and shapes are those of the published FAST-VQA / DOVER checkpoints
(``patch_embed``, ``layers.i.blocks.j.attn.relative_position_bias_table``, ...). What differs from a
plain Video Swin:

* **Gated relative position bias** (stages with ``frag_biases``): every stage sees its input as a grid of
  fragments, as many per side as the window has tokens; a token pair's bias is
  ``rpb * g + fpb * (1 - g)``, where ``g`` is the L1 distance between the two tokens' fragment coordinates
  (0 inside one fragment, so the pair gets the fragment table ``fpb``; 1 for neighbours; larger values
  extrapolate), ``rpb`` / ``fpb`` the two tables looked up by relative position.
* **Adaptive windows** (FAST-VQA, ``adaptive_window``): the window scales with the input against
  ``base_input`` and a smaller window reads the bias of its own sub-window. DOVER's copy keeps the
  window fixed and, when a window is cut to a small feature map, reads the first ``n`` rows and columns
  of the full window's index instead; both agree at the published 32x224x224 input.
* Shifted-window masking adds -100 (not -inf), and the shift of every stage stays half of the configured
  window even when the window adapts, as in the published code.

Attention runs through ``scaled_dot_product_attention`` with the bias and mask as one additive mask, on a
batch of clips at once; nothing is computed in float64, so it runs under autocast.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import torch
import torch.nn.functional as F
from torch import nn

from vbench_pref.errors import VbenchPrefError

Triple = tuple[int, int, int]

SHIFT_MASK_VALUE = -100.0  # the published mask value; pairs across a shifted seam keep a tiny weight


@dataclass(frozen=True)
class SwinConfig:
    """Hyper-parameters of a Video Swin with gated relative position bias (defaults: the published Swin-T)."""

    embed_dim: int = 96
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    patch_size: Triple = (2, 4, 4)
    window_size: Triple = (8, 7, 7)
    frag_biases: tuple[bool, ...] = (True, True, True, False)
    mlp_ratio: float = 4.0
    base_input: Triple = (32, 224, 224)  # (frames, height, width) the window size is meant for
    adaptive_window: bool = True  # FAST-VQA: True; DOVER's technical branch: False

    @property
    def num_features(self) -> int:
        return self.embed_dim * 2 ** (len(self.depths) - 1)


def relative_position_index(window: Triple) -> torch.Tensor:
    """(n, n) index into a ``(2wd-1)(2wh-1)(2ww-1)`` table for each token pair of one window."""
    coords = torch.stack(torch.meshgrid(*(torch.arange(w) for w in window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)  # n, n, 3: token i minus token j
    rel = rel + torch.tensor([w - 1 for w in window])
    strides = torch.tensor([(2 * window[1] - 1) * (2 * window[2] - 1), 2 * window[2] - 1, 1])
    return (rel * strides).sum(-1)


def fit_window(size: Triple, window: Triple, shift: Triple) -> tuple[Triple, Triple]:
    """Window and shift for a feature map of ``size``: an axis no longer than the window is one unshifted window."""
    fitted = [(s, 0) if s <= w else (w, sh) for s, w, sh in zip(size, window, shift)]
    return tuple(w for w, _ in fitted), tuple(sh for _, sh in fitted)  # type: ignore[return-value]


def window_partition(x: torch.Tensor, window: Triple) -> torch.Tensor:
    """(B, D, H, W, C) -> (B * windows, tokens per window, C), windows in (d, h, w) order within each batch item."""
    b, d, h, w, c = x.shape
    x = x.view(b, d // window[0], window[0], h // window[1], window[1], w // window[2], window[2], c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, prod(window), c)


def window_merge(windows: torch.Tensor, window: Triple, b: int, size: Triple) -> torch.Tensor:
    """Inverse of ``window_partition``."""
    d, h, w = size
    x = windows.view(b, d // window[0], h // window[1], w // window[2], *window, -1)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, d, h, w, -1)


def fragment_gate(padded: Triple, window: Triple, shift: Triple, device: torch.device) -> torch.Tensor:
    """(windows, n, n): L1 distance between the fragment coordinates of each token pair of each window.

    The map is cut into 1 x window_h x window_w fragments, each token taking its fragment by nearest
    interpolation as the published code does, then rolled and partitioned like the features.
    """
    axes = []
    for frags, length in zip((1, window[1], window[2]), padded):
        grid = torch.arange(frags, dtype=torch.float32, device=device).view(1, 1, frags)
        axes.append(F.interpolate(grid, size=length, mode="nearest").view(length).long())
    coords = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1)[None]  # 1, D, H, W, 3
    coords = torch.roll(coords, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
    win = window_partition(coords, window)  # windows, n, 3
    return (win[:, None, :, :] - win[:, :, None, :]).abs().sum(-1).float()  # small integers, exact in float32


def shift_mask(padded: Triple, window: Triple, shift: Triple, device: torch.device) -> torch.Tensor:
    """(windows, n, n): 0 for token pairs from one region of the rolled map, -100 across regions."""
    regions = torch.zeros(padded, device=device)
    label = 0
    slices = [(slice(-w), slice(-w, -s), slice(-s, None)) for w, s in zip(window, shift)]
    for sd in slices[0]:
        for sh in slices[1]:
            for sw in slices[2]:
                regions[sd, sh, sw] = label
                label += 1
    win = window_partition(regions[None, ..., None], window).squeeze(-1)
    diff = win[:, None, :] - win[:, :, None]
    return torch.where(diff != 0, SHIFT_MASK_VALUE, 0.0)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class WindowAttention3D(nn.Module):
    """Multi-head self-attention inside windows, with the (gated) relative position bias."""

    def __init__(self, dim: int, window: Triple, num_heads: int, frag_bias: bool, adaptive: bool) -> None:
        super().__init__()
        self.window = window
        self.num_heads = num_heads
        self.adaptive = adaptive
        table = (2 * window[0] - 1) * (2 * window[1] - 1) * (2 * window[2] - 1)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(table, num_heads))
        if frag_bias:
            self.fragment_position_bias_table = nn.Parameter(torch.zeros(table, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    @property
    def gated(self) -> bool:
        return hasattr(self, "fragment_position_bias_table")

    def bias_index(self, window: Triple) -> torch.Tensor:
        n = prod(window)
        index = self.relative_position_index
        if not self.adaptive:
            return index[:n, :n]
        if any(w > full for w, full in zip(window, self.window)):
            raise VbenchPrefError(f"input too large for the window {self.window}: it would need {window}")
        d, h, w = window
        return index.view(*self.window, *self.window)[:d, :h, :w, :d, :h, :w].reshape(n, n)

    def attention_mask(self, window: Triple, gate: torch.Tensor | None, shifted: torch.Tensor | None) -> torch.Tensor:
        """Additive (windows or 1, heads, n, n) mask: position bias, plus the shift mask where shifted."""
        n = prod(window)
        index = self.bias_index(window).reshape(-1)
        bias = self.relative_position_bias_table[index].view(n, n, -1).permute(2, 0, 1)[None]
        if self.gated and gate is not None:
            frag = self.fragment_position_bias_table[index].view(n, n, -1).permute(2, 0, 1)[None]
            # rpb * g + fpb * (1 - g), with one (windows, heads, n, n) tensor instead of three
            bias = (gate[:, None].to(bias.dtype) * (bias - frag)).add_(frag)
        if shifted is not None:
            bias = bias + shifted[:, None].to(bias.dtype)
        return bias

    def forward(self, x: torch.Tensor, batch: int, mask: torch.Tensor) -> torch.Tensor:
        """x: (batch * windows, n, C); mask: (windows or 1, heads, n, n)."""
        bw, n, c = x.shape
        windows = bw // batch
        qkv = self.qkv(x).view(batch, windows, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(3, 0, 1, 4, 2, 5).flatten(2, 3).unbind(0)  # batch, windows*heads, n, hd
        mask = mask.expand(windows, -1, -1, -1).reshape(1, windows * self.num_heads, n, n).to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = out.view(batch, windows, self.num_heads, n, -1).transpose(2, 3).reshape(bw, n, c)
        return self.proj(out)


class SwinBlock3D(nn.Module):
    def __init__(self, dim: int, num_heads: int, window: Triple, shifted: bool, config: SwinConfig, frag_bias: bool) -> None:
        super().__init__()
        self.shift: Triple = tuple(w // 2 for w in window) if shifted else (0, 0, 0)  # type: ignore[assignment]
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention3D(dim, window, num_heads, frag_bias, config.adaptive_window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratio))

    def forward(self, x: torch.Tensor, window: Triple, masks: dict) -> torch.Tensor:
        b, d, h, w, c = x.shape
        # the shift stays half the configured window even when the window adapts to the input
        window, shift = fit_window((d, h, w), window, self.shift)
        y = self.norm1(x)
        pads = [(-s) % ws for s, ws in zip((d, h, w), window)]
        y = F.pad(y, (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))  # padded after the norm: zero tokens
        padded = tuple(s + p for s, p in zip((d, h, w), pads))
        if any(shift):
            y = torch.roll(y, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
        mask = self.attn.attention_mask(window, *masks_for(masks, padded, window, shift, y.device))
        y = window_merge(self.attn(window_partition(y, window), b, mask), window, b, padded)
        if any(shift):
            y = torch.roll(y, shifts=shift, dims=(1, 2, 3))
        x = x + y[:, :d, :h, :w]
        return x + self.mlp(self.norm2(x))


def masks_for(cache: dict, padded: Triple, window: Triple, shift: Triple,
              device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Fragment gate and shift mask of one geometry, computed once per forward pass."""
    key = (padded, window, shift)
    if key not in cache:
        cache[key] = (fragment_gate(padded, window, shift, device),
                      shift_mask(padded, window, shift, device) if any(shift) else None)
    return cache[key]


class PatchMerging(nn.Module):
    """2x2 spatial merge: (B, D, H, W, C) -> (B, D, H/2, W/2, 2C)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:4]
        x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat([x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x))


class SwinStage(nn.Module):
    def __init__(self, dim: int, depth: int, num_heads: int, config: SwinConfig, frag_bias: bool, merge: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinBlock3D(dim, num_heads, config.window_size, i % 2 == 1, config, frag_bias) for i in range(depth)
        )
        self.downsample = PatchMerging(dim) if merge else None

    def forward(self, x: torch.Tensor, window: Triple) -> torch.Tensor:
        masks: dict = {}
        for block in self.blocks:
            x = block(x, window, masks)
        return self.downsample(x) if self.downsample is not None else x


class PatchEmbed3D(nn.Module):
    def __init__(self, patch: Triple, dim: int) -> None:
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv3d(3, dim, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> (B, T', H', W', C), the input zero-padded to whole patches."""
        pads = [(-s) % p for s, p in zip(x.shape[2:], self.patch)]
        x = F.pad(x, (0, pads[2], 0, pads[1], 0, pads[0]))
        return self.norm(self.proj(x).permute(0, 2, 3, 4, 1))


class VideoSwin3D(nn.Module):
    """(B, 3, T, H, W) normalised clips -> (B, C, T/2, H/32, W/32) features."""

    def __init__(self, config: SwinConfig) -> None:
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbed3D(config.patch_size, config.embed_dim)
        last = len(config.depths) - 1
        self.layers = nn.ModuleList(
            SwinStage(config.embed_dim * 2**i, depth, heads, config, bool(frag), merge=i < last)
            for i, (depth, heads, frag) in enumerate(zip(config.depths, config.num_heads, config.frag_biases))
        )
        self.norm = nn.LayerNorm(config.num_features)

    def window_for(self, input_size: Triple) -> Triple:
        """The window every stage starts from: scaled with the input when ``adaptive_window``."""
        c = self.config
        if not c.adaptive_window:
            return c.window_size
        return tuple((w * s) // b for w, s, b in zip(c.window_size, input_size, c.base_input))  # type: ignore[return-value]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        window = self.window_for(tuple(x.shape[2:]))
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x, window)
        return self.norm(x).permute(0, 4, 1, 2, 3)
