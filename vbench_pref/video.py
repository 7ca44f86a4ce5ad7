"""Video I/O: decode once (PyAV default, decord optional), sample frames, resize, write mp4 with true fps.

Every score is only as reproducible as the pixels and timestamps it is computed from, so this module pins
down the choices that differ silently between readers:

- **One decode per video.** ``decode_video`` reads a file once for all evaluators and keeps only the frames
  some ``FrameSpec`` needs; ``DecodedVideo.view`` then samples and resizes without touching the file again.
  ``DECODES`` counts the calls so the engine's decode-once guarantee can be tested.
- **Real timestamps.** Frames are presentation timestamps from the container, in seconds since the stream's
  start (the first frame is usually at 0; decord uses the same origin). "fps" sampling works on them, so it
  is right for variable-frame-rate videos, where "every k-th frame" is not.
- **One YUV->RGB conversion.** Both backends use FFmpeg's swscale with its defaults: BT.601 matrix, range
  from the stream, untagged matrices ignored (BT.709 tags too). That is what decord does and what the
  reference implementations built on decord therefore saw; PyAV's ``to_ndarray(format="rgb24")`` with no
  extra arguments gives bit-identical frames for 8-bit sources (tested). High-bit-depth sources (10-bit)
  are converted by two different swscale versions and may differ by a few levels between backends.
- **Grey and alpha.** Grey sources become 3 identical channels. Alpha is dropped, not composited over a
  background: a generated video with alpha keeps its colour where it is transparent, and compositing would
  invent a background colour the model never chose.
- **Writes are exact and atomic.** ``write_video`` stores the requested fps as a small fraction (reading
  back gives it to 1e-6), and renames a finished temporary file into place so a crash never leaves a
  half-written video at the final path.

API CONTRACT (other modules import these names):

- ``FrameSpec``: frozen, hashable description of the frames one evaluator needs.
- ``decode_video(path, specs, backend)``: one decode of ``path`` that keeps only the frames some spec in
  ``specs`` needs (all frames when a spec samples "all"); raises ``VideoDecodeError`` with a one-line reason.
- ``DecodedVideo.view(spec)``: the frames of one spec (torch tensor T x H x W x 3: uint8, or float32 for a
  float spec) and their timestamps.
- ``DecodedVideo.frame_view(spec)``: the same frames as a ``FrameView``, derived a batch at a time on demand.
- ``write_video(path, frames, fps)``: atomic mp4 write with exact fps metadata.
- ``DECODES``: Counter of decodes per path (the engine's decode-once guarantee is tested through it).
"""

from __future__ import annotations

import math
import numbers
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import torch

from vbench_pref.atomic import atomic_path
from vbench_pref.errors import VbenchPrefError, VideoDecodeError
from vbench_pref.qwen_vision import QwenVideoRule

__all__ = [
    "BACKENDS",
    "DECODES",
    "VIDEO_EXTENSIONS",
    "BackendUnavailable",
    "DecodedVideo",
    "FrameSpec",
    "FrameView",
    "available_backends",
    "decode_video",
    "exact_fps",
    "write_video",
]

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".mov", ".avi", ".gif")

BACKENDS = ("pyav", "decord")

DECODES: Counter[str] = Counter()
# The engine decodes from a thread pool; ``Counter[k] += 1`` is a read-modify-write that can lose counts.
_DECODES_LOCK = threading.Lock()

_SAMPLINGS = ("all", "count", "fps", "qwen")
_RESIZES = ("native", "short_side_crop", "max_side", "longest_pad", "qwen")
_INTERPOLATIONS = ("bilinear", "bicubic")
_PIXELS = ("uint8", "float_0_255", "float_0_1")
_RESAMPLERS = ("torch", "pil")

# Resizing runs in float32; chunking bounds the extra memory to this many frames whatever the video length.
_RESIZE_CHUNK = 16


class BackendUnavailable(VbenchPrefError, ImportError):
    """The chosen decode backend is not installed: fatal to a run (not a per-video error), says what to run."""


