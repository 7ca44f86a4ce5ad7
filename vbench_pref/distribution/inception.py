"""Inception-v3 with the FID weights: the feature network of FID and KID, per frame, 2048-d pool3 features.

The network is TensorFlow's ``inception-2015-12-05`` graph, the one the original FID code (TTUR) runs.
Its weights are not torchvision's ImageNet Inception weights, and its graph differs from torchvision's
Inception-v3 in three places; features of either network are not comparable with the other's.

Weights: pytorch-fid's port of that graph, ``pt_inception-2015-12-05-6726825d.pth`` (a flat state dict in
torchvision's ``Inception3`` names, 1008 classes, no auxiliary head), read with ``weights_only=True``.
clean-fid runs the same graph as TorchScript (``inception-2015-12-05.pt``, from StyleGAN2-ADA); TorchScript
is never executed here, so the state-dict port is what is loaded, and clean-fid's conventions are followed
around it. The graph's differences from torchvision's Inception-v3, as pytorch-fid ports them:

* the 3x3 average pools inside ``Mixed_5b-d`` (A blocks), ``Mixed_6b-e`` (C blocks) and ``Mixed_7b`` exclude
  the zero padding from the average (TensorFlow's SAME average pool), i.e. ``count_include_pad=False``;
* the pool branch of ``Mixed_7c`` is a 3x3 *max* pool (stride 1, padding 1), not an average pool;
* batch norm epsilon 0.001 and convolutions without bias (as torchvision's ``BasicConv2d``).

The features are the 2048-d global average of ``Mixed_7c`` (TensorFlow's ``pool_3``), before the logits.

Preprocessing conventions (``CONVENTIONS``), as the two implementations people cite do it, per frame:

* ``"clean"`` (clean-fid's default mode): each channel of the uint8 frame becomes a float32 image (PIL mode
  ``F``), is resized to 299 x 299 with PIL's bicubic filter (antialiased when shrinking) and clipped to
  [0, 255], without rounding; the network then sees ``(x - 128) / 128``, as clean-fid feeds the
  TorchScript graph's layers.
* ``"pytorch_fid"`` (pytorch-fid and clean-fid's ``legacy_pytorch``): the frame scaled to [0, 1]
  (torchvision's ``ToTensor``), resized with ``F.interpolate(mode="bilinear", align_corners=False)`` (no
  antialias, so large frames alias), then ``2 x - 1``.

Frames of a video: every ``stride``-th frame from the first, at most ``max_frames`` of them (all by default);
FID over videos pools these per-frame features of all videos.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vbench_pref.errors import VbenchPrefError
from vbench_pref.weights import ResolvedWeight, WeightSpec, resolve

FEATURE_DIM = 2048
INPUT_SIZE = 299
LOGIT_CLASSES = 1008  # the TF graph's classifier (1000 ImageNet classes + 8 unused), kept for the key layout
Convention = Literal["clean", "pytorch_fid"]
CONVENTIONS: tuple[str, ...] = ("clean", "pytorch_fid")

FID_INCEPTION_WEIGHTS = WeightSpec(
    name="fid-inception-weights",
    source="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    filename="pt_inception-2015-12-05-6726825d.pth",
    sha256="6726825d",  # the sha256 prefix pytorch-fid puts in the file name (torch.hub's convention)
    licence="Apache-2.0 (mseitzer/pytorch-fid; weights ported from TensorFlow's inception-2015-12-05, Apache-2.0)",
    env_var="VBENCH_PREF_FID_INCEPTION_WEIGHTS",
    description="Inception-v3 FID weights: TensorFlow's 2015-12-05 graph as a PyTorch state dict (pytorch-fid release)",
)


# ------------------------------------------------------------------------------------------------ network
class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (eps 0.001, TensorFlow's), ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


def _same_pool(x: torch.Tensor, kind: Literal["avg", "max"]) -> torch.Tensor:
    """TensorFlow's 3x3 stride-1 SAME pool: padding never counts in an average (nor wins a max)."""
    if kind == "max":
        return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """``Mixed_5b-d``: 1x1, 5x5, double 3x3 and pooled branches."""

    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_same_pool(x, "avg"))], 1)


