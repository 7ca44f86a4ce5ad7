"""open_clip backbones for the CLIP-family evaluators: loading checkpoints, embedding frames and prompts.

One ``ClipBackbone`` per (architecture, weight file, activation) serves every evaluator of a run that asks
for it (through ``SharedModels``): ``clip_score`` with ViT-L-14 and ``aesthetic`` embed each frame once.
Image embeddings are memoised per (video, frame view) until the engine finishes the chunk of videos;
text embeddings are memoised per prompt for the whole run.

Preprocessing is split between the decoder and this module. The decoder's ``FrameSpec`` resizes (and
crops or pads) to the model's input size on uint8 frames, as VBench's tensor transforms do; here frames
are scaled to [0, 1] and normalised with the model's mean and std (OpenAI's for every model used here).

Checkpoints are read with ``torch.load(weights_only=True)`` or safetensors, never unpickled freely.
Accepted layouts: an open_clip state dict (``open_clip_model.safetensors`` / ``open_clip_pytorch_model.bin``),
optionally wrapped as ``{"state_dict": ...}`` (the HPS checkpoints) and with DataParallel ``module.``
prefixes. OpenAI's TorchScript archives (``ViT-B-32.pt``) are refused with a pointer to the safetensors
copy on the Hugging Face hub, which holds the same tensors.
"""

from __future__ import annotations

import logging
import zipfile
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ContextManager, Sequence

import torch
import torch.nn.functional as F

from vbench_pref.errors import VbenchPrefError
from vbench_pref.evaluator import SharedModels, VideoSample
from vbench_pref.video import FrameSpec
from vbench_pref.weights import WeightSpec

OPENAI_LICENCE = "MIT (openai/CLIP)"

# open_clip's `openai` tags point at these timm copies of OpenAI's weights (open_clip/pretrained.py).
OPENAI_CLIP_WEIGHTS: dict[str, WeightSpec] = {
    "ViT-B-32": WeightSpec(
        name="clip-vit-b-32-openai",
        source="hf://timm/vit_base_patch32_clip_224.openai",
        filename="open_clip_model.safetensors",
        revision="a6f597a30f7b82c51704746581f9a4e41421e878",
        sha256="e6d1bd7789aa45192b3bf90570a789b478bae1b74ebcce7eddd908e83a2b7c31",
        licence=OPENAI_LICENCE,
        env_var="VBENCH_PREF_CLIP_VIT_B_32_WEIGHTS",
        description="OpenAI CLIP ViT-B/32 (open_clip ViT-B-32, QuickGELU)",
    ),
    "ViT-L-14": WeightSpec(
        name="clip-vit-l-14-openai",
        source="hf://timm/vit_large_patch14_clip_224.openai",
        filename="open_clip_model.safetensors",
        sha256="9ce2e8a8eb",  # published prefix; the full digest is checked against the hub's LFS hash
        licence=OPENAI_LICENCE,
        env_var="VBENCH_PREF_CLIP_VIT_L_14_WEIGHTS",
        description="OpenAI CLIP ViT-L/14 (open_clip ViT-L-14, QuickGELU)",
    ),
}


def arch_name(arch: str) -> str:
    """open_clip's name for ``arch``: a bundled name as is, or the stem of an architecture JSON file.

    A JSON file (open_clip's model-config format) registers a custom architecture; the tests use this for
    tiny models, and a user can score with any architecture open_clip can build.
    """
    path = Path(arch).expanduser()
    if arch.endswith(".json"):
        if not path.is_file():
            raise VbenchPrefError(f"architecture file {path} does not exist")
        import open_clip

        if open_clip.get_model_config(path.stem) is None:
            open_clip.add_model_config(path)
        return path.stem
    return arch


def model_config(arch: str) -> dict[str, Any]:
    """open_clip's architecture config (no weights, no I/O beyond the bundled JSON)."""
    import open_clip

    arch = arch_name(arch)
    config = open_clip.get_model_config(arch)
    if config is None:
        known = ", ".join(sorted(open_clip.list_models())[:8])
        raise VbenchPrefError(f"open_clip has no architecture {arch!r} (e.g. {known}, …)")
    return config


def image_size(arch: str) -> int:
    size = model_config(arch)["vision_cfg"]["image_size"]
    return int(size[0] if isinstance(size, (list, tuple)) else size)


def clip_frame_spec(
    size: int, num_frames: int = 0, resize: str = "short_side_crop", antialias: bool = False
) -> FrameSpec:
    """The frames a CLIP-family evaluator asks for: all (0) or ``num_frames`` evenly spaced, at input size."""
    if num_frames < 0:
        raise VbenchPrefError(f"num_frames must be 0 (all frames) or positive, got {num_frames}")
    sampling: dict[str, Any] = {"sampling": "all"} if num_frames == 0 else {"sampling": "count", "count": num_frames}
    return FrameSpec(**sampling, resize=resize, size=size, interpolation="bicubic", antialias=antialias)  # type: ignore[arg-type]


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of an open_clip-layout checkpoint file (see the module docstring for the layouts)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path), device="cpu")
    else:
        if _is_torchscript(path):
            raise VbenchPrefError(
                f"{path} is a TorchScript archive (OpenAI's original CLIP file), which is not loaded; use the "
                "open_clip_model.safetensors copy from hf://timm/vit_*_clip_224.openai (`vbench-pref weights pull`)"
            )
        from vbench_pref.torchload import load_weights_only

        state = load_weights_only(path, "checkpoint")
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state:
        raise VbenchPrefError(f"{path}: no state dict inside")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") or name.endswith("/code/__torch__.py") for name in archive.namelist())