@dataclass(frozen=True)
class FrameSpec:
    """Which frames an evaluator needs and at what size.

    Sampling (over the decoded frames in presentation order):

    - ``"all"``: every frame.
    - ``"count"``: ``count`` frames evenly spaced, indices ``np.round(np.linspace(0, n - 1, count))``
      (numpy rounds halves to even); all frames when ``count >= n``.
    - ``"fps"``: one frame per sample time ``t0 + k / fps`` (``t <= last timestamp``): the frame on screen at
      that time, i.e. the last one whose timestamp is ``<= t``. Frames repeat when ``fps`` exceeds the
      video's rate. Using timestamps rather than an index stride keeps this right for variable frame rate.
    - ``"qwen"``: the Qwen-VL reward models' rule (``qwen`` gives the constants): a frame count from the
      frame total and the container's average rate, spread evenly by index; see ``vbench_pref.qwen_vision``.

    Resize (after sampling):

    - ``"native"``: untouched pixels.
    - ``"short_side_crop"``: short side to ``size`` (long side ``int(size * long / short)``), then a centre
      ``size`` x ``size`` crop: exactly torchvision ``Resize(size)`` + ``CenterCrop(size)``, the CLIP-family
      preprocessing.
    - ``"max_side"``: shrink so the longest side is at most ``size`` (never enlarge), except that a short
      side below ``min_side`` is enlarged to ``min_side``; then both sides are rounded to the nearest
      multiple of ``multiple_of`` (at least ``multiple_of``). This is what optical-flow networks need: a cap
      on cost, a floor on the pyramid and divisible sizes. ``size=None`` means no cap.
      ``multiple_of`` and ``min_side`` only apply to ``"max_side"``.
    - ``"longest_pad"``: scale so the longest side is exactly ``size`` (enlarging or shrinking; each side
      ``round(side * size / longest)``, Python's round), then pad with black to ``size`` x ``size``,
      ``(size - side) // 2`` before and the rest after: HPSv2's ``ResizeMaxSize`` letterbox, which keeps
      the whole frame instead of cropping it. Unlike HPSv2 (which skips the pad when no resize is needed,
      giving the model a non-square input it cannot take), frames already at ``size`` are padded too.
    - ``"qwen"``: Qwen-VL's ``smart_resize`` with the constants in ``qwen`` (sides multiples of 28 within a
      pixel budget, which may depend on the sampled frame count).

    How pixels are resampled (``resampler``) and what they become (``pixels``), so that a view can equal the
    transform chain of the reference it follows, value for value:

    - ``resampler="torch"``: ``torch.nn.functional.interpolate`` on float32 (``align_corners=False``), as
      torchvision's tensor ``Resize`` does. ``antialias`` defaults to True: torch without antialias aliases
      badly on large shrinks; set it False where the reference does (VBench's ``clip_transform``).
    - ``resampler="pil"``: ``PIL.Image.resize`` on each uint8 frame, as torchvision's ``Resize`` does on PIL
      images (VBench's ``clip_transform_Image``). PIL rounds and clips to uint8 itself and always low-pass
      filters when shrinking, so it needs ``pixels="uint8"`` and ``antialias=True``.
    - ``pixels="uint8"``: the resized float32 values rounded and clamped to uint8 (torch), or PIL's uint8.
    - ``pixels="float_0_255"``: float32 frames in 0..255 (VBench's ``load_video``: ``torch.Tensor(frames)``)
      resized without rounding or clamping (bicubic overshoot is kept), then divided by 255.
    - ``pixels="float_0_1"``: divided by 255 first (torchvision's ``ToTensor``), then resized without
      clamping (open_clip's and HPSv2's ``preprocess_val``).

    Float views are float32 T x H x W x 3 in nominally [0, 1]; crops and pads are the same in every case.
    """

    sampling: Literal["all", "count", "fps"] = "all"
    count: int | None = None
    fps: float | None = None
    resize: Literal["native", "short_side_crop", "max_side", "longest_pad"] = "native"
    size: int | None = None
    interpolation: Literal["bilinear", "bicubic"] = "bicubic"
    antialias: bool = True
    multiple_of: int = 1
    min_side: int | None = None
    pixels: Literal["uint8", "float_0_255", "float_0_1"] = "uint8"
    resampler: Literal["torch", "pil"] = "torch"
    qwen: QwenVideoRule | None = None

    def __post_init__(self) -> None:
        # Fail when the evaluator is defined, not in the middle of a run on the first video.
        if self.sampling not in _SAMPLINGS:
            raise ValueError(f"FrameSpec.sampling must be one of {_SAMPLINGS}, got {self.sampling!r}")
        if self.sampling == "count" and (not _is_int(self.count) or self.count < 1):
            raise ValueError(f"FrameSpec(sampling='count') needs count >= 1, got {self.count!r}")
        if self.sampling == "fps" and (
            not isinstance(self.fps, numbers.Real) or not math.isfinite(self.fps) or self.fps <= 0
        ):
            raise ValueError(f"FrameSpec(sampling='fps') needs fps > 0, got {self.fps!r}")
        if "qwen" in (self.sampling, self.resize) and not isinstance(self.qwen, QwenVideoRule):
            raise ValueError("FrameSpec sampling or resize 'qwen' needs qwen=QwenVideoRule(...)")
        if self.resize not in _RESIZES:
            raise ValueError(f"FrameSpec.resize must be one of {_RESIZES}, got {self.resize!r}")
        if self.resize in ("short_side_crop", "longest_pad") and (not _is_int(self.size) or self.size < 1):
            raise ValueError(f"FrameSpec(resize={self.resize!r}) needs size >= 1, got {self.size!r}")
        if self.resize == "max_side" and self.size is not None and (not _is_int(self.size) or self.size < 1):
            raise ValueError(f"FrameSpec(resize='max_side') needs size >= 1 or None, got {self.size!r}")
        if self.interpolation not in _INTERPOLATIONS:
            raise ValueError(
                f"FrameSpec.interpolation must be one of {_INTERPOLATIONS}, got {self.interpolation!r}"
            )
        if not _is_int(self.multiple_of) or self.multiple_of < 1:
            raise ValueError(f"FrameSpec.multiple_of must be an int >= 1, got {self.multiple_of!r}")
        if self.min_side is not None and (not _is_int(self.min_side) or self.min_side < 1):
            raise ValueError(f"FrameSpec.min_side must be an int >= 1 or None, got {self.min_side!r}")
        if self.pixels not in _PIXELS:
            raise ValueError(f"FrameSpec.pixels must be one of {_PIXELS}, got {self.pixels!r}")
        if self.resampler not in _RESAMPLERS:
            raise ValueError(f"FrameSpec.resampler must be one of {_RESAMPLERS}, got {self.resampler!r}")
        if self.resampler == "pil" and (self.pixels != "uint8" or not self.antialias):
            raise ValueError("FrameSpec(resampler='pil') gives uint8 pixels and always antialiases: "
                             "it needs pixels='uint8' and antialias=True")

    def describe(self) -> str:
        """Short text for reports and cards.

        e.g. "16 frames evenly spaced, short side 224 + center crop (bicubic, antialias)".
        """
        if self.sampling == "all":
            what = "all frames"
        elif self.sampling == "count":
            what = f"{self.count} frames evenly spaced"
        elif self.sampling == "fps":
            what = f"frames at {float(self.fps):g} fps"
        else:
            assert self.qwen is not None
            what = f"Qwen-VL frames at {self.qwen.fps:g} fps of the average rate"
        if self.resize == "native":
            return f"{what}, native resolution" + ("" if self.pixels == "uint8" else ", float")
        if self.resize == "short_side_crop":
            how = f"short side {self.size} + center crop"
        elif self.resize == "longest_pad":
            how = f"long side {self.size} + black pad to square"
        elif self.resize == "qwen":
            assert self.qwen is not None
            how = (f"sides multiples of {self.qwen.factor}, {self.qwen.min_pixels}-{self.qwen.max_pixels} px"
                   + (f", {self.qwen.total_pixels:g} px per video" if self.qwen.total_pixels is not None else ""))
        else:
            parts = [f"max side {self.size}" if self.size is not None else "uncapped size"]
            if self.min_side is not None:
                parts.append(f"min side {self.min_side}")
            if self.multiple_of > 1:
                parts.append(f"multiple of {self.multiple_of}")
            how = ", ".join(parts)
        if self.resampler == "pil":
            method = f"{self.interpolation}, PIL"
        else:
            method = f"{self.interpolation}, {'antialias' if self.antialias else 'no antialias'}"
        if self.pixels == "float_0_255":
            method += ", float from 0-255, unclamped"
        elif self.pixels == "float_0_1":
            method += ", float from 0-1, unclamped"
        return f"{what}, {how} ({method})"

    def output_size(self, height: int, width: int, n_frames: int = 1) -> tuple[int, int]:
        """(height, width) of this spec's frames for a video of ``height`` x ``width``, without decoding.

        ``n_frames`` (the sampled count) matters only to a ``"qwen"`` resize with a per-video pixel budget.
        """
        if self.resize == "longest_pad":
            return (int(self.size), int(self.size))  # type: ignore[arg-type]
        (h, w), crop = _resize_plan(self, height, width, n_frames)
        return (crop, crop) if crop is not None else (h, w)

    def frame_indices(self, timestamps: np.ndarray, fps: float | None = None) -> np.ndarray:
        """Indices (into frames in presentation order) this spec samples from a video with these timestamps.

        ``fps`` is the container's average frame rate; only ``"qwen"`` sampling uses it (and needs it).
        """
        return _sample_indices(self, np.asarray(timestamps, dtype=np.float64), fps)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------------------- sampling


