"""Videos as the browser plays them: VP9 in WebM, which every Chromium build plays (H.264 is left out of
open-source builds), plus the visibly spoiled copies that attention checks show.

Both videos of a pair go through the same encoder at the same settings, so the format favours neither.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from vbench_pref.atomic import atomic_path
from vbench_pref.errors import VbenchPrefError, VideoDecodeError

WEBM_CRF = 12  # VP9 constant quality, near-transparent: the study judges the models, not the encoder
_SPEED = 4  # libvpx cpu-used: fast enough for hundreds of videos on a CPU, quality set by the crf


def read_frames(path: Path) -> tuple[np.ndarray, Fraction]:
    """All frames of a video as uint8 (T, H, W, 3), and its frame rate."""
    from vbench_pref.video import decode_video

    decoded = decode_video(path)
    frames, _ = decoded.view(next(iter(decoded.specs)))
    fps = Fraction(decoded.fps).limit_denominator(1001) if decoded.fps else Fraction(16)
    return frames.numpy(), fps


def spoil(frames: np.ndarray, seed: int) -> np.ndarray:
    """A copy no attentive viewer prefers: coarse 8x8 blocks, heavy noise and inverted colours."""
    rng = np.random.default_rng(seed)
    t, h, w, _ = frames.shape
    block = max(1, min(h, w) // 8)
    coarse = frames[:, ::block, ::block].repeat(block, axis=1).repeat(block, axis=2)[:, :h, :w]
    noise = rng.normal(0.0, 70.0, size=frames.shape)
    return np.clip(255.0 - coarse.astype(np.float64) + noise, 0, 255).astype(np.uint8)


def write_webm(path: Path, frames: np.ndarray, fps: Fraction) -> Path:
    """uint8 (T, H, W, 3) frames as VP9 WebM, atomically."""
    import av

    from vbench_pref.video import encode_frames

    _, h, w, _ = frames.shape
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format="webm") as container:
            stream = container.add_stream("libvpx-vp9", rate=fps)
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.options = {"crf": str(WEBM_CRF), "b": "0", "cpu-used": str(_SPEED), "row-mt": "1"}
            encode_frames(container, stream, frames)
    return path


def to_webm(source: Path, target: Path, spoil_seed: int | None = None) -> Path:
    """Transcode ``source`` to ``target`` (spoiled when ``spoil_seed`` is given); one-line error if unreadable."""
    try:
        frames, fps = read_frames(source)
    except VideoDecodeError as exc:
        raise VbenchPrefError(f"cannot put {source} in the study: {exc}") from None
    if spoil_seed is not None:
        frames = spoil(frames, spoil_seed)
    return write_webm(target, frames, fps)

