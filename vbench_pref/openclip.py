"""open_clip backbones for the CLIP-family evaluators: loading checkpoints, embedding frames and prompts.

One ``ClipBackbone`` per (architecture, weight file, activation) serves every evaluator of a run that asks
for it (through ``SharedModels``): ``clip_score`` with ViT-L-14 and ``aesthetic`` embed each frame once.
Image embeddings are memoised per (video, frame view) until the engine finishes the chunk of videos;
text embeddings are memoised per prompt for the whole run.

Preprocessing is split between the decoder and this module. The decoder's ``FrameSpec`` resizes (and
crops or pads) to the model's input size exactly as each evaluator's reference does (uint8 through PIL,
or float without rounding or clamping); here uint8 frames are scaled to [0, 1] (float frames already
are) and normalised with the model's mean and std (OpenAI's for every model used here). Frames are taken
a batch at a time, from a ``FrameView`` when the engine passes one, so a long video's float view never
exists whole.

Precision (``Compute``): float32, autocast around the forward pass, or OpenAI CLIP's float16 layout
(linear, convolution and attention weights in float16, LayerNorm computed in float32), which is how
OpenAI's ``clip.load`` (and so VBench) runs on a GPU.

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
from typing import Any, ContextManager, Iterator, Sequence

import torch
import torch.nn.functional as F

from vbench_pref.errors import VbenchPrefError
from vbench_pref.evaluator import SharedModels, VideoSample
from vbench_pref.video import FrameSpec, FrameView
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
    size: int,
    num_frames: int = 0,
    resize: str = "short_side_crop",
    antialias: bool = False,
    pixels: str = "float_0_255",
    resampler: str = "torch",
) -> FrameSpec:
    """The frames a CLIP-family evaluator asks for: all (0) or ``num_frames`` evenly spaced, at input size.

    The defaults are VBench's ``clip_transform`` on ``load_video``'s float frames: bicubic without
    antialiasing on 0-255 floats, unclamped. A PIL view (``resampler="pil"``) is uint8 and antialiased.
    """
    if num_frames < 0:
        raise VbenchPrefError(f"num_frames must be 0 (all frames) or positive, got {num_frames}")
    sampling: dict[str, Any] = {"sampling": "all"} if num_frames == 0 else {"sampling": "count", "count": num_frames}
    if resampler == "pil":
        pixels, antialias = "uint8", True
    return FrameSpec(**sampling, resize=resize, size=size, interpolation="bicubic", antialias=antialias,  # type: ignore[arg-type]
                     pixels=pixels, resampler=resampler)  # type: ignore[arg-type]


PRECISIONS = ("run", "reference", "float32")


@dataclass(frozen=True)
class Compute:
    """How a backbone computes: OpenAI CLIP's float16 weights, or float32 weights with an optional autocast."""

    half_weights: bool = False
    autocast: torch.dtype | None = None

    def describe(self) -> str:
        if self.half_weights:
            return "float16 weights (OpenAI CLIP layout, LayerNorm in float32)"
        if self.autocast is None:
            return "float32"
        return f"float32 weights, {str(self.autocast).removeprefix('torch.')} autocast"


def resolve_compute(precision: str, reference: str, device: torch.device, run_dtype: torch.dtype) -> Compute:
    """What ``precision`` means on ``device``.

    - ``float32``: float32 everywhere.
    - ``run``: the run's ``--dtype`` as autocast (float32: none).
    - ``reference``: as the reference runs on this device. ``reference="openai_clip"`` (VBench, through
      OpenAI's ``clip.load``): float16 weights on any device but the CPU, where ``clip.load`` converts the
      model to float32. ``reference="cuda_amp"`` (HPSv2: ``torch.cuda.amp.autocast()``): float16 autocast on
      CUDA, float32 elsewhere (that autocast does nothing off CUDA).
    """
    if precision not in PRECISIONS:
        raise VbenchPrefError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "float32":
        return Compute()
    if precision == "run":
        return Compute(autocast=None if run_dtype == torch.float32 else run_dtype)
    if reference == "openai_clip":
        return Compute(half_weights=device.type != "cpu")
    if reference == "cuda_amp":
        return Compute(autocast=torch.float16 if device.type == "cuda" else None)
    raise ValueError(f"unknown reference precision {reference!r}")


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


