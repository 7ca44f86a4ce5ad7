"""Preference pairs and the latent cache every epoch and every loss trains from.

Pairs come from ``vbench-pref pairs`` (``pairs.jsonl`` / ``pairs.parquet``) or from a user's file in that
format: one row per pair with ``prompt``, ``chosen`` and ``rejected`` (video paths, relative to the pairs
file's folder or absolute) and optionally ``preference_probability`` (VideoDPO's p, in (0, 1]).

``precompute`` VAE-encodes every video and text-encodes every distinct prompt once, with the model's own
encoders normalised as its sampler expects (the family's ``TrainingSpec``), into safetensors shards:

    CACHE/index.json              what the cache holds and what it was made from (the cache key)
    CACHE/prompts.safetensors     cond.<name>: (P, ...) text conditions of the P distinct prompts
    CACHE/shard-00000.safetensors chosen, rejected: (k, ...) latents of k pairs

Shards are written atomically and recorded as they finish, so an interrupted precompute resumes; a cache
made from other pairs, another model or other frame settings is never reused (its key differs).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from vbench_pref.atomic import atomic_path, atomic_write_text
from vbench_pref.errors import VbenchPrefError, VideoDecodeError

CACHE_FORMAT = 1
SHARD_PAIRS = 16
INDEX = "index.json"
PROMPTS = "prompts.safetensors"


@dataclass(frozen=True)
class PreferencePair:
    prompt: str
    chosen: Path
    rejected: Path
    preference_probability: float | None = None


@dataclass(frozen=True)
class FrameSettings:
    """Which frames of each video are trained on: the first ``num_frames`` (all when None), optionally
    resized to ``height`` x ``width``. Every video must then have the same shape."""

    num_frames: int | None = None
    height: int | None = None
    width: int | None = None


def read_pairs(path: Path) -> list[PreferencePair]:
    """Read a pairs file (.jsonl or .parquet); video paths resolve against the file's folder."""
    path = Path(path)
    if not path.is_file():
        raise VbenchPrefError(f"pairs file {path} not found (make one with `vbench-pref pairs`)")
    if path.suffix == ".parquet":
        import pandas as pd

        try:
            rows = pd.read_parquet(path).to_dict("records")
        except Exception as exc:  # pyarrow raises several unrelated types for a bad file
            raise VbenchPrefError(f"{path} is not a readable parquet file: {exc}") from None
        numbered = list(enumerate(rows, start=1))
    else:
        numbered = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                numbered.append((number, json.loads(line)))
            except json.JSONDecodeError:
                raise VbenchPrefError(f"{path} line {number} is not valid JSON") from None
    pairs = [_pair_from_row(row, path, number) for number, row in numbered]
    if not pairs:
        raise VbenchPrefError(f"{path} holds no pairs")
    return pairs


def _pair_from_row(row: Any, path: Path, number: int) -> PreferencePair:
    where = f"{path} row {number}"
    if not isinstance(row, dict):
        raise VbenchPrefError(f"{where} is not an object")
    for column in ("prompt", "chosen", "rejected"):
        if not isinstance(row.get(column), str) or not row[column]:
            raise VbenchPrefError(f"{where}: missing or empty '{column}'")
    if isinstance(row.get("image"), str) and row["image"]:
        raise VbenchPrefError(f"{where} is an image-to-video pair; training image-to-video models is not supported yet")
    chosen, rejected = (_resolve(path, row[c]) for c in ("chosen", "rejected"))
    if chosen == rejected:
        raise VbenchPrefError(f"{where}: chosen and rejected are the same video {chosen}")
    probability = row.get("preference_probability")
    if probability is not None and not (isinstance(probability, float) and math.isnan(probability)):
        probability = float(probability)
        if not 0 < probability <= 1:
            raise VbenchPrefError(f"{where}: preference_probability must be in (0, 1], got {probability}")
    else:
        probability = None
    return PreferencePair(row["prompt"], chosen, rejected, probability)


