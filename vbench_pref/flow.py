"""Optical flow with torchvision's RAFT, backward warping, occlusion masks and the warping error.

Conventions used throughout this module:

- Images are float tensors N x C x H x W with values in [0, 1]; flows are N x 2 x H x W in *pixels*,
  channel 0 = horizontal (x, to the right), channel 1 = vertical (y, downwards).
- ``flow_fw`` maps frame t to frame t+1: the pixel at x in I_t is found at x + flow_fw(x) in I_{t+1}.
  ``flow_bw`` maps frame t+1 back to frame t.
- Backward warping: ``backward_warp(image, flow)(x) = image(x + flow(x))``, bilinear, with
  ``grid_sample(align_corners=True)``: pixel centres sit at integer coordinates 0..W-1 / 0..H-1 and the
  normalised grid is ``2 * x / (W - 1) - 1``. This is the convention of Lai et al.'s ``flow_warping``
  (flow divided by (W-1)/2), so integer flows reproduce plain array indexing exactly.
  A sample is *valid* when it lands inside [0, W-1] x [0, H-1]; anything else (including the band between
  the last pixel centre and the image edge, where bilinear sampling would blend with zero padding) is
  invalid and counted as occluded.

Resize / minimum-size policy for RAFT (``raft_input_size``):

- torchvision's RAFT refuses H or W not divisible by 8, and its 4-level correlation pyramid needs feature
  maps (1/8 of the input) of at least 2 * 2**3 = 16 cells per side, i.e. **inputs of at least 128 x 128**
  (measured on torchvision 0.29 for both ``raft_large`` and ``raft_small``: every square size 8..120 and
  every rectangle tried with a side < 128, e.g. 128 x 64, raises ValueError; 128 x 128 runs and gives
  finite flow).
- Policy: scale so the longest side is at most ``max_side`` (default 512; never upscale for this cap;
  0 = no cap), then, if the shortest side is below ``min_side`` (128), upscale so it reaches 128 (the
  minimum wins over the cap for extreme aspect ratios, since RAFT cannot run otherwise), then round each
  side half up to a pixel and half up to a multiple of 8 (never below ``min_side``), as
  ``vbench_pref.video`` does for ``FrameSpec(resize="max_side")``. Resampling is bilinear (antialiased
  when shrinking). Evaluators state the same policy in their FrameSpec (resize="max_side",
  size=max_side or None, min_side=128, multiple_of=8, bilinear) and re-apply ``raft_input_size`` to the
  frames they receive, which is a no-op when the decoder already produced that size (and makes frames
  handed over directly, e.g. in tests, work too).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F

from vbench_pref.errors import VbenchPrefError, WeightsMissingError
from vbench_pref.weights import sha256_file, verify_sha256

if TYPE_CHECKING:
    from vbench_pref.evaluator import Option
    from vbench_pref.video import FrameSpec
    from vbench_pref.weights import WeightSpec

RaftVariant = Literal["raft_large", "raft_small"]

RAFT_ENV_VAR = "VBENCH_PREF_RAFT_WEIGHTS"
RAFT_MIN_SIDE = 128  # measured: 8 * 2 * 2**(num_levels - 1) with num_levels = 4 (large and small)
RAFT_MULTIPLE = 8
DEFAULT_MAX_SIDE = 512
DEFAULT_OFFICIAL = {"raft_large": "C_T_SKHT_V2", "raft_small": "C_T_V2"}

# Sundaram et al. 2010 forward-backward consistency constants (also Lai et al. 2018, detect_occlusion).
_FB_ALPHA = 0.01
_FB_BETA = 0.5
# Motion-boundary test constants of the same papers (optional here).
_MB_ALPHA = 0.01
_MB_BETA = 0.002

# torchvision names its files "<name>-<first 8 hex of sha256>.pth" (torch.hub's check_hash convention).
_TV_HASH = re.compile(r"-([0-9a-f]{8})(?:\.[A-Za-z0-9]+)+$")


# --------------------------------------------------------------------------------------------- sizes
def raft_input_size(
    height: int,
    width: int,
    max_side: int = DEFAULT_MAX_SIDE,
    min_side: int = RAFT_MIN_SIDE,
    multiple: int = RAFT_MULTIPLE,
) -> tuple[int, int]:
    """The (H, W) RAFT runs at for a frame of ``height`` x ``width`` (see the module docstring).

    Rounds exactly as ``vbench_pref.video`` does for ``FrameSpec(resize="max_side")`` (half up to a pixel,
    then half up to a multiple), so frames the decoder already resized are not resampled a second time.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"bad frame size {height}x{width}")
    scale = 1.0
    if max_side and max(height, width) > max_side:
        scale = max_side / max(height, width)
    if min(height, width) * scale < min_side:
        scale = min_side / min(height, width)
    h, w = (height, width) if scale == 1.0 else (_half_up(height * scale), _half_up(width * scale))

    def snap(side: int) -> int:
        return max(multiple * max(1, _half_up(side / multiple)), min_side)

    return snap(h), snap(w)


