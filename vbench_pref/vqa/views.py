"""The input views of DOVER and FAST-VQA / FasterVQA, built from a video's decoded frames, reproducibly.

Both models see a video through *views*: the technical branch (FAST-VQA's network) sees **fragments**, a
grid of small native-resolution patches spliced into one 224 x 224 picture; DOVER's aesthetic branch sees
the frames **resized** to 224 x 224. Which frames and which patches are random in the reference code; here
every random number comes from one ``torch.Generator`` seeded by (run seed, video id, draw number), and the
numbers drawn are returned as a :class:`ViewDraw` so run.json can record them and a rerun rebuild the same
tensors.

Input: ``frames``, every decoded frame of the video in presentation order (what the engine's decode gives
for ``FrameSpec()``): a uint8 ``T x H x W x 3`` RGB tensor (views are built on its device) or array, or a
sequence of ``H x W x 3`` uint8 arrays (only the sampled frames are read).

Output contract (what the networks take): per view a float32 tensor ``clips x 3 x T x H x W``, contiguous,
RGB channels normalised as ``(pixel - mean) / std`` on the 0..255 scale with ImageNet's
``mean = (123.675, 116.28, 103.53)``, ``std = (58.395, 57.12, 57.375)``:

==============  ==============  ===========================================  ===========================
preset          view (key)      shape                                        temporal sampling
==============  ==============  ===========================================  ===========================
``dover``       ``technical``   3 x 3 x 32 x 224 x 224 (3 clips of 32)       3 segments x 32 f, step 2
``dover``       ``aesthetic``   1 x 3 x 32 x 224 x 224                       32 segments x 1 f
``fast_vqa``    ``fragments``   4 x 3 x 32 x 224 x 224 (FAST-VQA-B)          4 segments x 32 f, step 2
``faster_vqa``  ``fragments``   1 x 3 x 32 x 224 x 224 (FasterVQA)           8 segments x 4 f, step 2
==============  ==============  ===========================================  ===========================

``fast_vqa_script`` / ``faster_vqa_script``: the same fragments (4 clips / 1 clip) with the temporal
sampling of FAST-VQA's one-video script ``vqa.py`` instead of its test-set loader: ``centred`` clips of 32
consecutive frames. The presets without ``_script`` follow the test-set loader (``FusionDataset``, the
sampling of the published benchmark results, and the one DOVER uses for its technical branch).

DOVER-Mobile takes the same views as DOVER. The network scores every clip of a view (the clips are a batch)
and the reference averages the head's output over clips and positions.

The rules, as the reference's test-time data pipeline applies them (``UnifiedFrameSampler`` /
``FragmentSampleFrames``, ``get_spatial_fragments``, ``get_resized_video``):

Temporal sampling. A view's sampler cuts the ``n`` frames into ``segments`` equal parts starting at
``n // segments * s`` and takes ``segment_frames`` frames ``interval`` apart from each, at a random offset
in ``[0, n // segments - segment_frames * interval)`` per segment (offset 0 when that range is empty); the
whole is repeated ``passes`` times with fresh offsets, and every index is taken modulo ``n``, so a short
video wraps around to its first frames. A view without ``t_frag`` uses ``segments = num_clips`` segments of
``clip_len`` frames (one pass); a view with ``t_frag`` uses ``t_frag`` segments of ``clip_len // t_frag``
frames, ``num_clips`` passes.

The ``centred`` sampler (``SampleFrames`` at test time) has no randomness: ``num_clips`` clips of
``clip_len`` frames ``interval`` apart, clip ``k`` starting at ``int(k * avg + avg / 2)`` with ``avg = (n -
clip_len * interval + 1) / num_clips`` (all at 0 when ``n < clip_len * interval``), indices modulo ``n``.

Fragments. A video with ``ratio = min(H / 224, W / 224) < 1`` is first enlarged by ``1 / ratio``: ``interpolate`` on ``frame / 255.0`` (float32, bilinear,
``align_corners=False``, ``scale_factor`` given), times 255.0, then truncated back to uint8. The grid is
then laid on the *original* ``H x W`` (as the reference does: the cells' origins ``min(H // 7 * i, H - 32)``
and their random range ``H // 7 - 32`` come from the size before enlarging, so on an enlarged video the
fragments come from its top-left part). Each of the 7 x 7 cells takes a 32 x 32 patch at ``origin +
offset``, offsets drawn per cell and per group of ``aligned`` consecutive sampled frames (shared within the
group: temporally aligned fragments), independently for rows and columns (offset 0 when a cell is not
larger than a patch). Patches are spliced in grid order into the 224 x 224 picture.

Resize. ``interpolate`` of the uint8 frames cast to float32 to ``size_h x size_w`` ignoring the aspect
ratio (bilinear, ``align_corners=False``), rounded back to uint8: torchvision's tensor ``Resize``.
``antialias`` is False, as in the torchvision the reference pins (torch 1.13 / torchvision 0.14);
torchvision 0.17+ defaults to True.

Random numbers are drawn in this order per view: the temporal offsets (one ``randint`` of ``segments``
values per pass), then the fragments' row offsets (``grid_h x grid_w x groups``), then their column
offsets, each draw skipped when its range is empty. The reference draws the same quantities, in the same
shapes and ranges, from numpy's (temporal) and torch's (fragments) global generators.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from vbench_pref.errors import ScoreError, VbenchPrefError

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)

Frames = torch.Tensor | np.ndarray | Sequence[np.ndarray]


@dataclass(frozen=True)
class ViewSpec:
    """One view, in the terms of the reference's ``sample_types`` entries."""

    name: str  # the branch key the network reads it under
    kind: Literal["fragments", "resize"]
    sampler: Literal["segments", "centred"] = "segments"
    clip_len: int = 32
    frame_interval: int = 2
    num_clips: int = 1
    t_frag: int | None = None
    # fragments
    fragments_h: int = 7
    fragments_w: int = 7
    fsize_h: int = 32
    fsize_w: int = 32
    aligned: int = 32
    # resize
    size_h: int = 224
    size_w: int = 224
    antialias: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("fragments", "resize"):
            raise ValueError(f"view {self.name}: kind is 'fragments' or 'resize', not {self.kind!r}")
        if self.sampler not in ("segments", "centred") or (self.sampler == "centred" and self.t_frag is not None):
            raise ValueError(f"view {self.name}: sampler is 'segments' or 'centred' (without t_frag), not {self.sampler!r}")
        if self.t_frag is not None and self.clip_len % self.t_frag:
            raise ValueError(f"view {self.name}: clip_len {self.clip_len} is not a multiple of t_frag {self.t_frag}")
        if self.kind == "fragments" and self.frame_count % self.aligned:
            raise ValueError(f"view {self.name}: {self.frame_count} sampled frames are not groups of {self.aligned}")
        if self.frame_count % self.num_clips:
            raise ValueError(f"view {self.name}: {self.frame_count} sampled frames do not split into {self.num_clips} clips")

    @property
    def segment_frames(self) -> int:
        """Frames taken from each temporal segment (the sampler's ``fsize_t``)."""
        return self.clip_len if self.t_frag is None else self.clip_len // self.t_frag

    @property
    def segments(self) -> int:
        """Temporal segments per pass (the sampler's ``fragments_t``)."""
        return self.num_clips if self.t_frag is None else self.t_frag

    @property
    def passes(self) -> int:
        """How many times the segments are sampled (the sampler's ``num_clips``)."""
        return 1 if self.t_frag is None else self.num_clips

    @property
    def frame_count(self) -> int:
        return self.segment_frames * self.segments * self.passes

    @property
    def out_size(self) -> tuple[int, int]:
        if self.kind == "fragments":
            return self.fragments_h * self.fsize_h, self.fragments_w * self.fsize_w
        return self.size_h, self.size_w

    def output_shape(self) -> tuple[int, int, int, int, int]:
        """``clips x 3 x T x H x W`` of the built view."""
        return (self.num_clips, 3, self.frame_count // self.num_clips, *self.out_size)


DOVER_TECHNICAL = ViewSpec("technical", "fragments", clip_len=32, frame_interval=2, num_clips=3, aligned=32)
DOVER_AESTHETIC = ViewSpec("aesthetic", "resize", clip_len=32, frame_interval=2, num_clips=1, t_frag=32)
FAST_VQA_B = ViewSpec("fragments", "fragments", clip_len=32, frame_interval=2, num_clips=4, aligned=32)
FASTER_VQA = ViewSpec("fragments", "fragments", clip_len=32, frame_interval=2, num_clips=1, t_frag=8, aligned=8)
# FAST-VQA's one-video script (vqa.py) samples differently from its test set loader: fixed clips of 32
# consecutive frames (its ``SampleFrames``, whose frame_interval it leaves at 1), whatever the variant
FAST_VQA_B_SCRIPT = ViewSpec("fragments", "fragments", "centred", clip_len=32, frame_interval=1, num_clips=4, aligned=32)
FASTER_VQA_SCRIPT = ViewSpec("fragments", "fragments", "centred", clip_len=32, frame_interval=1, num_clips=1, aligned=8)

# the views each model takes, in the order their random numbers are drawn
PRESETS: dict[str, tuple[ViewSpec, ...]] = {
    "dover": (DOVER_TECHNICAL, DOVER_AESTHETIC),
    "dover_mobile": (DOVER_TECHNICAL, DOVER_AESTHETIC),
    "fast_vqa": (FAST_VQA_B,),
    "faster_vqa": (FASTER_VQA,),
    "fast_vqa_script": (FAST_VQA_B_SCRIPT,),
    "faster_vqa_script": (FASTER_VQA_SCRIPT,),
}


@dataclass(frozen=True)
class ViewDraw:
    """The random numbers one view was built with, and the frames they select.

    ``temporal_offsets``: ``passes x segments`` (for the ``centred`` sampler, ``1 x num_clips`` clip starts,
    not random); ``offsets_h`` / ``offsets_w`` (fragments only):
    ``fragments_h x fragments_w x groups``, offsets inside each grid cell.
    """

    view: str
    num_frames: int
    temporal_offsets: tuple[tuple[int, ...], ...]
    frame_indices: tuple[int, ...]
    offsets_h: tuple[tuple[tuple[int, ...], ...], ...] | None = None
    offsets_w: tuple[tuple[tuple[int, ...], ...], ...] | None = None

    def record(self) -> dict[str, Any]:
        """JSON-ready, for run.json."""
        out: dict[str, Any] = {
            "num_frames": self.num_frames,
            "temporal_offsets": [list(p) for p in self.temporal_offsets],
            "frame_indices": list(self.frame_indices),
        }
        if self.offsets_h is not None and self.offsets_w is not None:
            out["offsets_h"] = _as_lists(self.offsets_h)
            out["offsets_w"] = _as_lists(self.offsets_w)
        return out


def _as_lists(nested: Any) -> Any:
    return [_as_lists(x) for x in nested] if isinstance(nested, tuple) else nested


def _as_tuples(array: torch.Tensor | np.ndarray) -> Any:
    return _tuplify(np.asarray(array).tolist())


def _tuplify(nested: Any) -> Any:
    return tuple(_tuplify(x) for x in nested) if isinstance(nested, list) else int(nested)


# --------------------------------------------------------------------------------------------- seeding
def view_seed(run_seed: int, video_id: str, draw: int = 0) -> int:
    """A 63-bit seed for (run seed, video, draw number), the same in every process and on every machine."""
    digest = hashlib.sha256(f"vqa-views\0{int(run_seed)}\0{video_id}\0{int(draw)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def view_generator(run_seed: int, video_id: str, draw: int = 0) -> torch.Generator:
    """The CPU generator the ``draw``-th set of views of ``video_id`` is drawn from."""
    generator = torch.Generator(device="cpu")
    generator.manual_seed(view_seed(run_seed, video_id, draw))
    return generator


def _randint(high: int, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Uniform integers in [0, high), or zeros when the range is empty (the reference's fallback)."""
    if high > 0:
        return torch.randint(high, shape, generator=generator, dtype=torch.int64)
    return torch.zeros(shape, dtype=torch.int64)


# --------------------------------------------------------------------------------------------- draws
def frame_indices(spec: ViewSpec, num_frames: int, temporal_offsets: np.ndarray) -> np.ndarray:
    """The sampled frame indices for ``passes x segments`` offsets, wrapped modulo ``num_frames``."""
    seg_len = num_frames // spec.segments
    starts = np.arange(spec.segments, dtype=np.int64) * seg_len
    within = np.arange(spec.segment_frames, dtype=np.int64) * spec.frame_interval
    offsets = np.asarray(temporal_offsets, dtype=np.int64).reshape(spec.passes, spec.segments)
    indices = starts[None, :, None] + offsets[:, :, None] + within[None, None, :]
    return np.mod(indices.reshape(-1), num_frames)


def centred_clip_indices(spec: ViewSpec, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Clip starts and frame indices of the ``centred`` sampler (no randomness): ``num_clips`` clips, each
    in the middle of its share of the video (``int(k * avg + avg / 2)``, ``avg = (n - span + 1) / clips``),
    all at 0 when the video is shorter than one clip's span; indices modulo ``num_frames``."""
    span = spec.clip_len * spec.frame_interval
    avg = (num_frames - span + 1) / float(spec.num_clips)
    if num_frames > span - 1:
        starts = (np.arange(spec.num_clips) * avg + avg / 2.0).astype(np.int32).astype(np.int64)
    else:
        starts = np.zeros(spec.num_clips, dtype=np.int64)
    indices = starts[:, None] + np.arange(spec.clip_len, dtype=np.int64)[None, :] * spec.frame_interval
    return starts, np.mod(indices.reshape(-1), num_frames)


def draw_view(spec: ViewSpec, num_frames: int, height: int, width: int, generator: torch.Generator) -> ViewDraw:
    """Draw one view's random numbers for a ``num_frames`` x ``height`` x ``width`` video."""
    if num_frames < 1:
        raise ScoreError(f"view {spec.name}: the video has no frames")
    if spec.sampler == "centred":
        starts, indices = centred_clip_indices(spec, num_frames)
        temporal = starts[None, :]  # recorded as the clip starts: nothing temporal is random here
    else:
        high = num_frames // spec.segments - spec.segment_frames * spec.frame_interval
        temporal = torch.stack([_randint(high, (spec.segments,), generator) for _ in range(spec.passes)]).numpy()
        indices = frame_indices(spec, num_frames, temporal)
    if spec.kind == "resize":
        return ViewDraw(spec.name, num_frames, _as_tuples(temporal), tuple(int(i) for i in indices))
    _check_fragment_size(spec, height, width)
    groups = spec.frame_count // spec.aligned
    shape = (spec.fragments_h, spec.fragments_w, groups)
    rnd_h = _randint(height // spec.fragments_h - spec.fsize_h, shape, generator)
    rnd_w = _randint(width // spec.fragments_w - spec.fsize_w, shape, generator)
    return ViewDraw(
        spec.name, num_frames, _as_tuples(temporal), tuple(int(i) for i in indices), _as_tuples(rnd_h), _as_tuples(rnd_w)
    )


def _check_fragment_size(spec: ViewSpec, height: int, width: int) -> None:
    # the reference's grid would start cells at negative rows/columns and fail to splice them
    if height < spec.fsize_h or width < spec.fsize_w:
        raise ScoreError(
            f"view {spec.name}: a {width}x{height} video is smaller than one {spec.fsize_w}x{spec.fsize_h} fragment"
        )


# --------------------------------------------------------------------------------------------- frames
def _frame_count_and_size(frames: Frames) -> tuple[int, int, int]:
    if isinstance(frames, (torch.Tensor, np.ndarray)):
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise VbenchPrefError(f"views take T x H x W x 3 frames, got shape {tuple(frames.shape)}")
        return int(frames.shape[0]), int(frames.shape[1]), int(frames.shape[2])
    if len(frames) == 0:
        raise ScoreError("the video has no frames")
    first = np.asarray(frames[0])
    if first.ndim != 3 or first.shape[-1] != 3:
        raise VbenchPrefError(f"views take H x W x 3 frames, got shape {tuple(first.shape)}")
    return len(frames), int(first.shape[0]), int(first.shape[1])


def _gather(frames: Frames, indices: np.ndarray) -> torch.Tensor:
    """``len(indices) x H x W x 3`` uint8, reading only the frames named."""
    if isinstance(frames, torch.Tensor):
        picked = frames[torch.as_tensor(indices, dtype=torch.long, device=frames.device)]
    elif isinstance(frames, np.ndarray):
        picked = torch.from_numpy(np.ascontiguousarray(frames[indices]))
    else:
        picked = torch.from_numpy(np.stack([np.asarray(frames[int(i)]) for i in indices]))
    if picked.dtype != torch.uint8:
        raise VbenchPrefError(f"views take uint8 frames, got {picked.dtype}")
    return picked


def _upsample_factor(spec: ViewSpec, height: int, width: int) -> float | None:
    size_h, size_w = spec.out_size
    ratio = min(height / size_h, width / size_w)
    return 1 / ratio if ratio < 1 else None


def _enlarge(frames: torch.Tensor, scale: float) -> torch.Tensor:
    """uint8 ``N x H x W x 3`` enlarged by ``scale`` the reference's way (via [0, 1] floats, truncated back)."""
    planes = frames.permute(0, 3, 1, 2).float() / 255.0
    planes = F.interpolate(planes, scale_factor=scale, mode="bilinear", align_corners=False)
    return (planes * 255.0).to(torch.uint8).permute(0, 2, 3, 1)


def _splice(spec: ViewSpec, frames: torch.Tensor, where: torch.Tensor, draw: ViewDraw, height: int,
            width: int) -> torch.Tensor:
    """``L x out_h x out_w x 3`` uint8: each group's 7x7 patches of frames ``frames[where]``, spliced in grid order."""
    if frames.dtype != torch.uint8:
        raise VbenchPrefError(f"views take uint8 frames, got {frames.dtype}")
    gh, gw, fh, fw = spec.fragments_h, spec.fragments_w, spec.fsize_h, spec.fsize_w
    # cell origins come from the size before any enlarging (the reference's rule)
    device = frames.device
    origin_h = torch.tensor([min(height // gh * i, height - fh) for i in range(gh)], device=device)
    origin_w = torch.tensor([min(width // gw * j, width - fw) for j in range(gw)], device=device)
    rnd_h = torch.tensor(draw.offsets_h, device=device)  # gh x gw x groups
    rnd_w = torch.tensor(draw.offsets_w, device=device)
    out = []
    for g in range(spec.frame_count // spec.aligned):
        rows = (origin_h[:, None] + rnd_h[:, :, g])[:, :, None] + torch.arange(fh, device=device)  # gh x gw x fh
        cols = (origin_w[None, :] + rnd_w[:, :, g])[:, :, None] + torch.arange(fw, device=device)  # gh x gw x fw
        block = where[g * spec.aligned : (g + 1) * spec.aligned].to(device)
        patches = frames[block[:, None, None, None, None], rows[None, :, :, :, None], cols[None, :, :, None, :]]
        # a x gh x gw x fh x fw x 3
        out.append(patches.permute(0, 1, 3, 2, 4, 5).reshape(spec.aligned, gh * fh, gw * fw, 3))
    return torch.cat(out)


def _resize(spec: ViewSpec, frames: torch.Tensor) -> torch.Tensor:
    planes = frames.permute(0, 3, 1, 2).float()
    planes = F.interpolate(
        planes, size=(spec.size_h, spec.size_w), mode="bilinear", align_corners=False, antialias=spec.antialias
    )
    return planes.round().to(torch.uint8).permute(0, 2, 3, 1)


def normalise(pixels: torch.Tensor, clips: int) -> torch.Tensor:
    """``L x H x W x 3`` pixels (0..255) -> ``clips x 3 x L/clips x H x W`` float32, ImageNet-normalised."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=pixels.device).view(1, 3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=pixels.device).view(1, 3, 1, 1, 1)
    length, h, w, _ = pixels.shape
    # one pass to the output layout in float32, then the same (x - mean) / std in place
    x = pixels.reshape(clips, length // clips, h, w, 3).permute(0, 4, 1, 2, 3)
    x = x.to(torch.float32, memory_format=torch.contiguous_format)
    return x.sub_(mean).div_(std)


def build_view(frames: Frames, spec: ViewSpec, draw: ViewDraw) -> torch.Tensor:
    """The view ``spec`` of ``frames`` for the given draw: ``clips x 3 x T x H x W`` float32 (see module doc).

    Built on the device of a ``frames`` tensor (arrays and frame lists: the CPU). The reference's numbers
    are matched exactly on the CPU; on a GPU the enlarging and resizing interpolation may round differently.
    """
    num_frames, height, width = _frame_count_and_size(frames)
    if draw.num_frames != num_frames:
        raise VbenchPrefError(f"view {spec.name}: drawn for {draw.num_frames} frames, the video has {num_frames}")
    indices = np.asarray(draw.frame_indices, dtype=np.int64)
    # each distinct frame is read and enlarged or resized once, however often the sampler repeats it
    unique, inverse = np.unique(indices, return_inverse=True)
    if spec.kind == "fragments":
        _check_fragment_size(spec, height, width)
    scale = _upsample_factor(spec, height, width) if spec.kind == "fragments" else None
    if spec.kind == "fragments" and scale is None and isinstance(frames, torch.Tensor):
        # fragments straight from the decoded frames: only their pixels are copied, never whole frames
        where = torch.as_tensor(indices, dtype=torch.long, device=frames.device)
        return normalise(_splice(spec, frames, where, draw, height, width), spec.num_clips)
    picked = _gather(frames, unique)
    expand = torch.from_numpy(inverse.reshape(-1)).to(picked.device)
    if spec.kind == "resize":
        return normalise(_resize(spec, picked)[expand], spec.num_clips)
    if scale is not None:
        picked = _enlarge(picked, scale)
    return normalise(_splice(spec, picked, expand, draw, height, width), spec.num_clips)


# --------------------------------------------------------------------------------------------- entry points
def sample_views(
    frames: Frames, specs: Sequence[ViewSpec], generator: torch.Generator
) -> tuple[dict[str, torch.Tensor], dict[str, ViewDraw]]:
    """Every view of ``specs`` (drawn in order from ``generator``), by name, and the draws they used."""
    num_frames, height, width = _frame_count_and_size(frames)
    draws = {spec.name: draw_view(spec, num_frames, height, width, generator) for spec in specs}
    return {spec.name: build_view(frames, spec, draws[spec.name]) for spec in specs}, draws


def views_for(
    frames: Frames, specs: Sequence[ViewSpec] | str, run_seed: int, video_id: str, draw: int = 0
) -> tuple[dict[str, torch.Tensor], dict[str, ViewDraw]]:
    """The ``draw``-th set of views of a video: the same for the same (run seed, video id, draw), always."""
    return sample_views(frames, resolve_specs(specs), view_generator(run_seed, video_id, draw))


def iter_views(
    frames: Frames, specs: Sequence[ViewSpec] | str, run_seed: int, video_id: str, draws: int = 1
) -> Iterator[tuple[dict[str, torch.Tensor], dict[str, ViewDraw]]]:
    """Draws ``0 .. draws - 1`` of a video's views, one at a time (scores are averaged over them)."""
    if draws < 1:
        raise VbenchPrefError(f"the number of view draws must be at least 1, got {draws}")
    specs = resolve_specs(specs)
    for k in range(draws):
        yield views_for(frames, specs, run_seed, video_id, k)


def resolve_specs(specs: Sequence[ViewSpec] | str) -> tuple[ViewSpec, ...]:
    """A preset name (``dover``, ``dover_mobile``, ``fast_vqa``, ``faster_vqa``) or the specs themselves."""
    if isinstance(specs, str):
        if specs not in PRESETS:
            raise VbenchPrefError(f"unknown view preset {specs!r}; known: {', '.join(PRESETS)}")
        return PRESETS[specs]
    return tuple(specs)


def record_draws(draws: Mapping[str, ViewDraw]) -> dict[str, dict[str, Any]]:
    """The draws of one set of views, JSON-ready, by view name."""
    return {name: draw.record() for name, draw in draws.items()}