def _resolve(pairs_file: Path, video: str) -> Path:
    candidate = Path(video).expanduser()
    return candidate if candidate.is_absolute() else (pairs_file.parent / candidate).resolve()


def load_pixels(path: Path, frames: FrameSettings) -> torch.Tensor:
    """A video as (C, F, H, W) float32 in [-1, 1], the range the VAEs take."""
    from vbench_pref.video import decode_video

    try:
        decoded = decode_video(path)
    except VideoDecodeError as exc:
        raise VbenchPrefError(f"cannot train on {path}: {exc}") from None
    pixels, _ = decoded.view(next(iter(decoded.specs)))  # (F, H, W, 3) uint8
    if frames.num_frames is not None:
        if pixels.shape[0] < frames.num_frames:
            raise VbenchPrefError(f"{path} has {pixels.shape[0]} frames; --num-frames asks for {frames.num_frames}")
        pixels = pixels[: frames.num_frames]
    video = pixels.permute(3, 0, 1, 2).float().div(127.5).sub(1.0)
    height = frames.height or video.shape[2]
    width = frames.width or video.shape[3]
    if (height, width) != tuple(video.shape[2:]):
        video = F.interpolate(video, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return video.clamp(-1.0, 1.0)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_key(model: str, family: str, pairs_file: Path, frames: FrameSettings) -> dict[str, Any]:
    """What a cache is made from; a cache whose key differs is never reused."""
    return {
        "format": CACHE_FORMAT, "model": model, "family": family,
        "pairs_sha256": file_sha256(pairs_file), **asdict(frames),
    }


def default_cache_dir(pairs_file: Path, key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(str(key["model"])).name or str(key["model"])).strip("-")
    return Path(pairs_file).parent / "cache" / f"{slug}-{digest}"


def precompute(
    pipeline: Any,
    spec: Any,
    pairs: list[PreferencePair],
    cache: Path,
    key: dict[str, Any],
    frames: FrameSettings,
    on_pair: Callable[[], None] | None = None,
) -> Path:
    """Encode ``pairs`` into ``cache`` (resuming a previous, interrupted precompute with the same key)."""
    from safetensors.torch import save_file

    cache.mkdir(parents=True, exist_ok=True)
    index_file = cache / INDEX
    index = _read_index(index_file)
    if index is not None and index.get("key") != key:
        raise VbenchPrefError(
            f"cache {cache} was made from other pairs, model or frame settings; remove it or choose another --cache"
        )
    prompts = list(dict.fromkeys(p.prompt for p in pairs))
    index = index or {"key": key, "complete": False, "shards": []}
    if not (cache / PROMPTS).is_file():
        conditions = _encode_prompts(pipeline, spec, prompts)
        with atomic_path(cache / PROMPTS) as tmp:
            save_file({f"cond.{k}": v.contiguous() for k, v in conditions.items()}, str(tmp))
    done = {shard["start"] for shard in index["shards"]}
    shape: list[int] | None = index.get("latent_shape")
    for start in range(0, len(pairs), SHARD_PAIRS):
        chunk = pairs[start:start + SHARD_PAIRS]
        if start in done:
            if on_pair:
                for _ in chunk:
                    on_pair()
            continue
        chosen, rejected = [], []
        for pair in chunk:
            for video, out in ((pair.chosen, chosen), (pair.rejected, rejected)):
                latents = _encode_video(pipeline, spec, video, frames)
                if shape is None:
                    shape = list(latents.shape)
                elif list(latents.shape) != shape:
                    raise VbenchPrefError(
                        f"{video} encodes to latents {list(latents.shape)}, other videos to {shape}: give every "
                        "video the same frames and size, or set --num-frames/--height/--width"
                    )
                out.append(latents)
            if on_pair:
                on_pair()
        name = f"shard-{start // SHARD_PAIRS:05d}.safetensors"
        with atomic_path(cache / name) as tmp:
            save_file({"chosen": torch.stack(chosen), "rejected": torch.stack(rejected)}, str(tmp))
        index["shards"].append({"file": name, "start": start, "count": len(chunk)})
        index["latent_shape"] = shape
        _write_index(index_file, index)
    index.update({
        "complete": True, "pairs": len(pairs), "prompts": len(prompts), "latent_shape": shape,
        "pair_prompt": [prompts.index(p.prompt) for p in pairs],
        "preference_probability": [p.preference_probability for p in pairs],
        "prompt_text": prompts,
    })
    index["shards"].sort(key=lambda s: s["start"])
    _write_index(index_file, index)
    return cache


def _encode_prompts(pipeline: Any, spec: Any, prompts: list[str]) -> dict[str, torch.Tensor]:
    parts: list[dict[str, torch.Tensor]] = []
    with torch.no_grad():
        for start in range(0, len(prompts), 8):
            parts.append({k: v.detach().cpu() for k, v in spec.encode_prompts(pipeline, prompts[start:start + 8]).items()})
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def _encode_video(pipeline: Any, spec: Any, video: Path, frames: FrameSettings) -> torch.Tensor:
    pixels = load_pixels(video, frames).unsqueeze(0)
    with torch.no_grad():
        return spec.encode_videos(pipeline, pixels)[0].detach().float().cpu()


def _read_index(file: Path) -> dict[str, Any] | None:
    if not file.is_file():
        return None
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise VbenchPrefError(f"{file} is not valid JSON; remove the cache folder to rebuild it") from None


def _write_index(file: Path, index: dict[str, Any]) -> None:
    atomic_write_text(file, json.dumps(index, indent=1, ensure_ascii=False) + "\n")


class LatentCache:
    """Read access to a complete cache: latents of pair i and its prompt's conditions."""

    def __init__(self, folder: Path) -> None:
        from safetensors import safe_open
        from safetensors.torch import load_file

        self.folder = Path(folder)
        index = _read_index(self.folder / INDEX)
        if index is None or not index.get("complete"):
            raise VbenchPrefError(f"{self.folder} is not a complete latent cache; run `vbench-pref precompute`")
        self.index = index
        self.key: dict[str, Any] = index["key"]
        self.prompts: list[str] = index["prompt_text"]
        self._pair_prompt: list[int] = index["pair_prompt"]
        self._probability: list[float | None] = index["preference_probability"]
        self._conditions = {k[len("cond."):]: v for k, v in load_file(str(self.folder / PROMPTS)).items()}
        # opened, not read: a pair's rows are read when a batch asks for them (caches of real videos are large)
        self._shards = [safe_open(str(self.folder / s["file"]), framework="pt") for s in index["shards"]]
        self._starts = [s["start"] for s in index["shards"]]

    def __len__(self) -> int:
        return len(self._pair_prompt)

    def prompt_of(self, i: int) -> str:
        return self.prompts[self._pair_prompt[i]]

    def batch(self, indices: list[int]) -> dict[str, Any]:
        """Stacked latents, conditions and VideoDPO probabilities (1 where unknown) of pairs ``indices``."""
        chosen, rejected = [], []
        for i in indices:
            shard = max(s for s, start in enumerate(self._starts) if start <= i)
            offset = i - self._starts[shard]
            chosen.append(self._shards[shard].get_slice("chosen")[offset])
            rejected.append(self._shards[shard].get_slice("rejected")[offset])
        prompt_rows = torch.tensor([self._pair_prompt[i] for i in indices])
        probability = [self._probability[i] for i in indices]
        return {
            "chosen": torch.stack(chosen),
            "rejected": torch.stack(rejected),
            "conditions": {k: v[prompt_rows] for k, v in self._conditions.items()},
            "preference_probability": torch.tensor([1.0 if p is None else p for p in probability]),
        }