def _half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def to_raft_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 T x H x W x 3 (or float N x 3 x H x W in [0,1]) -> float32 N x 3 x size in [0, 1]."""
    if frames.dtype == torch.uint8:
        x = frames.permute(0, 3, 1, 2).float().div_(255.0)
    else:
        x = frames.float()
    if tuple(x.shape[-2:]) != tuple(size):
        shrinking = size[0] < x.shape[-2] or size[1] < x.shape[-1]
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrinking)
        x = x.clamp_(0.0, 1.0)
    return x.contiguous()


# --------------------------------------------------------------------------------------------- model
def _weights_enum(variant: str) -> Any:
    from torchvision.models.optical_flow import Raft_Large_Weights, Raft_Small_Weights

    if variant == "raft_large":
        return Raft_Large_Weights
    if variant == "raft_small":
        return Raft_Small_Weights
    raise VbenchPrefError(f"unknown RAFT variant {variant!r}; use raft_large or raft_small")


def _build_arch(variant: str) -> torch.nn.Module:
    from torchvision.models.optical_flow import raft_large, raft_small

    return raft_large(weights=None) if variant == "raft_large" else raft_small(weights=None)


def _download_official(entry: Any) -> None:
    """Fetch an official torchvision checkpoint into torch.hub's cache (a hook tests replace)."""
    entry.get_state_dict(progress=False)


def _load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    from vbench_pref.torchload import load_weights_only

    state = load_weights_only(path, "torch state dict")
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise VbenchPrefError(f"{path}: expected a state dict, found {type(state).__name__}")
    # DataParallel checkpoints prefix every key; the weights are otherwise the same.
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _official_entry(variant: str, weights: str) -> Any | None:
    enum = _weights_enum(variant)
    if weights == "official":
        return enum[DEFAULT_OFFICIAL[variant]]
    return enum.__members__.get(weights)


def _official_path(entry: Any) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / entry.url.rsplit("/", 1)[-1]


def _missing_official(variant: str, entry: Any, reason: str | None, evaluator: str) -> str:
    path = _official_path(entry)
    why = f" and cannot be downloaded ({reason})" if reason else ""
    return (
        f"{variant}: weight file {path.name} is not in {path.parent}{why}; run `vbench-pref weights pull "
        f"{variant}` (or download {entry.url} there), or pass a local file with "
        f"-O {evaluator}.weights=/path/{path.name} or {RAFT_ENV_VAR}=/path/{path.name}"
    )


def _locate(variant: str, weights: str) -> tuple[Path | None, Any | None]:
    """The weight file behind ``weights`` without downloading anything, and its torchvision enum entry.

    The path is None only for an official checkpoint that is not in torch.hub's cache yet; the entry is
    None for local files (including the one given through ``VBENCH_PREF_RAFT_WEIGHTS``).
    """
    enum = _weights_enum(variant)
    entry = _official_entry(variant, weights)
    env_file = os.environ.get(RAFT_ENV_VAR)
    if entry is not None and weights == "official" and env_file:
        path = Path(env_file).expanduser()
        if not path.is_file():
            raise WeightsMissingError(f"{variant}: {RAFT_ENV_VAR}={env_file} does not exist")
        return path, None
    if entry is not None:
        official = _official_path(entry)
        if not official.is_file() and weights == "official":
            from vbench_pref.weights import locate

            pulled = locate(raft_weight_spec(variant))  # `vbench-pref weights pull raft_large` puts it here
            return pulled, entry
        return (official if official.is_file() else None), entry
    path = Path(weights).expanduser()
    if not path.is_file():
        names = ", ".join(enum.__members__)
        raise WeightsMissingError(
            f"{variant}: weights {weights!r} is neither 'official', 'random', one of {names}, nor an existing file"
        )
    return path, None


