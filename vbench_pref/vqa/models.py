"""DOVER, DOVER-Mobile and FAST-VQA / FasterVQA as whole networks, and their published checkpoint files.

Each family is a set of named branches (a backbone and a head each); a network takes its views by branch
name and returns one raw score per video by branch name, so that fusion never depends on the order in
which a checkpoint or a caller lists the branches.

Published files (torch pickles of tensors; read here with ``weights_only=True``):

* ``DOVER.pth``, ``DOVER-Mobile.pth``: a flat state dict, ``technical_backbone.*``, ``aesthetic_backbone.*``,
  ``technical_head.*``, ``aesthetic_head.*`` (loaded by DOVER's ``evaluate_one_video.py`` as is).
  ``DOVER_plus_plus.pth`` has DOVER's network; its trainer saves ``{"state_dict": ..., ...}``.
* ``FAST_VQA_B_1_4.pth``, ``FAST_VQA_3D_1_1.pth`` (FasterVQA): ``{"state_dict": {...}}`` with
  ``fragments_backbone.*`` and one ``vqa_head.*``. Both are the same network; FasterVQA differs in the
  views it is fed (32 frames as 8 fragments of 4, one clip).

Either wrapping is accepted for every family; the tensors inside must match the family exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from vbench_pref.errors import VbenchPrefError
from vbench_pref.vqa.convnext3d import ConvNeXt3D, ConvNeXtConfig
from vbench_pref.vqa.heads import VQAHead, pool_clips
from vbench_pref.vqa.swin3d import SwinConfig, VideoSwin3D

Size = Literal["full", "tiny"]
Layout = Literal["flat", "state_dict"]

CONVNEXT_TINY = ConvNeXtConfig()
CONVNEXT_V2_FEMTO = ConvNeXtConfig(depths=(2, 2, 6, 2), dims=(48, 96, 192, 384), version=2, classifier=1000)
# Small stand-ins for tests and smoke runs: every code path of the full networks at a few thousand weights.
# The Swin keeps the published views' size as its base input, so FAST-VQA's adaptive window takes the views
# the evaluators build (32 x 224 x 224) at the tiny window itself, and smaller inputs at a sub-window.
SWIN_TINY_TEST = SwinConfig(embed_dim=8, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), window_size=(2, 4, 4))
CONVNEXT_TINY_TEST = ConvNeXtConfig(depths=(1, 1, 3, 1), dims=(8, 16, 24, 32))
CONVNEXT_V2_TINY_TEST = replace(CONVNEXT_TINY_TEST, version=2, classifier=10)

# DOVER's overall score: a logistic of the two standardised branch scores, constants fitted on KoNViD-1k.
DOVER_FUSION = {"technical": (0.1107, 0.07355, 0.6104), "aesthetic": (-0.08285, 0.03774, 0.3896)}


Backbone = VideoSwin3D | ConvNeXt3D
BackboneConfig = SwinConfig | ConvNeXtConfig


def build_backbone(config: BackboneConfig) -> Backbone:
    return VideoSwin3D(config) if isinstance(config, SwinConfig) else ConvNeXt3D(config)


@dataclass(frozen=True)
class BranchConfig:
    """One branch: the view it reads (also its output name), its backbone, its head's width, its key prefixes."""

    name: str
    backbone: BackboneConfig
    head_hidden: int
    backbone_key: str
    head_key: str