def _sample_indices(spec: FrameSpec, ts: np.ndarray, fps: float | None = None) -> np.ndarray:
    n = len(ts)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if spec.sampling == "qwen":
        assert spec.qwen is not None
        if fps is None:
            raise ValueError("FrameSpec(sampling='qwen') needs the video's average frame rate")
        return spec.qwen.frame_indices(n, fps)
    if spec.sampling == "all":
        return np.arange(n, dtype=np.int64)
    if spec.sampling == "count":
        assert spec.count is not None
        if spec.count >= n:
            return np.arange(n, dtype=np.int64)
        return np.round(np.linspace(0, n - 1, spec.count)).astype(np.int64)
    assert spec.fps is not None
    fps = float(spec.fps)
    # Timestamps come from rationals (PyAV) or float32 (decord); a tolerance far below any frame interval
    # keeps a sample time that lands exactly on a frame on that frame rather than its predecessor.
    tol = 1e-6 * max(1.0, float(np.abs(ts).max()))
    t0 = float(ts[0])
    span = float(ts[-1]) - t0
    k = np.arange(int(math.floor((span + tol) * fps)) + 1, dtype=np.float64)
    times = t0 + k / fps
    idx = np.searchsorted(ts, times + tol, side="right") - 1
    return np.clip(idx, 0, n - 1).astype(np.int64)