def build_clip(arch: str, path: Path | None, quick_gelu: bool, half_weights: bool = False) -> torch.nn.Module:
    """open_clip ``arch`` in eval mode on the CPU, every tensor read from ``path``.

    ``path=None`` keeps open_clip's random initialisation, seeded so that smoke-test scores repeat.
    ``half_weights``: open_clip's "fp16" precision, its copy of OpenAI's ``convert_weights`` (LayerNorm
    kept in float32 and computed in float32).
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
            model = open_clip.create_model(
                arch, pretrained=None, force_quick_gelu=quick_gelu, precision="fp16" if half_weights else "fp32"
            )
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
    half_weights: bool = False


class ClipBackbone:
    """One loaded open_clip model and its embedding memos, shared by the evaluators that use it."""

    def __init__(self, key: BackboneKey) -> None:
        self.key = key
        self.model = build_clip(
            key.arch, None if key.weights == "random" else Path(key.weights), key.quick_gelu, key.half_weights
        )
        import open_clip

        self.tokenizer = open_clip.get_tokenizer(key.arch)
        cfg = getattr(self.model.visual, "preprocess_cfg", {}) or {}
        self.mean = torch.tensor(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg.get("std", open_clip.OPENAI_DATASET_STD)).view(1, 3, 1, 1)
        self.device = torch.device("cpu")
        # raw features (not normalised: some references normalise in float16), per view and autocast
        self._images: dict[tuple[str, FrameSpec, torch.dtype | None], torch.Tensor] = {}
        self._texts: dict[tuple[str, torch.dtype | None], torch.Tensor] = {}
        self.frames_embedded = 0  # counts real encoder work (the shared-backbone saving is measured on it)

    @staticmethod
    def shared(
        shared: SharedModels | None, arch: str, weights: Path | None, quick_gelu: bool, half_weights: bool = False
    ) -> ClipBackbone:
        key = BackboneKey(arch, "random" if weights is None else str(Path(weights).resolve()), quick_gelu, half_weights)
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

    def _autocast(self, dtype: torch.dtype | None) -> ContextManager[Any]:
        if dtype is None or dtype == torch.float32:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _check(self, compute: Compute) -> None:
        if compute.half_weights != self.key.half_weights:
            raise ValueError(f"this backbone has {'float16' if self.key.half_weights else 'float32'} weights, "
                             f"asked to compute with {compute.describe()}")

    def encode_frames(
        self, frames: torch.Tensor | FrameView, compute: Compute = Compute(), frame_batch: int = 64
    ) -> torch.Tensor:
        """Raw image features (N x D, not normalised) of frames already at input size (N x H x W x 3).

        uint8 frames are scaled to [0, 1]; float frames are taken as they are (a float view is in [0, 1]).
        """
        return self._encode_batches(_frame_batches([frames], frame_batch), compute)

    def _encode_batches(self, batches: Iterator[torch.Tensor], compute: Compute) -> torch.Tensor:
        self._check(compute)
        out = []
        mean, std = self.mean.to(self.device), self.std.to(self.device)
        for frames in batches:
            x = frames.to(self.device, non_blocking=True).permute(0, 3, 1, 2)
            # one float copy (a float batch may be a slice of a view another evaluator still reads), then in
            # place as torchvision's Normalize: sub_(mean).div_(std)
            x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.to(torch.float32, copy=True)
            x = x.sub_(mean).div_(std)
            if compute.half_weights:
                x = x.half()  # OpenAI CLIP: image.type(self.dtype)
            with torch.inference_mode(), self._autocast(compute.autocast):
                out.append(self.model.encode_image(x))
            self.frames_embedded += int(frames.shape[0])
        return torch.cat(out) if out else torch.zeros((0, 1), device=self.device)

    def video_features(
        self, batch: Sequence[VideoSample], spec: FrameSpec, compute: Compute = Compute(), frame_batch: int = 64
    ) -> list[torch.Tensor]:
        """Per video, its frames' raw features (T x D); frames of all videos not yet memoised go in one pass.

        Frames are taken ``frame_batch`` at a time across videos: a ``FrameView`` derives only those.
        """
        todo = [s for s in batch if (s.video, spec, compute.autocast) not in self._images]
        if todo:
            sizes = [len(s.frames) for s in todo]
            if min(sizes) == 0:
                raise VbenchPrefError(f"{todo[sizes.index(0)].video}: no frames to embed")
            features = self._encode_batches(_frame_batches([s.frames for s in todo], frame_batch), compute)
            for sample, part in zip(todo, torch.split(features, sizes)):
                self._images[(sample.video, spec, compute.autocast)] = part
        return [self._images[(s.video, spec, compute.autocast)] for s in batch]

    def video_embeddings(
        self, batch: Sequence[VideoSample], spec: FrameSpec, compute: Compute = Compute(), frame_batch: int = 64
    ) -> list[torch.Tensor]:
        """Per video, its frames' L2-normalised float32 embeddings (T x D)."""
        return [F.normalize(f.float(), dim=-1) for f in self.video_features(batch, spec, compute, frame_batch)]

    def text_features(self, prompts: Sequence[str], compute: Compute = Compute()) -> torch.Tensor:
        """Raw text features of prompts (B x D), each unique prompt encoded once per run and precision."""
        self._check(compute)
        new = list(dict.fromkeys(p for p in prompts if (p, compute.autocast) not in self._texts))
        if new:
            tokens = self.tokenizer(new).to(self.device)
            with torch.inference_mode(), self._autocast(compute.autocast):
                features = self.model.encode_text(tokens)
            for prompt, row in zip(new, features):
                self._texts[(prompt, compute.autocast)] = row
        return torch.stack([self._texts[(p, compute.autocast)] for p in prompts])

    def text_embeddings(self, prompts: Sequence[str], compute: Compute = Compute()) -> torch.Tensor:
        """L2-normalised float32 embeddings of prompts (B x D)."""
        return F.normalize(self.text_features(prompts, compute).float(), dim=-1)


def _frame_batches(videos: Sequence[torch.Tensor | FrameView], size: int) -> Iterator[torch.Tensor]:
    """The frames of ``videos`` in order, ``size`` at a time across video boundaries, each derived when due."""
    pending: list[torch.Tensor] = []
    count = 0
    for frames in videos:
        total, start = len(frames), 0
        while start < total:
            stop = min(total, start + size - count)
            pending.append(frames.frames(start, stop) if isinstance(frames, FrameView) else frames[start:stop])
            count += stop - start
            start = stop
            if count == size:
                yield pending[0] if len(pending) == 1 else torch.cat(pending)
                pending, count = [], 0
    if pending:
        yield pending[0] if len(pending) == 1 else torch.cat(pending)
