"""VideoMAE-v2 ViT-g as content-debiased FVD uses it: a plain torch module, its preprocessing, its loader.

cd-fvd (content-debiased-fvd, Ge et al. 2024) replaces FVD's I3D logits by the features of a
self-supervised video transformer, which weigh motion more and per-frame content less. Its
``cdfvd/third_party/VideoMAEv2`` code defines what is ported here:

* Checkpoint: ``vit_g_hybrid_pt_1200e_ssv2_ft.pth`` (VideoMAE-v2 ViT-g/14 pre-trained on UnlabeledHybrid
  for 1200 epochs, fine-tuned on Something-Something v2, 174 classes), from the Hugging Face repo
  ``OpenGVLab/InternVideoMAE_models`` (``mae-g/``). The state dict sits under ``"model"`` or ``"module"``
  (cd-fvd takes the first present) or is flat.
* Network: ``vit_giant_patch14_224(num_classes=174, all_frames=16, tubelet_size=2, use_mean_pooling=True)``:
  a 3D patch embedding (2 x 14 x 14 tubelets, so 8 x 16 x 16 = 2048 tokens), fixed sinusoid position
  table (not in the checkpoint), 40 pre-norm blocks (1408 wide, 16 heads, MLP 6144, LayerNorm eps 1e-6,
  qkv with separate q and v biases and none for k), no class token.
* Features: ``forward_features``: the tokens' mean, then ``fc_norm``: 1408 values per clip, before the
  classifier head (which is kept only so that the checkpoint loads strictly).
* Input: :func:`preprocess_videomae` is cd-fvd's ``preprocess_videomae``: uint8 to float32 / 255, bilinear
  resize straight to 224 x 224 (``align_corners=False``, no antialiasing, no crop) and nothing else: no
  mean/std normalisation, although the model's ``default_cfg`` names mean = std = 0.5; cd-fvd feeds
  [0, 1] values, so its features (and reference statistics) are those of [0, 1] input.
  16 frames; other lengths interpolate the position table in time as the reference does.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from vbench_pref.distribution.checkpoints import checkpoint_path, load_strict, read_state
from vbench_pref.distribution.clips import Clips, each_clip
from vbench_pref.distribution.weights import VIDEOMAE_WEIGHTS
from vbench_pref.errors import VbenchPrefError

VIDEOMAE_FRAMES = 16
VIDEOMAE_SIZE = 224
VIDEOMAE_FEATURES = 1408
Size = Literal["full", "tiny"]


@dataclass(frozen=True)
class VideoMAEConfig:
    """Hyper-parameters of a VideoMAE-v2 ViT (defaults: the ViT-g/14 of ``vit_g_hybrid_pt_1200e_ssv2_ft``)."""

    embed_dim: int = 1408
    depth: int = 40
    num_heads: int = 16
    mlp_hidden: int = 6144  # int(1408 * 48 / 11)
    patch_size: int = 14
    tubelet_size: int = 2
    img_size: int = VIDEOMAE_SIZE
    frames: int = VIDEOMAE_FRAMES
    num_classes: int = 174
    ln_eps: float = 1e-6

    @property
    def grid(self) -> tuple[int, int, int]:
        """Tokens along (time, height, width) at the configured input."""
        side = self.img_size // self.patch_size
        return self.frames // self.tubelet_size, side, side


VIT_G = VideoMAEConfig()
# every path of the full network at a few thousand weights, at the full input size (2048 tokens)
VIT_TINY_TEST = VideoMAEConfig(embed_dim=32, depth=2, num_heads=2, mlp_hidden=139, num_classes=5)
CONFIGS: dict[str, VideoMAEConfig] = {"full": VIT_G, "tiny": VIT_TINY_TEST}


def sinusoid_table(positions: int, dim: int) -> torch.Tensor:
    """(1, positions, dim) float32 table: sin on even, cos on odd channels of ``pos / 10000^(2 (j // 2) / dim)``.

    Computed in float64 and rounded once, like the reference's numpy table.
    """
    pos = torch.arange(positions, dtype=torch.float64, device="cpu")[:, None]
    j = torch.arange(dim, dtype=torch.float64, device="cpu")
    angles = pos / torch.pow(torch.tensor(10000.0, dtype=torch.float64, device="cpu"), 2 * torch.div(j, 2, rounding_mode="floor") / dim)
    table = torch.where(torch.arange(dim, device="cpu") % 2 == 0, torch.sin(angles), torch.cos(angles))
    return table.to(torch.float32).unsqueeze(0)


class Attention(nn.Module):
    """Multi-head self-attention with a q and a v bias (k has none), scale head_dim^-0.5."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        q, k, v = F.linear(x, self.qkv.weight, bias).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, config: VideoMAEConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.embed_dim, eps=config.ln_eps)
        self.attn = Attention(config.embed_dim, config.num_heads)
        self.norm2 = nn.LayerNorm(config.embed_dim, eps=config.ln_eps)
        self.mlp = Mlp(config.embed_dim, config.mlp_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, config: VideoMAEConfig) -> None:
        super().__init__()
        kernel = (config.tubelet_size, config.patch_size, config.patch_size)
        self.proj = nn.Conv3d(3, config.embed_dim, kernel, stride=kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class VideoMAEv2(nn.Module):
    """VideoMAE-v2 ViT with the fine-tuned checkpoint's names (``patch_embed.proj``, ``blocks.i.attn.q_bias``,
    ``fc_norm``, ``head``). ``forward``: (B, 3, 16, 224, 224) in [0, 1] -> (B, 1408) features."""

    def __init__(self, config: VideoMAEConfig = VIT_G) -> None:
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbed(config)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        self.fc_norm = nn.LayerNorm(config.embed_dim, eps=config.ln_eps)
        self.head = nn.Linear(config.embed_dim, config.num_classes)
        # a fixed table, not a weight: built on the CPU even when the module is built on the meta device
        self.register_buffer("pos_embed", sinusoid_table(math.prod(config.grid), config.embed_dim), persistent=False)

    def position_table(self, frames: int) -> torch.Tensor:
        """The table for ``frames`` input frames: the 16-frame table, trilinearly stretched in time otherwise."""
        t, h, w = self.config.grid
        t_in = frames // self.config.tubelet_size
        if t_in == t:
            return self.pos_embed
        grid = self.pos_embed.permute(0, 2, 1).reshape(1, -1, t, h, w)
        # the reference's scale factor, with its +0.1 against floor rounding of the output size
        grid = F.interpolate(grid, scale_factor=((t_in + 0.1) / t, 1, 1), mode="trilinear")
        return grid.reshape(1, grid.shape[1], -1).permute(0, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) clips in [0, 1] at the configured size -> (B, embed_dim) features (``fc_norm`` of the
        mean token)."""
        size = self.config.img_size
        if x.dim() != 5 or x.shape[1] != 3 or tuple(x.shape[-2:]) != (size, size):
            raise VbenchPrefError(f"VideoMAE takes (batch, 3, frames, {size}, {size}) clips, got {tuple(x.shape)}")
        tokens = self.patch_embed(x)
        tokens = tokens + self.position_table(x.shape[2]).to(dtype=tokens.dtype, device=tokens.device)
        for block in self.blocks:
            tokens = block(tokens)
        return self.fc_norm(tokens.mean(1))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier's (SSv2: 174) logits; not used by FVD."""
        return self.head(self(x))


# --------------------------------------------------------------------------------------------- input
def preprocess_videomae(videos: Clips, *, size: int = VIDEOMAE_SIZE) -> torch.Tensor:
    """(B, T, H, W, 3) uint8 clips (or a sequence of (T, H, W, 3) clips of any sizes) -> (B, 3, T, size, size)
    float32 in [0, 1], as cd-fvd feeds VideoMAE: scaled to [0, 1] first, then bilinear straight to ``size`` x
    ``size`` without antialiasing; no mean/std."""
    return each_clip(videos, partial(_preprocess_videomae, size=size))


def _preprocess_videomae(videos: torch.Tensor, size: int) -> torch.Tensor:
    b, t, h, w, c = videos.shape
    frames = videos.reshape(b * t, h, w, c).permute(0, 3, 1, 2).to(torch.float32) / 255
    frames = F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    return frames.reshape(b, t, c, size, size).transpose(1, 2).contiguous()


# --------------------------------------------------------------------------------------------- weights
def config(size: Size = "full") -> VideoMAEConfig:
    if size not in CONFIGS:
        raise VbenchPrefError(f"unknown VideoMAE size {size!r}; known: {', '.join(CONFIGS)}")
    return CONFIGS[size]


def empty_videomae(size: Size = "full") -> VideoMAEv2:
    """The network on the meta device (its position table excepted): names and shapes only."""
    with torch.device("meta"):
        return VideoMAEv2(config(size))


def published_shapes(size: Size = "full") -> dict[str, tuple[int, ...]]:
    """Key -> shape of the checkpoint's state dict."""
    return {k: tuple(v.shape) for k, v in empty_videomae(size).state_dict().items()}


def load_videomae(path: str | os.PathLike[str] | None = None, *, size: Size = "full",
                  device: str | torch.device = "cpu") -> VideoMAEv2:
    """The network with every tensor read from the checkpoint (weights only, strict), float32, eval mode.

    ``path``: the file, or a folder holding it; None looks in the manifest's places
    (``VBENCH_PREF_VIDEOMAE_WEIGHTS``, the Hugging Face cache ``vbench-pref weights pull
    videomae-v2-g-ssv2-weights`` fills) and fails in one line when absent.
    """
    file = checkpoint_path(VIDEOMAE_WEIGHTS, path)
    state = read_state(file, "VideoMAE-v2 checkpoint", wrappers=("model", "module"))
    model = load_strict(empty_videomae(size), state, file, f"VideoMAE-v2 ({size})")
    return model.to(device)


def random_videomae(size: Size = "full", *, seed: int = 0, device: str | torch.device = "cpu") -> VideoMAEv2:
    """The network with seeded random weights (explicitly not the published weights), eval mode.

    Linear weights are drawn with std 0.02 as the reference initialises them, biases and norms are
    perturbed from zero and one so that every parameter matters.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = VideoMAEv2(config(size))  # drawn on the CPU: the same weights whatever the device
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("weight") and p.dim() > 1:
                    nn.init.normal_(p, std=0.02)
                elif "norm" in name and name.endswith("weight"):
                    nn.init.normal_(p, mean=1.0, std=0.1)
                else:
                    nn.init.normal_(p, std=0.02)
    return model.to(device).eval()


def write_random_videomae(path: str | os.PathLike[str], *, size: Size = "tiny", seed: int = 0,
                          wrapper: str | None = "module") -> dict[str, torch.Tensor]:
    """Save seeded random weights in the published file's layout (under ``wrapper``, or flat for None);
    returns the tensors saved."""
    from vbench_pref.atomic import atomic_path

    state = {k: v.detach().clone() for k, v in random_videomae(size, seed=seed).state_dict().items()}
    payload: object = {wrapper: state} if wrapper else state
    with atomic_path(os.fspath(path)) as tmp:
        torch.save(payload, tmp)
    return state