# ------------------------------------------------------------------------------------------------ resize


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _resize_plan(spec: FrameSpec, h: int, w: int, n_frames: int = 1) -> tuple[tuple[int, int], int | None]:
    """((resized_h, resized_w), centre-crop size or None)."""
    if spec.resize == "native":
        return (h, w), None
    if spec.resize == "qwen":
        assert spec.qwen is not None
        return spec.qwen.frame_size(h, w, n_frames), None
    if spec.resize == "short_side_crop":
        assert spec.size is not None
        size = int(spec.size)
        # torchvision.transforms.functional.resize with an int size: the long side is truncated, not rounded.
        if h <= w:
            return (size, int(size * w / h)), size
        return (int(size * h / w), size), size
    if spec.resize == "longest_pad":
        assert spec.size is not None
        scale = int(spec.size) / max(h, w)
        return (max(1, round(h * scale)), max(1, round(w * scale))), None
    long_side, short_side = max(h, w), min(h, w)
    scale = 1.0
    if spec.size is not None and long_side > spec.size:
        scale = spec.size / long_side
    if spec.min_side is not None and short_side * scale < spec.min_side:
        scale = spec.min_side / short_side
    if scale == 1.0:
        nh, nw = h, w
    else:
        nh, nw = max(1, _round_half_up(h * scale)), max(1, _round_half_up(w * scale))
    m = int(spec.multiple_of)
    if m > 1:
        nh, nw = m * max(1, _round_half_up(nh / m)), m * max(1, _round_half_up(nw / m))
    return (nh, nw), None