class InceptionB(nn.Module):
    """``Mixed_6a``: grid reduction 35 -> 17."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
    """``Mixed_6b-e``: factorised 7x7 branches."""

    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            d = layer(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_same_pool(x, "avg"))], 1)


class InceptionD(nn.Module):
    """``Mixed_7a``: grid reduction 17 -> 8."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    """``Mixed_7b`` (average pool branch) and ``Mixed_7c`` (max pool branch in the FID graph)."""

    def __init__(self, cin: int, pool: Literal["avg", "max"]) -> None:
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(s), self.branch3x3_2b(s)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        return torch.cat([self.branch1x1(x), b3, bd, self.branch_pool(_same_pool(x, self.pool))], 1)


class FIDInceptionV3(nn.Module):
    """The FID graph in torchvision's ``Inception3`` names; ``forward`` maps normalised 299 x 299 frames
    (N x 3 x 299 x 299, values in [-1, 1]) to N x 2048 pool3 features. ``fc`` only completes the key layout."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, 32)
        self.Mixed_5c = InceptionA(256, 64)
        self.Mixed_5d = InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128)
        self.Mixed_6c = InceptionC(768, 160)
        self.Mixed_6d = InceptionC(768, 160)
        self.Mixed_6e = InceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, "avg")
        self.Mixed_7c = InceptionE(2048, "max")
        self.fc = nn.Linear(FEATURE_DIM, LOGIT_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return x.mean(dim=(2, 3))


# ------------------------------------------------------------------------------------------------ weights
def empty_network() -> FIDInceptionV3:
    """The network on the meta device: names and shapes only, no memory."""
    with torch.device("meta"):
        return FIDInceptionV3()


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of the published checkpoint's tensors, in the checkpoint's order."""
    return {k: tuple(v.shape) for k, v in empty_network().state_dict().items()}


def random_network(seed: int = 0, device: str | torch.device = "cpu") -> FIDInceptionV3:
    """Seeded random weights (explicitly not the FID weights), eval mode, with activations of order one.

    Default initialisation with unit running statistics lets activations drift by orders of magnitude over
    the 94 convolutions; the running statistics are instead measured in one train-mode pass over seeded
    299 x 299 noise, half of it smooth (upsampled) and half white, which keeps features of frames of order one.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FIDInceptionV3()
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                nn.init.uniform_(module.weight, 0.5, 1.5)
                nn.init.normal_(module.bias, std=0.2)
                module.momentum = None  # cumulative average over the calibration pass
        model.train()
        with torch.no_grad():
            size = (INPUT_SIZE, INPUT_SIZE)
            smooth = F.interpolate(torch.rand(2, 3, 16, 24), size=size, mode="bicubic", align_corners=False)
            model(torch.cat([smooth.clamp(0, 1), torch.rand(2, 3, *size)]) * 2 - 1)
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = 0.1
                module.num_batches_tracked.zero_()
    return model.to(device).eval()


def write_random_checkpoint(path: Path, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded random weights saved as the published file is (a flat state dict); returns the tensors saved."""
    from vbench_pref.atomic import atomic_path

    state = {k: v.detach().clone() for k, v in random_network(seed).state_dict().items()}
    with atomic_path(Path(path)) as tmp:
        torch.save(state, tmp)
    return state


def load_inception(path: Path, device: str | torch.device = "cpu") -> FIDInceptionV3:
    """The network with every tensor read from ``path`` (weights only, strict), float32, eval mode.

    A missing ``num_batches_tracked`` counter (files saved before torch 0.4.1 have none) is taken as 0: it
    only steers training and never changes a feature.
    """
    from vbench_pref.torchload import load_weights_only
    from vbench_pref.vqa.models import checkpoint_state, describe_mismatch

    state = dict(checkpoint_state(load_weights_only(Path(path), "FID Inception checkpoint"), Path(path)))
    expected = expected_shapes()
    for key in expected:
        if key.endswith(".num_batches_tracked") and key not in state and key.replace("num_batches_tracked", "running_mean") in state:
            state[key] = torch.tensor(0, dtype=torch.long)
    problem = describe_mismatch(expected, state)
    if problem:
        raise VbenchPrefError(f"{path} is not the FID Inception-v3 checkpoint: tensors {problem}")
    model = empty_network()
    model.load_state_dict(state, strict=True, assign=True)
    return model.to(device=device, dtype=torch.float32).eval()


def load_fid_inception(local: str | Path | None = None, device: str | torch.device = "cpu", *,
                       evaluator: str | None = None, option: str | None = None,
                       spec: WeightSpec = FID_INCEPTION_WEIGHTS) -> tuple[FIDInceptionV3, ResolvedWeight]:
    """The FID network from the manifest entry (a path given, its variable, the cache) and the file's provenance.

    The file is checked against the entry's sha256 prefix. Absent weights raise WeightsMissingError in one
    line naming ``vbench-pref weights pull`` (and ``-O evaluator.option=`` when both are given).
    """
    found = resolve(spec, local, evaluator=evaluator, option=option)
    return load_inception(found.path, device), found


# ------------------------------------------------------------------------------------------------ inputs
def _as_frames(frames: np.ndarray | torch.Tensor) -> np.ndarray:
    """N x H x W x 3 uint8 frames as a numpy array (a single H x W x 3 frame becomes N = 1)."""
    array = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 N x H x W x 3 (RGB), got {array.dtype} {tuple(array.shape)}")
    return array


def clean_resize(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """clean-fid's "clean" resize: N x 3 x 299 x 299 float32 in [0, 255], unrounded.

    Per frame and channel: a float32 PIL image (mode ``F``) resized by PIL's bicubic filter, then clipped
    to [0, 255]. PIL filters float images in float32 and, when shrinking, widens the kernel (antialias).
    """
    from PIL import Image

    array = _as_frames(frames)
    out = np.empty((len(array), 3, INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    for i, frame in enumerate(array):
        for c in range(3):
            plane = Image.fromarray(np.ascontiguousarray(frame[:, :, c], dtype=np.float32))  # mode F
            out[i, c] = np.asarray(plane.resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BICUBIC))
    return torch.from_numpy(np.clip(out, 0.0, 255.0, out=out))


def pytorch_fid_resize(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """pytorch-fid's resize: N x 3 x 299 x 299 float32 in [0, 1], bilinear, no antialias.

    Scaled to [0, 1] before resizing and laid out channel-first contiguous first, as ``ToTensor`` does, so
    the interpolation rounds as pytorch-fid's does.
    """
    x = torch.from_numpy(_as_frames(frames)).permute(0, 3, 1, 2).contiguous().to(torch.float32).div(255)
    return F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise VbenchPrefError(f"unknown FID preprocessing convention {convention!r}; choose one of {', '.join(CONVENTIONS)}")


def resize_frames(frames: np.ndarray | torch.Tensor, convention: Convention = "clean") -> torch.Tensor:
    """The convention's resized frames, in its own scale: [0, 255] for "clean", [0, 1] for "pytorch_fid"."""
    _check_convention(convention)
    return clean_resize(frames) if convention == "clean" else pytorch_fid_resize(frames)


def normalize(resized: torch.Tensor, convention: Convention = "clean") -> torch.Tensor:
    """Resized frames to the network's [-1, 1] input, exactly as each reference scales them."""
    _check_convention(convention)
    if convention == "clean":
        return (resized - 128) / 128
    return 2 * resized - 1


def preprocess(frames: np.ndarray | torch.Tensor, convention: Convention = "clean") -> torch.Tensor:
    """uint8 N x H x W x 3 frames -> the network's input, N x 3 x 299 x 299 float32 in [-1, 1]."""
    return normalize(resize_frames(frames, convention), convention)


def select_frames(n_frames: int, stride: int = 1, max_frames: int | None = None) -> np.ndarray:
    """Indices of the frames a video contributes: every ``stride``-th from the first, at most ``max_frames``."""
    if stride < 1 or (max_frames is not None and max_frames < 1):
        raise VbenchPrefError(f"frame stride and max frames must be >= 1, got stride {stride}, max frames {max_frames}")
    return np.arange(0, n_frames, stride)[:max_frames]


RESIZE_DESCRIPTIONS = {
    "clean": "clean-fid clean: per-channel float32 PIL bicubic to 299x299, clipped to 0-255, (x - 128) / 128",
    "pytorch_fid": "pytorch-fid: [0, 1], torch bilinear (align_corners=False, no antialias) to 299x299, 2x - 1",
}


def extractor_settings(convention: Convention = "clean", stride: int = 1, max_frames: int | None = None) -> dict[str, object]:
    """What makes features comparable: two feature sets can be compared only when these are equal."""
    _check_convention(convention)
    select_frames(1, stride, max_frames)  # refuses bad values here too
    return {
        "network": "inception-v3-fid (TF 2015-12-05 graph, pytorch-fid state dict)",
        "features": f"pool3, {FEATURE_DIM}-d, per frame",
        "convention": convention,
        "preprocessing": RESIZE_DESCRIPTIONS[convention],
        "frame_stride": stride,
        "max_frames": max_frames,
    }


# ------------------------------------------------------------------------------------------------ features
FrameBatch = np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor]


def frame_features(model: FIDInceptionV3, frames: FrameBatch, *, convention: Convention = "clean",
                   batch_size: int = 32) -> torch.Tensor:
    """Pool3 features of uint8 frames: N x 2048 float32 on the CPU, ``batch_size`` frames per forward.

    ``frames``: an N x H x W x 3 array or tensor, or a sequence of H x W x 3 frames, which may differ in size
    (each frame is resized on its own, so frames of different videos share batches).
    """
    device = next(model.parameters()).device
    out = torch.empty((len(frames), FEATURE_DIM), dtype=torch.float32)
    for start in range(0, len(frames), batch_size):
        part = frames[start : start + batch_size]
        x = torch.cat([preprocess(frame, convention) for frame in part])
        with torch.inference_mode():
            features = model(x.to(device)).float().cpu()
        out[start : start + len(x)] = features  # ``out`` stays an ordinary tensor the caller may modify
    return out


def video_features(model: FIDInceptionV3, videos: Sequence[np.ndarray | torch.Tensor], *, stride: int = 1,
                   max_frames: int | None = None, convention: Convention = "clean",
                   batch_size: int = 32) -> list[torch.Tensor]:
    """Per-frame features of several videos (each uint8 T x H x W x 3), batched across videos.

    Returns, per video in order, a ``len(select_frames(T, stride, max_frames))`` x 2048 float32 tensor.
    """
    chosen = [_as_frames(v)[select_frames(len(v), stride, max_frames)] for v in videos]
    flat = [frame for frames in chosen for frame in frames]
    return list(torch.split(frame_features(model, flat, convention=convention, batch_size=batch_size),
                            [len(c) for c in chosen]))
