"""The Kinetics-400 I3D of FVD as a plain torch module, its input preprocessing, and its checkpoint loader.

Which I3D, and whose conventions. FVD (Unterthiner et al. 2018) is defined on the tf.hub
``deepmind/i3d-kinetics-400`` module, whose weights differ from the ones released with the I3D paper. Two
PyTorch ports of that module are in common use:

* StyleGAN-V's ``i3d_torchscript.pt`` (also common_metrics_on_video_quality's ``styleganv`` method): a
  TorchScript program. Running it means executing code shipped inside a downloaded file, which this
  project never does, and it has no state-dict layout to port.
* VideoGPT's / TATS's ``i3d_pretrained_400.pt``: the tf.hub variables converted to a state dict for
  piergiaj/pytorch-i3d's ``InceptionI3d`` (``convert_tf_pretrained.py``). cd-fvd (content-debiased-fvd,
  Ge et al. 2024) downloads exactly this file, as do TATS and common_metrics_on_video_quality's
  ``videogpt`` method.

This module follows the second, in cd-fvd's code (``cdfvd/third_party/i3d``, ``cdfvd/fvd.py``), so that
the state dict loads key for key and the features are the ones cd-fvd's FVD is computed from:

* Network: piergiaj's ``InceptionI3d`` with TensorFlow "same" padding computed from each input's size
  (zeros, also before max pooling; of an odd total, the extra pixel goes at the end) and BatchNorm with
  ``eps=1e-5`` (the TATS/cd-fvd copy; piergiaj's own file says 1e-3, and its ``rgb_imagenet.pt``, DeepMind's
  released ImageNet+Kinetics checkpoint, is not the tf.hub module FVD is defined on). The converted file
  has ``bn.weight`` = 1 (tf.hub's BatchNorm has no scale) and no ``num_batches_tracked`` entries; files
  with them load too.
* Features: the 400 Kinetics logits (``logits`` of the 1024-d ``avg_pool`` output, averaged over the
  remaining time steps), as ``cdfvd.fvd.get_i3d_logits`` calls ``i3d(x)``; StyleGAN-V's
  ``return_features=True`` is also these pre-softmax logits. :meth:`InceptionI3D.pool` gives the 1024-d
  pool instead, which some papers use; it is not FVD's.
* Input: 16 frames at 224 x 224, (B, 3, T, H, W), values in [-1, 1]. :func:`preprocess_i3d` is cd-fvd's
  ``preprocess_i3d``: float32 of the uint8 values, bilinear resize straight to 224 x 224 (no
  aspect-preserving crop, ``align_corners=False``, no antialiasing), then ``2 x / 255 - 1``.
  ``resize="short_side_crop"`` gives VideoGPT's / common_metrics' variant instead: short side to 224 (long
  side ``ceil``), centre crop, same filter. Which frames are taken (cd-fvd's array API takes the clip it is
  given, its folder loader 16 consecutive frames at a random start) is the caller's choice.
"""

from __future__ import annotations

import math
import os
from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from vbench_pref.distribution.checkpoints import checkpoint_path, load_strict, read_state
from vbench_pref.distribution.clips import Clips, each_clip
from vbench_pref.distribution.weights import I3D_WEIGHTS
from vbench_pref.errors import VbenchPrefError

I3D_FRAMES = 16
I3D_SIZE = 224
I3D_FEATURES = 400  # Kinetics-400 logits: what FVD compares
I3D_POOL_FEATURES = 1024
BN_EPS = 1e-5
Resize = Literal["stretch", "short_side_crop"]

Triple = tuple[int, int, int]

# (name, input channels, [b0, b1a, b1b, b2a, b2b, b3b] output channels) of the Inception blocks, in order
_MIXED = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}