def _resize_frames(frames: Sequence[np.ndarray], spec: FrameSpec, n_frames: int | None = None) -> torch.Tensor:
    """uint8 H x W x 3 frames as ``spec`` makes them: a T x h x w x 3 tensor (uint8, or float32 for float pixels).

    Works ``_RESIZE_CHUNK`` frames at a time, so float intermediates stay bounded whatever the video length.
    ``n_frames``: the whole view's frame count when ``frames`` is a slice of it (a pixel budget per video
    depends on it); by default ``len(frames)``.
    """
    n_frames = len(frames) if n_frames is None else n_frames
    if not frames:
        raise ValueError("no frames to resize")
    h, w = frames[0].shape[:2]
    (rh, rw), crop = _resize_plan(spec, h, w, n_frames)
    pad = spec.resize == "longest_pad"
    floats = spec.pixels != "uint8"
    if (rh, rw) == (h, w) and crop is None and not pad and not floats:
        return torch.from_numpy(np.stack(frames))
    oh, ow = spec.output_size(h, w, n_frames)
    # zeros: the black letterbox of longest_pad (0 is black in [0, 1] too)
    out = torch.zeros((len(frames), oh, ow, 3), dtype=torch.float32 if floats else torch.uint8)
    # HPSv2 ResizeMaxSize: pad_h // 2 above, the rest below (same for width).
    y0, x0 = ((oh - rh) // 2, (ow - rw) // 2) if pad else (0, 0)
    top = left = 0
    if crop is not None:
        # torchvision.transforms.functional.center_crop: int(round((size_in - size_out) / 2.0))
        top, left = int(round((rh - crop) / 2.0)), int(round((rw - crop) / 2.0))
    for start in range(0, len(frames), _RESIZE_CHUNK):
        part = frames[start : start + _RESIZE_CHUNK]
        if spec.resampler == "pil":
            x = _resample_pil(part, (h, w), (rh, rw), spec.interpolation)
        else:
            x = _resample_torch(part, (h, w), (rh, rw), spec).permute(0, 2, 3, 1)
        if crop is not None:
            x = x[:, top : top + crop, left : left + crop]
        out[start : start + len(part), y0 : y0 + x.shape[1], x0 : x0 + x.shape[2]] = x
    return out


def _resample_torch(
    part: Sequence[np.ndarray], size: tuple[int, int], new_size: tuple[int, int], spec: FrameSpec
) -> torch.Tensor:
    """N x 3 x h x w: float32 per ``spec.pixels``, or rounded uint8; each step where torchvision takes it.

    The layouts matter for bit-exactness, as interpolate's kernels for channels-last and contiguous
    tensors round differently: VBench permutes a T x H x W x C float tensor (channels-last strides, as
    here), while ``ToTensor`` makes each image contiguous.
    """
    x = torch.from_numpy(np.stack(part)).permute(0, 3, 1, 2)
    if spec.pixels == "float_0_1":
        x = x.contiguous().to(torch.float32).div_(255.0)
    else:
        x = x.to(torch.float32)
    if new_size != size:
        x = torch.nn.functional.interpolate(
            x, size=new_size, mode=spec.interpolation, align_corners=False, antialias=spec.antialias
        )
    if spec.pixels == "float_0_255":
        return x.div_(255.0)
    if spec.pixels == "float_0_1":
        return x
    return x.round_().clamp_(0, 255).to(torch.uint8)


def _resample_pil(
    part: Sequence[np.ndarray], size: tuple[int, int], new_size: tuple[int, int], interpolation: str
) -> torch.Tensor:
    """N x h x w x 3 uint8 resized by PIL, as torchvision's ``Resize`` does for PIL images."""
    if new_size == size:  # torchvision returns the image untouched
        return torch.from_numpy(np.stack(part))
    from PIL import Image

    method = Image.Resampling.BICUBIC if interpolation == "bicubic" else Image.Resampling.BILINEAR
    (rh, rw) = new_size
    return torch.from_numpy(np.stack([np.asarray(Image.fromarray(f).resize((rw, rh), method)) for f in part]))


class FrameView:
    """One spec's frames, derived from a decode's kept uint8 frames on demand, a slice at a time.

    A view that enlarges frames (a 64 x 64 video seen at 224 x 224) or makes them float is many times the
    size of the decoded video; deriving it per batch bounds that to a batch whatever the video's length.
    Equal slices always hold equal values (``frames(0, n)`` equals the whole view's first n frames).
    """

    def __init__(self, frames: Sequence[np.ndarray], spec: FrameSpec) -> None:
        if not frames:
            raise ValueError(f"{spec.describe()}: a view needs at least one frame")
        self.spec = spec
        self._frames = list(frames)
        h, w = frames[0].shape[:2]
        self.shape: tuple[int, int, int, int] = (len(frames), *spec.output_size(h, w, len(frames)), 3)
        self.dtype = torch.uint8 if spec.pixels == "uint8" else torch.float32

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        """Bytes of the whole view, were it materialised."""
        return math.prod(self.shape) * (1 if self.dtype == torch.uint8 else 4)

    def sources(self) -> dict[int, np.ndarray]:
        """The decoded frames this view keeps alive, by ``id`` (a repeated frame once)."""
        return {id(f): f for f in self._frames}

    @property
    def source_nbytes(self) -> int:
        """Bytes of the decoded frames this view keeps alive."""
        return sum(f.nbytes for f in self.sources().values())

    def frames(self, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Frames ``start:stop`` of the view (a fresh tensor the caller may modify)."""
        part = self._frames[start:stop]
        if not part:
            return torch.zeros((0, *self.shape[1:]), dtype=self.dtype)
        return _resize_frames(part, self.spec, len(self._frames))


# ------------------------------------------------------------------------------------------------ decode


@dataclass(eq=False)
class DecodedVideo:
    """One decode of one file: every frame's timestamp, and the pixels of the frames some spec needs.

    ``timestamps`` are float64 seconds since the stream start in presentation order, for ALL frames
    (``n_frames`` of them), even those whose pixels were not kept. ``fps`` is the container's average frame
    rate (for variable frame rate, the average), falling back to one derived from the timestamps.
    """

    path: str
    timestamps: np.ndarray
    fps: float
    width: int
    height: int
    n_frames: int
    backend: str
    _frames: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    _plans: dict[FrameSpec, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def specs(self) -> tuple[FrameSpec, ...]:
        """The specs this decode kept frames for (the only ones ``view`` accepts)."""
        return tuple(self._plans)

    @property
    def nbytes(self) -> int:
        """Memory held by the kept frames (what a decode queue should budget for)."""
        return sum(a.nbytes for a in self._frames.values())

    def frame_indices(self, spec: FrameSpec) -> np.ndarray:
        """Indices of ``spec``'s frames among all frames (presentation order); repeats are possible."""
        return self._plan(spec).copy()

    def view(self, spec: FrameSpec) -> tuple[torch.Tensor, np.ndarray]:
        """``spec``'s frames (T x H x W x 3 RGB, a fresh tensor the caller may modify) and timestamps.

        uint8, or float32 for a float ``spec.pixels``. Computed from the frames kept at decode time, never by
        reading the file again; deterministic, so equal specs give identical content.
        """
        return self.frame_view(spec).frames(), self.timestamps[self._plan(spec)].copy()

    def frame_view(self, spec: FrameSpec) -> FrameView:
        """``spec``'s frames as a ``FrameView``: derived when sliced, holding only the decoded frames."""
        plan = self._plan(spec)
        refused = getattr(self._plans, "refused", {})
        if spec in refused:
            raise VbenchPrefError(refused[spec])
        frames = [self._frames[int(i)] for i in plan]
        if not frames:  # a decode always has >= 1 frame, and every spec samples >= 1 of them
            raise ValueError(f"{self.path}: {spec.describe()} selects no frames")
        return FrameView(frames, spec)

    def _plan(self, spec: FrameSpec) -> np.ndarray:
        try:
            return self._plans[spec]
        except KeyError:
            raise ValueError(
                f"{self.path}: frames for {spec!r} were not kept by this decode; pass the spec to decode_video "
                f"(decoded specs: {list(self._plans)})"
            ) from None


def available_backends() -> tuple[str, ...]:
    """Backends usable here (decord is an optional dependency)."""
    try:
        import decord  # noqa: F401
    except ImportError:
        return ("pyav",)
    return BACKENDS


def decode_video(
    path: str | Path, specs: Sequence[FrameSpec] = (FrameSpec(),), backend: str = "pyav"
) -> DecodedVideo:
    """Decode ``path`` once, keeping the frames the union of ``specs`` needs, converted to RGB.

    Raises VideoDecodeError (one line naming the file) for anything wrong with the file: a broken video
    must become a row in errors.csv, not a crashed run. Raises ValueError for bad arguments and
    BackendUnavailable when ``backend="decord"`` is not installed (those are fatal to a run on purpose).
    """
    with _DECODES_LOCK:
        DECODES[str(path)] += 1
    specs = tuple(dict.fromkeys(specs))
    for spec in specs:
        if not isinstance(spec, FrameSpec):
            raise TypeError(f"decode_video specs must be FrameSpec, got {type(spec).__name__}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown decode backend {backend!r}; choose one of {BACKENDS}")
    name = str(path)
    p = Path(path)
    if not p.exists():
        raise _decode_error(name, "file not found")
    if not p.is_file():
        raise _decode_error(name, "not a regular file")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise _decode_error(name, f"cannot stat file ({_one_line(exc)})") from None
    if size == 0:
        raise _decode_error(name, "empty file (0 bytes)")
    if backend == "decord":
        return _decode_decord(name, specs)
    return _decode_pyav(name, specs)


def _decode_error(path: str, reason: str) -> VideoDecodeError:
    return VideoDecodeError(f"{path}: {_one_line(reason)}")


_LOG_PREFIX = re.compile(r"^\[[\d:]+\]\s+\S+:\d+:\s*")


def _one_line(reason: object) -> str:
    """FFmpeg and decord messages can span lines and carry log prefixes; errors.csv wants one clean line."""
    text = str(reason).strip()
    lines = [_LOG_PREFIX.sub("", ln).strip() for ln in text.splitlines() if ln.strip()]
    text = "; ".join(dict.fromkeys(lines)) if lines else type(reason).__name__
    return re.sub(r"\s+", " ", text)


def _make_video(
    path: str, backend: str, ts: np.ndarray, fps: float, frames: dict[int, np.ndarray],
    plans: dict[FrameSpec, np.ndarray], width: int, height: int,
) -> DecodedVideo:
    return DecodedVideo(
        path=path, timestamps=ts, fps=fps, width=width, height=height, n_frames=len(ts), backend=backend,
        _frames=frames, _plans=plans,
    )


def _fallback_fps(ts: np.ndarray) -> float:
    if len(ts) > 1 and ts[-1] > ts[0]:
        return float((len(ts) - 1) / (ts[-1] - ts[0]))
    return 0.0


class _Plans(dict):
    """Frame indices by spec; ``refused``: specs that cannot sample this video (no frames) and why."""

    def __init__(self) -> None:
        super().__init__()
        self.refused: dict[FrameSpec, str] = {}


def _plans_for(specs: Sequence[FrameSpec], ts: np.ndarray, fps: float) -> tuple[_Plans, np.ndarray]:
    """Each spec's frame indices, and the union of frames to keep.

    A spec that cannot sample this video (below a model's minimum frame count) gets no frames and its
    reason, so that only its evaluators fail on this video: ``DecodedVideo.frame_view`` raises it.
    """
    plans = _Plans()
    for spec in specs:
        try:
            plans[spec] = _sample_indices(spec, ts, fps)
        except VbenchPrefError as exc:
            plans[spec] = np.zeros(0, dtype=np.int64)
            plans.refused[spec] = str(exc)
    for idx in plans.values():
        idx.setflags(write=False)
    keep = np.unique(np.concatenate(list(plans.values()))) if plans else np.zeros(0, dtype=np.int64)
    return plans, keep


def _frame_to_rgb(frame: Any, width: int, height: int) -> np.ndarray:
    """RGB of one av.VideoFrame with swscale's defaults (BT.601, no dithering flags): matches decord.

    A stream that changes resolution mid-way is scaled to its first frame's size, as decord does.
    The copy detaches the pixels from the decoder's buffer pool.
    """
    if frame.width != width or frame.height != height:
        arr = frame.to_ndarray(format="rgb24", width=width, height=height)
    else:
        arr = frame.to_ndarray(format="rgb24")
    return np.array(arr, dtype=np.uint8, copy=True, order="C")


def _decode_pyav(path: str, specs: Sequence[FrameSpec]) -> DecodedVideo:
    """One demux+decode pass with PyAV.

    Which frames a spec needs depends on all timestamps (e.g. "count" needs the total), known only at the
    end. So during the pass we keep a reference to every decoded av.VideoFrame (its native YUV, ~1.5 bytes
    per pixel for 4:2:0) and convert only the needed ones to RGB afterwards. When some spec needs every
    frame anyway, frames are converted as they come so the YUV copies are freed at once.
    """
    import av

    try:
        container = av.open(path, mode="r", metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise _decode_error(path, f"{_unreadable(path)} ({_av_reason(exc)})") from None
    except (OSError, ValueError, EOFError) as exc:
        raise _decode_error(path, f"cannot open ({_one_line(exc)})") from None
    with container:
        if not container.streams.video:
            raise _decode_error(path, "no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        expected = int(stream.frames or 0)
        stream_tb = Fraction(stream.time_base) if stream.time_base else Fraction(1)
        start = Fraction(stream.start_time or 0) * stream_tb  # decord's origin too
        eager = any(spec.sampling == "all" for spec in specs)
        raw_ts: list[float | None] = []
        held: list[Any] = []  # av.VideoFrame (lazy) or RGB arrays (eager)
        width = height = 0
        discarded = 0
        first_corrupt = -1
        try:
            for packet in container.demux(stream):
                if packet.size and packet.is_discard:
                    # Edit-list pre-roll: decoded as a reference but never shown, so not a frame of the video.
                    discarded += 1
                for frame in packet.decode():
                    if not raw_ts:
                        width, height = frame.width, frame.height
                    tb = Fraction(frame.time_base) if frame.time_base else stream_tb
                    raw_ts.append(float(frame.pts * tb - start) if frame.pts is not None else None)
                    if first_corrupt < 0 and frame.is_corrupt:
                        first_corrupt = len(raw_ts) - 1
                    held.append(_frame_to_rgb(frame, width, height) if eager else frame)
        except (av.FFmpegError, OSError, ValueError, EOFError, MemoryError) as exc:
            of = f" of {expected - discarded}" if expected > discarded else ""
            raise _decode_error(
                path, f"truncated or corrupt: decoded {len(raw_ts)}{of} frames ({_av_reason(exc)})"
            ) from None
        if not raw_ts:
            raise _decode_error(path, "no frames decoded")
        if expected and len(raw_ts) < expected - discarded:
            raise _decode_error(
                path, f"truncated or corrupt: decoded {len(raw_ts)} of {expected - discarded} frames"
            )
        if first_corrupt >= 0:
            # FFmpeg conceals damaged slices and carries on; a score of concealment artefacts is not a
            # score of the model, so a damaged frame fails the video (decord cannot detect this).
            raise _decode_error(
                path, f"truncated or corrupt: frame {first_corrupt} of {len(raw_ts)} is damaged (decode errors)"
            )
        avg_rate = stream.average_rate
        ts = _fill_timestamps(raw_ts, float(avg_rate) if avg_rate else 0.0)
        order = np.argsort(ts, kind="stable")
        if np.any(order != np.arange(len(ts))):
            ts = ts[order]
            held = [held[i] for i in order]
        fps = float(avg_rate) if avg_rate and avg_rate > 0 else _fallback_fps(ts)
        plans, keep = _plans_for(specs, ts, fps)
        try:
            frames = {
                int(i): held[i] if eager else _frame_to_rgb(held[i], width, height) for i in keep
            }
        except (av.FFmpegError, ValueError) as exc:
            raise _decode_error(path, f"cannot convert frames to RGB ({_av_reason(exc)})") from None
        del held
    return _make_video(path, "pyav", ts, fps, frames, plans, width, height)


def _fill_timestamps(raw: list[float | None], rate: float) -> np.ndarray:
    """Frames without a pts (rare: some raw/AVI streams) get the previous one plus one nominal interval."""
    step = 1.0 / rate if rate > 0 else 1.0 / 25.0
    out = np.empty(len(raw), dtype=np.float64)
    prev = None
    for i, t in enumerate(raw):
        if t is None:
            t = 0.0 if prev is None else prev + step
        out[i] = t
        prev = t
    return out


def _unreadable(path: str) -> str:
    """Tell a cut-off mp4/mov (its index is written last by default) from a file that is no video at all."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return "not a readable video"
    if head[4:8] in (b"ftyp", b"mdat", b"moov", b"wide", b"free"):
        return "truncated or corrupt mp4/mov (its index is missing or unreadable)"
    return "not a readable video"


def _av_reason(exc: BaseException) -> str:
    """The FFmpeg reason without PyAV's errno prefix and the file name (the message already names it)."""
    text = getattr(exc, "strerror", None) or str(exc)
    return _one_line(text)


def _import_decord() -> Any:
    try:
        import decord
    except ImportError:
        raise BackendUnavailable(
            "backend 'decord' needs the decord package: pip install 'vbench-pref[decord]' (or use backend 'pyav')"
        ) from None
    return decord


def _decode_decord(path: str, specs: Sequence[FrameSpec]) -> DecodedVideo:
    """decord: it indexes every packet at open (timestamps, count), then ``get_batch`` decodes the kept frames.

    ``fault_tol=0`` makes decord fail on a corrupt frame instead of silently repeating the previous one.
    Its timestamps are float32; sampling tolerates that, and they equal PyAV's to ~1e-6 s. decord 0.6
    fails on a few frame widths (16, 24, 48, 72 seen) with "Check failed: from_size == to_size"; that is
    reported as a VideoDecodeError for the file; use the pyav backend for such videos.
    """
    decord = _import_decord()
    errors: tuple[type[BaseException], ...] = (
        decord.DECORDError, RuntimeError, OSError, ValueError, MemoryError,
    )
    n = 0
    try:
        vr = decord.VideoReader(path, ctx=decord.cpu(0), fault_tol=0)
        n = len(vr)
        if n == 0:
            raise _decode_error(path, "no frames decoded")
        # decord's frame i is its i-th frame in pts order, so these are already in presentation order.
        ts = np.asarray(vr.get_frame_timestamp(list(range(n))), dtype=np.float64)[:, 0]
        rate = float(vr.get_avg_fps())
        fps = rate if math.isfinite(rate) and rate > 0 else _fallback_fps(ts)
        plans, keep = _plans_for(specs, ts, fps)
        first = vr[0] if len(keep) == 0 else None
        batch = _to_numpy(vr.get_batch([int(i) for i in keep])) if len(keep) else None
        if batch is None:
            assert first is not None
            height, width = _to_numpy(first).shape[:2]
            frames: dict[int, np.ndarray] = {}
        else:
            height, width = batch.shape[1:3]
            frames = {int(i): batch[j] for j, i in enumerate(keep)}
    except VideoDecodeError:
        raise
    except errors as exc:
        msg = _one_line(exc).replace(path, "file")
        if n == 0 and ("av_read_frame failed" in msg):
            raise _decode_error(path, f"truncated or corrupt ({msg})") from None
        if n == 0 and "video stream" in msg.lower():
            raise _decode_error(path, "no video stream") from None
        if n == 0:
            raise _decode_error(path, f"{_unreadable(path)} ({msg})") from None
        raise _decode_error(path, f"decord could not decode the frames ({msg})") from None
    return _make_video(path, "decord", ts, fps, frames, plans, int(width), int(height))


def _to_numpy(x: Any) -> np.ndarray:
    """decord returns its own NDArray, or a torch tensor if someone called decord.bridge.set_bridge('torch')."""
    if hasattr(x, "asnumpy"):
        return np.asarray(x.asnumpy())
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


# ------------------------------------------------------------------------------------------------- write

_CONTAINER_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}


def exact_fps(fps: float | Fraction) -> Fraction:
    """The frame rate as a small fraction, so the container stores it exactly.

    Floats are matched by the smallest denominator that reproduces them (to 1e-9): 16 -> 16/1,
    29.97 -> 2997/100, 30000/1001 (float) -> 30000/1001. A decimal like 29.97 is therefore stored as
    written, not as NTSC 30000/1001 (which is 1e-6 off); pass ``Fraction(30000, 1001)`` for true NTSC.
    """
    if isinstance(fps, Fraction):
        frac = fps
    else:
        value = float(fps)
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        frac = Fraction(value).limit_denominator(1001)
        if abs(float(frac) - value) > 1e-9 * value:
            frac = Fraction(value).limit_denominator(1_000_000)
    if frac <= 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    return frac


def write_video(
    path: str | Path,
    frames: np.ndarray | torch.Tensor,
    fps: float | Fraction,
    *,
    crf: int = 18,
    lossless: bool = False,
    preset: str = "medium",
    faststart: bool = True,
) -> Path:
    """Write uint8 RGB frames (T x H x W x 3) as H.264 with exact fps metadata, atomically.

    - Lossy (default): libx264 at ``crf`` (18 is visually near-lossless), yuv420p, BT.601 like the decoder
      assumes. Odd width or height cannot be stored in 4:2:0 (chroma is per 2x2 block), so those videos use
      yuv444p instead of padding or cropping the content.
    - ``lossless=True``: libx264rgb with qp 0, i.e. H.264 in RGB (decoded as gbrp) with no YUV round trip,
      so ``decode_video`` gives back the exact input arrays. Kept in .mp4 (unlike ffv1/.mkv) so tests and
      examples can use the same file names; any size works.
    - ``faststart`` moves the index to the front, as web players need.

    The file is written to a hidden temporary name in the same directory and renamed into place, so an
    interrupted write never leaves a partial video at ``path``. Returns ``path``.
    """
    import av

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _CONTAINER_FORMATS:
        raise ValueError(f"write_video writes {sorted(_CONTAINER_FORMATS)} files, got {path.name!r}")
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be T x H x W x 3, got shape {tuple(frames.shape)}")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    t, h, w = frames.shape[:3]
    if t < 1 or h < 2 or w < 2:
        raise ValueError(f"need >= 1 frame of at least 2 x 2 pixels, got shape {tuple(frames.shape)}")
    rate = exact_fps(fps)

    # Not ending in the video suffix: a folder scan running meanwhile does not pick up the partial file.
    with atomic_path(path) as tmp:
        options = {"movflags": "+faststart"} if faststart and suffix in (".mp4", ".mov") else {}
        with av.open(str(tmp), mode="w", format=_CONTAINER_FORMATS[suffix], options=options) as container:
            if lossless:
                stream = container.add_stream("libx264rgb", rate=rate)
                stream.pix_fmt = "rgb24"
                stream.options = {"qp": "0", "preset": preset}
            else:
                stream = container.add_stream("libx264", rate=rate)
                stream.pix_fmt = "yuv420p" if h % 2 == 0 and w % 2 == 0 else "yuv444p"
                stream.options = {"crf": str(crf), "preset": preset}
                cc = stream.codec_context
                cc.colorspace = 6  # SMPTE 170M = BT.601: what swscale used for RGB->YUV and decoders assume
                cc.color_range = 1  # limited ("tv") range
            stream.width, stream.height = w, h
            encode_frames(container, stream, frames)
    return path


def encode_frames(container: Any, stream: Any, frames: np.ndarray) -> None:
    """Encode uint8 RGB frames (T x H x W x 3) into an open PyAV stream, one pts per frame, then flush it."""
    import av

    for i in range(len(frames)):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frames[i]), format="rgb24")
        frame.pts = i
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
