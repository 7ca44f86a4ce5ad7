"""Feature vectors of a run, stored per set-level evaluator, appended as batches finish and read back in order.

Layout, in a run folder (or a reference set's work folder)::

    features/<evaluator>/index.jsonl                  the journal: one JSON line per shard, appended and fsynced
    features/<evaluator>/shard-000000.safetensors     ``features`` (rows x dim, float32) and ``rows`` (int64: the
                                                      number of rows of each video, in the order the index names them)

A shard is written whole through a temporary file and one rename, then its index line is appended: a video
is done once its line is in the index. A killed run leaves at most a shard without a line (overwritten or
ignored) or a torn last line (ignored, its videos are redone). Under several processes each one has its
own index (``index.rank<r>.jsonl``) and shard names (``shard.rank<r>-000000.safetensors``). Reading
returns each video's rows in the order asked, whatever shard holds them, so a run interrupted and resumed
reads back the same features as one that ran straight through.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from vbench_pref.atomic import append_synced, atomic_path, cut_torn_line, journal_entries

FEATURES_DIR = "features"
INDEX = "index.jsonl"


@dataclass(frozen=True)
class FeatureRows:
    """Feature rows of a set of videos: ``rows`` (n x dim, float32) and the video of each row."""

    rows: np.ndarray
    videos: tuple[str, ...]  # one per row
    order: tuple[str, ...]  # the distinct videos, in the order their rows come

    @property
    def n_videos(self) -> int:
        return len(self.order)


class FeatureStore:
    """The features one set-level evaluator wrote into a folder (all processes' indexes are read)."""

    def __init__(self, folder: str | Path, evaluator: str, rank: int | None = None) -> None:
        self.path = Path(folder) / FEATURES_DIR / evaluator
        self.prefix = "shard" if rank is None else f"shard.rank{rank}"
        self.index = self.path / (INDEX if rank is None else f"index.rank{rank}.jsonl")

    def _indexes(self) -> list[Path]:
        return sorted(p for p in self.path.glob("index*.jsonl") if p.is_file())

    def entries(self) -> list[dict[str, object]]:
        """Every complete index line (a torn or unreadable last line ends a file's entries)."""
        found: list[dict[str, object]] = []
        for file in self._indexes():
            for entry in journal_entries(file):
                if (self.path / str(entry.get("shard"))).is_file():
                    found.append(entry)  # a shard lost since: its videos are redone
        return found

    def videos(self) -> set[str]:
        """The videos with stored features."""
        return {str(v) for entry in self.entries() for v in entry["videos"]}  # type: ignore[attr-defined]

    def repair(self) -> None:
        """Cut a torn last line of this process's index, so new lines start on a line of their own."""
        cut_torn_line(self.index)

    def append(self, items: Sequence[tuple[str, np.ndarray]]) -> None:
        """Store the (video, rows x dim) features of one batch durably: shard first, then its index line."""
        if not items:
            return
        from safetensors.torch import save_file

        self.path.mkdir(parents=True, exist_ok=True)
        number = 0
        if self.index.is_file():
            with open(self.index, encoding="utf-8") as handle:
                number = sum(1 for _ in handle)
        name = f"{self.prefix}-{number:06d}.safetensors"
        rows = np.concatenate([np.asarray(f, dtype=np.float32) for _, f in items], axis=0)
        counts = np.array([len(f) for _, f in items], dtype=np.int64)
        with atomic_path(self.path / name) as tmp:
            save_file({"features": torch.from_numpy(rows).contiguous(), "rows": torch.from_numpy(counts)}, str(tmp))
        line = {"shard": name, "videos": [v for v, _ in items], "rows": counts.tolist()}
        append_synced(self.index, json.dumps(line, ensure_ascii=False) + "\n")

    def read(self, videos: Iterable[str] | None = None) -> FeatureRows:
        """The rows of ``videos`` (default: every stored video, in index order), each video's rows together.

        A video stored twice (a batch redone after a crash between its shard and its line) counts once.
        """
        from safetensors.torch import load_file

        where: dict[str, tuple[str, int, int]] = {}
        for entry in self.entries():
            start = 0
            for video, count in zip(entry["videos"], entry["rows"]):  # type: ignore[call-overload]
                where.setdefault(str(video), (str(entry["shard"]), start, int(count)))
                start += int(count)
        order = list(where) if videos is None else [v for v in videos if v in where]
        shards: dict[str, np.ndarray] = {}
        blocks: list[np.ndarray] = []
        labels: list[str] = []
        for video in order:
            shard, start, count = where[video]
            if shard not in shards:
                shards[shard] = load_file(str(self.path / shard))["features"].numpy()
            blocks.append(shards[shard][start : start + count])
            labels += [video] * count
        dim = next(iter(shards.values())).shape[1] if shards else 0
        rows = np.concatenate(blocks, axis=0) if blocks else np.zeros((0, dim), dtype=np.float32)
        return FeatureRows(rows, tuple(labels), tuple(order))