def raft_missing_weights(variant: str, weights: str, evaluator: str = "<evaluator>") -> str | None:
    """None when ``build_raft(variant, weights)`` finds its file on disk (or needs none), else one line."""
    if weights == "random":
        return None
    try:
        path, entry = _locate(variant, weights)
    except VbenchPrefError as exc:
        return str(exc)
    return _missing_official(variant, entry, None, evaluator) if path is None else None


def build_raft(
    variant: RaftVariant | str, weights: str = "official", evaluator: str = "<evaluator>"
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build torchvision RAFT (``raft_large``/``raft_small``) in eval mode and load its weights.

    ``weights``:
      - ``"official"``: torchvision's default checkpoint (C_T_SKHT_V2 for large, C_T_V2 for small), or an
        explicit enum member name (e.g. ``"C_T_V1"``). A local file named in ``VBENCH_PREF_RAFT_WEIGHTS``
        wins for ``"official"``; otherwise the file is taken from ``torch.hub.get_dir()/checkpoints`` or
        downloaded there, and its sha256 must start with the 8 hex digits of torchvision's file name.
        Raises WeightsMissingError (one line: file, URL, where to put it, how to pass a local file).
      - a path to a local ``.pth`` state dict (torch.load, weights_only=True). A file named like a
        torchvision checkpoint (``...-<8 hex>.pth``) must have a sha256 starting with those 8 hex.
      - ``"random"``: random initialisation, for smoke tests only.

    ``evaluator`` only names the ``-O <evaluator>.weights=`` hint of error messages.
    Returns ``(model, provenance)``; provenance has variant, weights (enum name / "local" / "random"),
    file, sha256 (and url for official checkpoints).
    """
    variant = str(variant)
    provenance: dict[str, Any] = {"variant": variant, "weights": weights, "file": None, "sha256": None}
    model = _build_arch(variant)
    if weights == "random":
        provenance["weights"] = "random"
        return model.eval(), provenance

    path, entry = _locate(variant, weights)
    if path is None:
        try:
            _download_official(entry)
        except Exception as exc:  # noqa: BLE001 - offline, proxy, HTTP errors all mean "not available"
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise WeightsMissingError(_missing_official(variant, entry, reason, evaluator)) from None
        path = _official_path(entry)
        if not path.is_file():
            raise WeightsMissingError(f"{variant}: download of {entry.url} did not produce {path}")

    if entry is not None:
        expected = entry.url.rsplit("/", 1)[-1].rsplit(".", 1)[0].rsplit("-", 1)[-1]
        digest = verify_sha256(path, expected)
        provenance["weights"] = entry.name
        provenance["url"] = entry.url
    else:
        match = _TV_HASH.search(path.name)
        digest = verify_sha256(path, match.group(1)) if match else sha256_file(path)
        provenance["weights"] = "local"

    state = _load_state_dict_file(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise VbenchPrefError(
            f"{path}: not a torchvision {variant} state dict ({first}; checkpoints of the original "
            "princeton-vl RAFT repo use different key names)"
        ) from None
    provenance["file"] = str(path)
    provenance["sha256"] = digest
    return model.eval(), provenance


@torch.no_grad()
def flow_between(
    model: torch.nn.Module, frames_a: torch.Tensor, frames_b: torch.Tensor, iters: int = 12
) -> torch.Tensor:
    """RAFT flow from ``frames_a`` to ``frames_b`` (N x 3 x H x W in [0, 1]) -> N x 2 x H x W pixels.

    H and W must be multiples of 8 and at least 128 (see ``raft_input_size``). The final refinement is
    returned; inputs are mapped to [-1, 1] as torchvision's Raft transforms (and the original RAFT) do.
    """
    if frames_a.shape != frames_b.shape or frames_a.dim() != 4 or frames_a.shape[1] != 3:
        raise ValueError(
            f"expected two N x 3 x H x W tensors, got {tuple(frames_a.shape)} and {tuple(frames_b.shape)}"
        )
    h, w = frames_a.shape[-2:]
    if h % RAFT_MULTIPLE or w % RAFT_MULTIPLE or min(h, w) < RAFT_MIN_SIDE:
        raise ValueError(f"RAFT needs H, W multiples of 8 and >= {RAFT_MIN_SIDE}, got {h}x{w}")
    a = frames_a.float() * 2.0 - 1.0
    b = frames_b.float() * 2.0 - 1.0
    return model(a, b, num_flow_updates=int(iters))[-1].float()


# --------------------------------------------------------------------------------------------- warping
def _sample_coords(flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n, _, h, w = flow.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, device=flow.device, dtype=flow.dtype),
        torch.arange(w, device=flow.device, dtype=flow.dtype),
        indexing="ij",
    )
    return xs.unsqueeze(0) + flow[:, 0], ys.unsqueeze(0) + flow[:, 1]  # N x H x W each


def backward_warp(image: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``out(x) = image(x + flow(x))`` (bilinear, align_corners=True) and a N x 1 x H x W validity mask.

    The mask is 1 where the sample point lies inside [0, W-1] x [0, H-1], else 0 (those outputs mix in
    zero padding and must not be trusted).
    """
    if image.shape[0] != flow.shape[0] or image.shape[-2:] != flow.shape[-2:] or flow.shape[1] != 2:
        raise ValueError(f"image {tuple(image.shape)} and flow {tuple(flow.shape)} do not match")
    h, w = flow.shape[-2:]
    sx, sy = _sample_coords(flow.to(image.dtype))
    # max(.,1) keeps 1-pixel-wide axes from dividing by zero; such axes can only sample index 0.
    gx = 2.0 * sx / max(w - 1, 1) - 1.0
    gy = 2.0 * sy / max(h - 1, 1) - 1.0
    grid = torch.stack([gx, gy], dim=-1)
    out = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    eps = 1e-4  # tolerate float error on samples that land exactly on the last pixel centre
    valid = (sx >= -eps) & (sx <= w - 1 + eps) & (sy >= -eps) & (sy <= h - 1 + eps)
    return out, valid.unsqueeze(1).to(image.dtype)


def occlusion_mask(flow_fw: torch.Tensor, flow_bw: torch.Tensor, motion_boundaries: bool = False) -> torch.Tensor:
    """Non-occluded mask (N x 1 x H x W, 1 = valid) of frame t by the forward-backward test.

    With ``b = flow_bw(x + flow_fw(x))`` (bilinear), x is occluded when
    ``|flow_fw + b|^2 > 0.01 * (|flow_fw|^2 + |b|^2) + 0.5`` (Sundaram et al. 2010), or when
    ``x + flow_fw(x)`` leaves the frame. ``motion_boundaries=True`` also marks
    ``|grad u|^2 + |grad v|^2 > 0.01 |flow_fw|^2 + 0.002`` (forward differences, zero on the last row /
    column), the second test of Lai et al.'s ``detect_occlusion``.
    """
    flow_fw = flow_fw.float()
    bw_at, valid = backward_warp(flow_bw.float(), flow_fw)
    mag_sum = (flow_fw + bw_at).pow(2).sum(1, keepdim=True)
    mag_fw = flow_fw.pow(2).sum(1, keepdim=True)
    mag_bw = bw_at.pow(2).sum(1, keepdim=True)
    occluded = mag_sum > _FB_ALPHA * (mag_fw + mag_bw) + _FB_BETA
    if motion_boundaries:
        du = torch.zeros_like(flow_fw)
        dv = torch.zeros_like(flow_fw)
        du[..., :, :-1] = flow_fw[..., :, :-1] - flow_fw[..., :, 1:]
        dv[..., :-1, :] = flow_fw[..., :-1, :] - flow_fw[..., 1:, :]
        grad = (du.pow(2) + dv.pow(2)).sum(1, keepdim=True)
        occluded = occluded | (grad > _MB_ALPHA * mag_fw + _MB_BETA)
    return (~occluded).to(flow_fw.dtype) * valid


def warping_error(
    frame_t: torch.Tensor,
    frame_t1: torch.Tensor,
    flow_fw: torch.Tensor,
    flow_bw: torch.Tensor,
    motion_boundaries: bool = False,
) -> torch.Tensor:
    """Occlusion-masked warping error per pair (N,), frames N x C x H x W in [0, 1].

    ``E = sum_x nonocc(x) * mean_c (warp(I_{t+1}, flow_fw)(x, c) - I_t(x, c))^2 / sum_x nonocc(x)``,
    i.e. the squared error averaged over channels and over non-occluded pixels (Lai et al. 2018 sum over
    pixels and channels and divide by the 3-channel mask's sum, which is the same number). A pair with no
    non-occluded pixel has error 0, as in Lai et al.'s code.
    """
    warped, _ = backward_warp(frame_t1.float(), flow_fw.float())
    nonocc = occlusion_mask(flow_fw, flow_bw, motion_boundaries=motion_boundaries)
    sq = (warped - frame_t.float()).pow(2).mean(1, keepdim=True)
    num = (sq * nonocc).flatten(1).sum(1)
    den = nonocc.flatten(1).sum(1)
    return torch.where(den > 0, num / den.clamp_min(1.0), torch.zeros_like(num))


# --------------------------------------------------------------------------------------------- evaluator glue
# Shared by the RAFT-based evaluators (warp_flicker, dynamic_degree); kept here so both cards agree.
def raft_weight_spec(variant: str = "raft_large") -> WeightSpec:
    """The WeightSpec of the default torchvision checkpoint of ``variant`` (sha256 = the published prefix)."""
    from vbench_pref.weights import WeightSpec

    url = {
        "raft_large": "https://download.pytorch.org/models/raft_large_C_T_SKHT_V2-ff5fadd5.pth",
        "raft_small": "https://download.pytorch.org/models/raft_small_C_T_V2-01064c6d.pth",
    }[variant]
    filename = url.rsplit("/", 1)[-1]
    return WeightSpec(
        name=variant,
        description=f"torchvision {variant} weights {DEFAULT_OFFICIAL[variant]}",
        source=url,
        filename=filename,
        sha256=filename.rsplit("-", 1)[-1].split(".")[0],
        licence="BSD-3-Clause (torchvision)",
        env_var=RAFT_ENV_VAR,
    )


def raft_options(iters_default: int) -> tuple[Option, ...]:
    from vbench_pref.evaluator import Option

    return (
        Option("model", "raft_large", "RAFT variant (torchvision)", choices=("raft_large", "raft_small")),
        Option(
            "weights",
            "official",
            "'official' (torchvision default checkpoint, or an enum name such as C_T_V1), a local .pth "
            f"state dict, or 'random' (smoke tests only); {RAFT_ENV_VAR} gives a local file for 'official'",
        ),
        Option("iters", iters_default, "RAFT refinement iterations (num_flow_updates)"),
        Option(
            "max_side",
            DEFAULT_MAX_SIDE,
            f"longest side RAFT sees (multiple of 8, >= {RAFT_MIN_SIDE}; 0 = no cap); short side is "
            f"raised to {RAFT_MIN_SIDE} (RAFT's minimum)",
        ),
        Option("pair_batch", 8, "frame pairs per RAFT forward pass"),
    )


def check_raft_config(evaluator: str, config: dict[str, Any]) -> None:
    """Reject option values RAFT cannot run with, at construction time (one line)."""
    max_side = int(config["max_side"])
    if max_side and (max_side % RAFT_MULTIPLE or max_side < RAFT_MIN_SIDE):
        raise VbenchPrefError(
            f"{evaluator}: max_side must be 0 or a multiple of {RAFT_MULTIPLE} >= {RAFT_MIN_SIDE}, got {max_side}"
        )
    if int(config["iters"]) < 1:
        raise VbenchPrefError(f"{evaluator}: iters must be >= 1, got {config['iters']}")
    if int(config["pair_batch"]) < 1:
        raise VbenchPrefError(f"{evaluator}: pair_batch must be >= 1, got {config['pair_batch']}")


def raft_frame_spec(max_side: int, sampling: str = "all", fps: float | None = None) -> FrameSpec:
    """The FrameSpec stating the RAFT resize policy (``raft_input_size``) to the decoder."""
    from vbench_pref.video import FrameSpec

    common: dict[str, Any] = {
        "sampling": sampling,
        "fps": fps,
        "interpolation": "bilinear",
        "antialias": True,
        "multiple_of": RAFT_MULTIPLE,
        "min_side": RAFT_MIN_SIDE,
    }
    return FrameSpec(resize="max_side", size=int(max_side) or None, **common)