def same_padding(size: tuple[int, ...], kernel: Triple, stride: Triple) -> tuple[int, ...]:
    """TensorFlow "SAME" padding of a (T, H, W) input as ``F.pad`` takes it (last axis first); the odd
    pixel goes at the end."""
    pads: list[int] = []
    for n, k, s in reversed(list(zip(size, kernel, stride))):
        total = max(k - s, 0) if n % s == 0 else max(k - n % s, 0)
        pads += [total // 2, total - total // 2]
    return tuple(pads)


class Unit3D(nn.Module):
    """Convolution with "same" padding, then BatchNorm and ReLU (the logits layer: bias, neither)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: Triple = (1, 1, 1), stride: Triple = (1, 1, 1),
                 *, batch_norm: bool = True, relu: bool = True, bias: bool = False) -> None:
        super().__init__()
        self.kernel, self.stride, self.relu = kernel, stride, relu
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride=stride, bias=bias)
        self.bn = nn.BatchNorm3d(out_channels, eps=BN_EPS, momentum=0.001) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = same_padding(x.shape[2:], self.kernel, self.stride)
        if pads[0::2] == pads[1::2]:
            # even padding: the convolution pads by itself, the same zeros without a padded copy of the
            # input (1.5x faster on the CPU, equal values)
            x = F.conv3d(x, self.conv3d.weight, self.conv3d.bias, self.stride, padding=pads[-2::-2])
        else:
            x = self.conv3d(F.pad(x, pads))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class MaxPool3dSame(nn.Module):
    """Max pooling after zero "same" padding, as the port does it (inputs are post-ReLU, so >= 0)."""

    def __init__(self, kernel: Triple, stride: Triple) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(F.pad(x, same_padding(x.shape[2:], self.kernel, self.stride)), self.kernel, self.stride)


class InceptionBlock(nn.Module):
    """Four branches concatenated: 1x1; 1x1 -> 3x3; 1x1 -> 3x3; 3x3 max pool -> 1x1."""

    def __init__(self, in_channels: int, out: tuple[int, ...]) -> None:
        super().__init__()
        self.b0 = Unit3D(in_channels, out[0])
        self.b1a = Unit3D(in_channels, out[1])
        self.b1b = Unit3D(out[1], out[2], (3, 3, 3))
        self.b2a = Unit3D(in_channels, out[3])
        self.b2b = Unit3D(out[3], out[4], (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, out[5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


class InceptionI3D(nn.Module):
    """Inception-v1 I3D with the converted tf.hub checkpoint's module names (``Conv3d_1a_7x7``, ``Mixed_3b.b1b``,
    ``logits``...). ``forward``: (B, 3, 16, 224, 224) in [-1, 1] -> (B, 400) logits, FVD's features."""

    def __init__(self, num_classes: int = I3D_FEATURES) -> None:
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        for name in ("Mixed_3b", "Mixed_3c"):
            self.add_module(name, InceptionBlock(*_MIXED[name]))
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            self.add_module(name, InceptionBlock(*_MIXED[name]))
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        for name in ("Mixed_5b", "Mixed_5c"):
            self.add_module(name, InceptionBlock(*_MIXED[name]))
        self.logits = Unit3D(I3D_POOL_FEATURES, num_classes, batch_norm=False, relu=False, bias=True)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> (B, 1024, T/8, H/32, W/32): the last Inception block's map."""
        if x.dim() != 5 or x.shape[1] != 3:
            raise VbenchPrefError(f"I3D takes (batch, 3, frames, height, width) clips, got {tuple(x.shape)}")
        for name, module in self.named_children():
            if name == "logits":
                break
            x = module(x)
        return x

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, 224, 224) -> (B, 1024, T', 1, 1): the 2x7x7 average pool (stride 1) the logits read."""
        return F.avg_pool3d(self.trunk(x), (2, 7, 7), stride=1)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """(B, 1024, T', 1, 1) pool -> (B, 400) logits, averaged over the T' time steps (1 for 16 frames)."""
        return self.logits(pooled).flatten(2).mean(2)  # dropout sits before the logits in training only

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5 and tuple(x.shape[-2:]) != (I3D_SIZE, I3D_SIZE):
            # other sizes leave a spatial map the logits were never trained to average
            raise VbenchPrefError(f"I3D takes {I3D_SIZE} x {I3D_SIZE} frames, got {tuple(x.shape[-2:])}")
        return self.classify(self.pool(x))


# --------------------------------------------------------------------------------------------- input
def preprocess_i3d(videos: Clips, *, size: int = I3D_SIZE, resize: Resize = "stretch") -> torch.Tensor:
    """(B, T, H, W, 3) uint8 clips (or a sequence of (T, H, W, 3) clips of any sizes) -> (B, 3, T, size, size)
    float32 in [-1, 1], as cd-fvd feeds I3D.

    ``resize="stretch"``: cd-fvd's ``preprocess_i3d``, bilinear straight to ``size`` x ``size``.
    ``resize="short_side_crop"``: VideoGPT's ``preprocess_single``, short side to ``size`` (long side
    rounded up), centre crop. Both resize the 0-255 values as float32 without antialiasing.
    """
    if resize not in ("stretch", "short_side_crop"):
        raise VbenchPrefError(f"unknown I3D resize {resize!r}; use 'stretch' or 'short_side_crop'")
    return each_clip(videos, partial(_preprocess_i3d, size=size, resize=resize))


def _preprocess_i3d(videos: torch.Tensor, size: int, resize: Resize) -> torch.Tensor:
    b, t, h, w, c = videos.shape
    frames = videos.reshape(b * t, h, w, c).permute(0, 3, 1, 2).float()
    if resize == "stretch":
        target = (size, size)
    else:
        scale = size / min(h, w)
        target = (size, math.ceil(w * scale)) if h < w else (math.ceil(h * scale), size)
    frames = F.interpolate(frames, size=target, mode="bilinear", align_corners=False, antialias=False)
    top, left = (frames.shape[-2] - size) // 2, (frames.shape[-1] - size) // 2
    frames = frames[..., top:top + size, left:left + size]
    clips = frames.reshape(b, t, c, size, size).transpose(1, 2).contiguous()  # (B, C, T, H, W) in memory too
    return 2.0 * clips / 255.0 - 1


# --------------------------------------------------------------------------------------------- weights
def empty_i3d() -> InceptionI3D:
    """The network on the meta device: names and shapes only."""
    with torch.device("meta"):
        return InceptionI3D()


def published_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of ``i3d_pretrained_400.pt`` (no ``num_batches_tracked``: the converter writes none)."""
    return {k: tuple(v.shape) for k, v in empty_i3d().state_dict().items() if not k.endswith("num_batches_tracked")}


def load_i3d(path: str | os.PathLike[str] | None = None, *, device: str | torch.device = "cpu") -> InceptionI3D:
    """The I3D with every tensor read from ``i3d_pretrained_400.pt`` (weights only, strict), float32, eval.

    ``path``: the file, or a folder holding it; None looks in the manifest's places (``VBENCH_PREF_I3D_WEIGHTS``,
    the cache ``vbench-pref weights pull i3d-kinetics400-weights`` fills) and fails in one line when absent.
    """
    file = checkpoint_path(I3D_WEIGHTS, path)
    state = read_state(file, "I3D checkpoint", wrappers=("state_dict",))
    model = load_strict(empty_i3d(), state, file, "Kinetics-400 I3D", optional=("num_batches_tracked",))
    return model.to(device)


def random_i3d(*, seed: int = 0, device: str | torch.device = "cpu") -> InceptionI3D:
    """The I3D with seeded random weights and BatchNorm statistics (explicitly not the published weights)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = InceptionI3D()  # drawn on the CPU: the same weights whatever the device
        for module in model.modules():
            if isinstance(module, nn.Conv3d):
                # He initialisation keeps activations of order one through the 22 layers; torch's default
                # shrinks them layer by layer until the logits hardly depend on the input
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm3d):
                # non-trivial statistics so that the normalisation is exercised, kept close to the identity
                nn.init.normal_(module.running_mean, std=0.1)
                nn.init.uniform_(module.running_var, 0.5, 1.5)
                nn.init.uniform_(module.weight, 0.8, 1.2)
                nn.init.normal_(module.bias, std=0.1)
    return model.to(device).eval()


def write_random_i3d(path: str | os.PathLike[str], *, seed: int = 0) -> dict[str, torch.Tensor]:
    """Save seeded random weights as ``i3d_pretrained_400.pt`` is laid out (a flat state dict without
    ``num_batches_tracked``); returns the tensors saved."""
    from vbench_pref.atomic import atomic_path

    shapes = published_shapes()
    state = {k: v.detach().clone() for k, v in random_i3d(seed=seed).state_dict().items() if k in shapes}
    with atomic_path(os.fspath(path)) as tmp:
        torch.save(state, tmp)
    return state