def check_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor], arch: str, path: Path) -> None:
    """Refuse, in one line, a checkpoint whose tensor names or shapes are not those of ``arch``."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    # logit_scale is a 0-d tensor in open_clip and a 1-element one in some exports: same value.
    wrong = [
        k for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
        and not (k == "logit_scale" and state[k].numel() == expected[k].numel())
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} with other shapes (e.g. {k}: {tuple(state[k].shape)} vs {tuple(expected[k].shape)})")
        raise VbenchPrefError(f"{path} does not fit open_clip {arch}: tensors {'; '.join(parts)}")


def build_clip(arch: str, path: Path | None, quick_gelu: bool) -> torch.nn.Module:
    """open_clip ``arch`` in eval mode on the CPU, every tensor read from ``path``.

    ``path=None`` keeps open_clip's random initialisation, seeded so that smoke-test scores repeat.
    """
    import open_clip

    model_config(arch)
    state = read_state_dict(path) if path is not None else None
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # open_clip warns "initialized randomly" before we load the checkpoint
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = open_clip.create_model(arch, pretrained=None, force_quick_gelu=quick_gelu)
    finally:
        root.setLevel(level)
    if state is None or path is None:
        return model.eval().requires_grad_(False)
    check_state_dict(model, state, arch, path)
    if "logit_scale" in state:
        state["logit_scale"] = state["logit_scale"].reshape(model.logit_scale.shape)
    model.load_state_dict(state, strict=True)
    return model.eval().requires_grad_(False)


@dataclass(frozen=True)
class BackboneKey:
    arch: str
    weights: str  # the resolved file, or "random"
    quick_gelu: bool


class ClipBackbone:
    """One loaded open_clip model and its embedding memos, shared by the evaluators that use it."""

    def __init__(self, key: BackboneKey) -> None:
        self.key = key
        self.model = build_clip(key.arch, None if key.weights == "random" else Path(key.weights), key.quick_gelu)
        import open_clip

        self.tokenizer = open_clip.get_tokenizer(key.arch)
        cfg = getattr(self.model.visual, "preprocess_cfg", {}) or {}
        self.mean = torch.tensor(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg.get("std", open_clip.OPENAI_DATASET_STD)).view(1, 3, 1, 1)
        self.device = torch.device("cpu")
        self._images: dict[tuple[str, FrameSpec], torch.Tensor] = {}
        self._texts: dict[str, torch.Tensor] = {}
        self.frames_embedded = 0  # counts real encoder work (the shared-backbone saving is measured on it)

    @staticmethod
    def shared(shared: SharedModels | None, arch: str, weights: Path | None, quick_gelu: bool) -> ClipBackbone:
        key = BackboneKey(arch, "random" if weights is None else str(Path(weights).resolve()), quick_gelu)
        if shared is None:
            return ClipBackbone(key)
        return shared.get_or_create(("open_clip", key), lambda: ClipBackbone(key))

    def to(self, device: torch.device) -> None:
        if device != self.device:
            self.model.to(device)
            self.device = device
            self._texts.clear()  # memoised tensors live on the old device

    def clear_images(self) -> None:
        self._images.clear()

    def _autocast(self, dtype: torch.dtype) -> ContextManager[Any]:
        if dtype == torch.float32:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def encode_frames(self, frames: torch.Tensor, dtype: torch.dtype = torch.float32, frame_batch: int = 64) -> torch.Tensor:
        """L2-normalised float32 image embeddings of uint8 N x H x W x 3 frames already at input size."""
        out = []
        mean, std = self.mean.to(self.device), self.std.to(self.device)
        for start in range(0, frames.shape[0], frame_batch):
            x = frames[start : start + frame_batch].to(self.device, non_blocking=True)
            x = (x.permute(0, 3, 1, 2).float().div_(255.0) - mean) / std
            with torch.inference_mode(), self._autocast(dtype):
                features = self.model.encode_image(x)
            out.append(F.normalize(features.float(), dim=-1))
        self.frames_embedded += int(frames.shape[0])
        return torch.cat(out) if out else torch.zeros((0, 1), device=self.device)

    def video_embeddings(
        self, batch: Sequence[VideoSample], spec: FrameSpec, dtype: torch.dtype, frame_batch: int = 64
    ) -> list[torch.Tensor]:
        """Per video, its frames' embeddings (T x D); frames of all videos not yet memoised go in one pass."""
        todo = [s for s in batch if (s.video, spec) not in self._images]
        if todo:
            sizes = [int(s.frames.shape[0]) for s in todo]
            if min(sizes) == 0:
                raise VbenchPrefError(f"{todo[sizes.index(0)].video}: no frames to embed")
            embedded = self.encode_frames(torch.cat([s.frames for s in todo]), dtype, frame_batch)
            for sample, part in zip(todo, torch.split(embedded, sizes)):
                self._images[(sample.video, spec)] = part
        return [self._images[(s.video, spec)] for s in batch]

    def text_embeddings(self, prompts: Sequence[str], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """L2-normalised float32 embeddings of prompts (B x D), each unique prompt encoded once per run."""
        new = list(dict.fromkeys(p for p in prompts if p not in self._texts))
        if new:
            tokens = self.tokenizer(new).to(self.device)
            with torch.inference_mode(), self._autocast(dtype):
                features = self.model.encode_text(tokens)
            for prompt, row in zip(new, F.normalize(features.float(), dim=-1)):
                self._texts[prompt] = row
        return torch.stack([self._texts[p] for p in prompts])
