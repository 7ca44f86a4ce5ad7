"""Synthetic videos with known properties, for tests, examples and benchmarks.

Every function is pure and deterministic in its seed, and returns uint8 RGB arrays (T x H x W x 3), so a
test can state exactly what a metric should see (motion of a known size, a known flicker) and other test
files can share inputs without importing each other.

The texture is hashed value noise: a continuous function of (y, x) with no period, so a translation is
unambiguous (optical flow has a single answer) and frames can be sampled at sub-pixel offsets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = [
    "flickering",
    "make_example_set",
    "noise",
    "smooth_motion",
    "texture",
    "translation_pair",
]

# (cell size in pixels, weight): coarse blobs for large-scale structure, fine cells for gradients everywhere.
_OCTAVES = ((24.0, 0.40), (11.0, 0.30), (5.0, 0.20), (2.5, 0.10))

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _hash01(iy: np.ndarray, ix: np.ndarray, salt: int) -> np.ndarray:
    """Uniform [0, 1) value per integer lattice point (splitmix64 of the coordinates): no lattice to store."""
    with np.errstate(over="ignore"):
        h = (iy.astype(np.int64).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) & _M64
        h ^= (ix.astype(np.int64).astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)) & _M64
        h ^= np.uint64(salt & 0xFFFFFFFFFFFFFFFF)
        h ^= h >> np.uint64(30)
        h = (h * np.uint64(0xBF58476D1CE4E5B9)) & _M64
        h ^= h >> np.uint64(27)
        h = (h * np.uint64(0x94D049BB133111EB)) & _M64
        h ^= h >> np.uint64(31)
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _value_noise(y: np.ndarray, x: np.ndarray, salt: int) -> np.ndarray:
    """Smooth noise in [0, 1) at float coordinates (broadcast shapes), summed over octaves."""
    total = np.zeros(np.broadcast_shapes(y.shape, x.shape), dtype=np.float64)
    for k, (cell, weight) in enumerate(_OCTAVES):
        gy, gx = y / cell, x / cell
        y0, x0 = np.floor(gy), np.floor(gx)
        fy, fx = gy - y0, gx - x0
        sy, sx = fy * fy * (3 - 2 * fy), fx * fx * (3 - 2 * fx)  # smoothstep: continuous gradient
        s = salt * 131 + k
        v00, v01 = _hash01(y0, x0, s), _hash01(y0, x0 + 1, s)
        v10, v11 = _hash01(y0 + 1, x0, s), _hash01(y0 + 1, x0 + 1, s)
        top = v00 + (v01 - v00) * sx
        bottom = v10 + (v11 - v10) * sx
        total += weight * (top + (bottom - top) * sy)
    return total


def _seed_salt(seed: int) -> int:
    return int(np.random.default_rng(seed).integers(1, 2**62))


def texture(y: np.ndarray, x: np.ndarray, seed: int = 0) -> np.ndarray:
    """RGB texture (float64 in [0, 255]) at float pixel coordinates; channels are independent noises."""
    salt = _seed_salt(seed)
    channels = [_value_noise(y, x, salt + c) for c in range(3)]
    rgb = np.stack(channels, axis=-1)
    # Stretch the (roughly 0.2..0.8) noise to most of the byte range: strong gradients, no clipping.
    return np.clip((rgb - 0.5) * 2.2 * 255 / 2 + 127.5, 0, 255)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def smooth_motion(
    T: int = 16, H: int = 64, W: int = 64, seed: int = 0, velocity: tuple[float, float] = (0.75, 1.5)
) -> np.ndarray:
    """The texture translating by ``velocity`` = (dy, dx) pixels per frame (sub-pixel, exact sampling)."""
    vy, vx = velocity
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    frames = [_to_uint8(texture(yy - vy * t, xx - vx * t, seed)) for t in range(T)]
    return np.stack(frames)


def flickering(T: int = 16, H: int = 64, W: int = 64, seed: int = 0, amplitude: float = 0.3) -> np.ndarray:
    """A static texture whose brightness alternates by +-``amplitude`` (relative) every frame."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    base = texture(yy, xx, seed)
    gains = 1.0 + amplitude * np.where(np.arange(T) % 2 == 0, 1.0, -1.0)
    return np.stack([_to_uint8(base * g) for g in gains])


def noise(T: int = 16, H: int = 64, W: int = 64, seed: int = 0) -> np.ndarray:
    """Independent uniform noise per pixel and frame: the worst case for codecs, flow and flicker metrics."""
    return np.random.default_rng(seed).integers(0, 256, size=(T, H, W, 3), dtype=np.uint8)


def translation_pair(H: int = 64, W: int = 64, dx: int = 2, dy: int = 1, seed: int = 0) -> np.ndarray:
    """Two frames (2 x H x W x 3) with ``frame2[y, x] == frame1[y - dy, x - dx]`` exactly.

    The content moves by (+dx, +dy): the ground-truth forward flow is (dx, dy) wherever ``y - dy`` and
    ``x - dx`` fall inside the frame. Both frames are crops of one larger texture, so the pixels entering
    at the border are real texture, not padding.
    """
    if int(dx) != dx or int(dy) != dy:
        raise ValueError(f"translation_pair needs integer shifts, got dx={dx!r}, dy={dy!r}")
    dx, dy = int(dx), int(dy)
    yy, xx = np.mgrid[0 : H + abs(dy), 0 : W + abs(dx)].astype(np.float64)
    canvas = _to_uint8(texture(yy, xx, seed))
    oy, ox = max(dy, 0), max(dx, 0)
    first = canvas[oy : oy + H, ox : ox + W]
    second = canvas[oy - dy : oy - dy + H, ox - dx : ox - dx + W]
    return np.stack([first, second])


def make_example_set(
    directory: str | Path,
    n_per_kind: int = 4,
    T: int = 16,
    H: int = 64,
    W: int = 64,
    fps: float = 8.0,
    seed: int = 0,
) -> list[Path]:
    """Write ``n_per_kind`` smooth and ``n_per_kind`` flickering mp4s plus ``prompts.txt``.

    ``prompts.txt`` holds one prompt per video in sorted file-name order, the order the scorer pairs
    prompts with videos. Returns the video paths in that order.
    """
    from vbench_pref.video import write_video

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    items: list[tuple[Path, str]] = []
    for i in range(n_per_kind):
        s = int(rng.integers(0, 2**31))
        angle = rng.uniform(0, 2 * np.pi)
        speed = rng.uniform(0.5, 2.0)
        velocity = (speed * np.sin(angle), speed * np.cos(angle))
        path = directory / f"smooth_{i:03d}.mp4"
        write_video(path, smooth_motion(T, H, W, s, velocity=velocity), fps)
        items.append((path, "a colorful marbled texture drifting slowly across the frame"))
    for i in range(n_per_kind):
        s = int(rng.integers(0, 2**31))
        amplitude = float(rng.uniform(0.15, 0.35))
        path = directory / f"flicker_{i:03d}.mp4"
        write_video(path, flickering(T, H, W, s, amplitude=amplitude), fps)
        items.append((path, "a colorful marbled texture with flickering brightness"))
    items.sort(key=lambda item: item[0].name)
    (directory / "prompts.txt").write_text("".join(prompt + "\n" for _, prompt in items), encoding="utf-8")
    return [path for path, _ in items]