class VQANetwork(nn.Module):
    """Branches registered under their checkpoint prefixes; ``forward`` maps views to raw scores by name."""

    def __init__(self, branches: Sequence[BranchConfig]) -> None:
        super().__init__()
        self.branches = tuple(branches)
        for b in self.branches:
            backbone = build_backbone(b.backbone)
            self.add_module(b.backbone_key, backbone)
            self.add_module(b.head_key, VQAHead(b.backbone.num_features, b.head_hidden))

    @property
    def branch_names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.branches)

    def branch_maps(self, name: str, clips: torch.Tensor) -> torch.Tensor:
        """(N, 3, T, H, W) normalised clips of branch ``name`` -> (N, 1, t, h, w) quality maps."""
        branch = next(b for b in self.branches if b.name == name)
        return getattr(self, branch.head_key)(getattr(self, branch.backbone_key)(clips))

    def forward(self, views: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``views[name]``: (videos, clips, 3, T, H, W) -> {name: (videos,) raw scores} for every branch.

        All clips of all videos of a branch go through the backbone as one batch.
        """
        if set(views) != set(self.branch_names):
            raise VbenchPrefError(f"views {sorted(views)} do not match the branches {sorted(self.branch_names)}")
        scores = {}
        for name in self.branch_names:
            v = views[name]
            if v.dim() != 6:
                raise VbenchPrefError(f"view {name!r} must be (videos, clips, 3, T, H, W), got {tuple(v.shape)}")
            scores[name] = pool_clips(self.branch_maps(name, v.flatten(0, 1)), v.shape[0])
        return scores


def dover_branches(technical: BackboneConfig, aesthetic: BackboneConfig, head_hidden: int) -> list[BranchConfig]:
    return [BranchConfig(name, cfg, head_hidden, f"{name}_backbone", f"{name}_head")
            for name, cfg in (("technical", technical), ("aesthetic", aesthetic))]


def fast_vqa_branches(backbone: SwinConfig, head_hidden: int) -> list[BranchConfig]:
    return [BranchConfig("fragments", backbone, head_hidden, "fragments_backbone", "vqa_head")]


@dataclass(frozen=True)
class Family:
    """A published checkpoint family: its branches at full and test size, and its file's wrapping."""

    name: str
    file: str
    layout: Layout
    branches: Callable[[Size], list[BranchConfig]] = field(repr=False)


def _dover(size: Size) -> list[BranchConfig]:
    # DOVER's Swin keeps its window fixed (its forward's adaptive_window_size defaults to False)
    if size == "tiny":
        return dover_branches(replace(SWIN_TINY_TEST, adaptive_window=False), CONVNEXT_TINY_TEST, 4)
    return dover_branches(SwinConfig(adaptive_window=False), CONVNEXT_TINY, 64)


def _dover_mobile(size: Size) -> list[BranchConfig]:
    cfg = CONVNEXT_V2_TINY_TEST if size == "tiny" else CONVNEXT_V2_FEMTO
    return dover_branches(cfg, cfg, 4 if size == "tiny" else 32)


def _fast_vqa(size: Size) -> list[BranchConfig]:
    return fast_vqa_branches(SWIN_TINY_TEST, 4) if size == "tiny" else fast_vqa_branches(SwinConfig(), 64)


FAMILIES: dict[str, Family] = {
    "dover": Family("dover", "DOVER.pth", "flat", _dover),
    "dover_plus_plus": Family("dover_plus_plus", "DOVER_plus_plus.pth", "state_dict", _dover),
    "dover_mobile": Family("dover_mobile", "DOVER-Mobile.pth", "flat", _dover_mobile),
    "fast_vqa_b": Family("fast_vqa_b", "FAST_VQA_B_1_4.pth", "state_dict", _fast_vqa),
    "faster_vqa": Family("faster_vqa", "FAST_VQA_3D_1_1.pth", "state_dict", _fast_vqa),
}


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise VbenchPrefError(f"unknown VQA network {name!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def empty_network(name: str, size: Size = "full") -> VQANetwork:
    """The network on the meta device: names and shapes only, no memory."""
    with torch.device("meta"):
        return VQANetwork(family(name).branches(size))


def expected_shapes(name: str, size: Size = "full") -> dict[str, tuple[int, ...]]:
    """Key -> shape of the family's checkpoint tensors."""
    return {k: tuple(v.shape) for k, v in empty_network(name, size).state_dict().items()}


def randomize_(model: nn.Module, seed: int) -> nn.Module:
    """Seeded random weights that exercise every path (gated biases, layer scale, GRN), in place.

    Layer scale starts at 1e-6 and GRN at zero in the published initialisation, which would make those
    blocks near-identities; here they get values of order one tenth, and the two bias tables differ.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Conv3d, nn.LayerNorm)):
                module.reset_parameters()
        for key, p in model.named_parameters():
            leaf = key.rsplit(".", 1)[-1]
            if leaf.endswith("bias_table"):
                nn.init.normal_(p, std=0.5)
            elif leaf in ("gamma", "beta"):
                nn.init.normal_(p, mean=0.1 if leaf == "gamma" else 0.0, std=0.1)
    return model


def random_network(name: str, size: Size = "full", *, seed: int = 0, device: str | torch.device = "cpu") -> VQANetwork:
    """The family's network with seeded random weights, in eval mode (explicitly not the published weights)."""
    with torch.device(device):
        model = VQANetwork(family(name).branches(size))
    return channels_last_convnext(randomize_(model, seed)).eval()


def channels_last_convnext(model: nn.Module) -> nn.Module:
    """The ConvNeXt branches' Conv3d weights in channels-last-3d layout: the same values, and the (depthwise)
    convolutions, the LayerNorms after them and the residual adds then run on channel-last tensors without
    copies (~8% faster for DOVER-Mobile on the CPU)."""
    for module in model.modules():
        if isinstance(module, ConvNeXt3D):
            for conv in module.modules():
                if isinstance(conv, nn.Conv3d):
                    conv.weight.data = conv.weight.data.contiguous(memory_format=torch.channels_last_3d)
    return model


def checkpoint_state(raw: object, path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a loaded checkpoint, flat or under ``"state_dict"``."""
    if isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict):
        raw = raw["state_dict"]
    if not isinstance(raw, dict) or not raw or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise VbenchPrefError(f"{path}: not a state dict of tensors (flat or under 'state_dict')")
    return raw


def describe_mismatch(expected: Mapping[str, tuple[int, ...]], got: Mapping[str, torch.Tensor], shown: int = 3) -> str | None:
    """The first few missing, unexpected and wrongly shaped tensors, in one line; None when they match."""
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    shapes = [f"{k} {tuple(got[k].shape)} not {expected[k]}" for k in expected if k in got and tuple(got[k].shape) != expected[k]]
    parts = [f"{len(items)} {what} ({', '.join(items[:shown])}{', ...' if len(items) > shown else ''})"
             for what, items in (("missing", missing), ("unexpected", unexpected), ("with other shapes", shapes)) if items]
    return "; ".join(parts) or None


def load_network(name: str, path: Path, *, size: Size = "full", device: str | torch.device = "cpu") -> VQANetwork:
    """The family's network with every tensor read from ``path`` (weights only, strict), float32, eval mode."""
    from vbench_pref.torchload import load_weights_only

    state = checkpoint_state(load_weights_only(Path(path), f"{name} checkpoint"), Path(path))
    model = empty_network(name, size)
    problem = describe_mismatch({k: tuple(v.shape) for k, v in model.state_dict().items()}, state)
    if problem:
        raise VbenchPrefError(f"{path} is not a {name} checkpoint: tensors {problem}")
    model.load_state_dict(state, strict=True, assign=True)
    return channels_last_convnext(model.to(device=device, dtype=torch.float32)).eval()


def ordered_state(model: VQANetwork, branch_order: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """The model's state dict with each branch's tensors grouped, branches in ``branch_order``."""
    order = list(branch_order) if branch_order is not None else list(model.branch_names)
    if sorted(order) != sorted(model.branch_names):
        raise VbenchPrefError(f"branch order {order} does not name the branches {list(model.branch_names)}")
    state = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for name in order:
        branch = next(b for b in model.branches if b.name == name)
        for prefix in (f"{branch.backbone_key}.", f"{branch.head_key}."):
            out.update({k: v.detach().clone() for k, v in state.items() if k.startswith(prefix)})
    return out


def write_random_checkpoint(name: str, path: Path, *, size: Size = "tiny", seed: int = 0,
                            branch_order: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """Save seeded random weights in the family's published layout at ``path``; returns the tensors saved.

    ``branch_order`` lists the branches' tensors in that order in the file, to check that nothing
    downstream depends on the order.
    """
    from vbench_pref.atomic import atomic_path

    state = ordered_state(random_network(name, size, seed=seed), branch_order)
    payload: object = {"state_dict": state} if family(name).layout == "state_dict" else state
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return state


def dover_overall(scores: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """DOVER's fused 0-1 score from raw branch scores, looked up by name (never by position)."""
    logit = sum(weight * (scores[name] - mean) / std for name, (mean, std, weight) in DOVER_FUSION.items())
    return torch.sigmoid(logit)
