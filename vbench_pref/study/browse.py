"""The run browser's data: every video of some scored runs with its prompt and scores, queried by the server.

A RUN is a run folder (``run.json`` + ``scores.csv``) or an ``eval --out`` folder holding one (``run/``); its
videos are where ``run.json`` says (``inputs.videos``). Each video gets an opaque id (a hash of its run and
file name), which is all the browser ever sends back: the server maps ids to files, never URLs to paths.
Videos that are not WebM (the H.264 MP4s ``generate`` writes, which open-source Chromium builds do not
play) are transcoded once into a cache folder.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from vbench_pref.errors import VbenchPrefError
from vbench_pref.study import media

# scores.csv columns that describe a row rather than score it
_META_COLUMNS = ("video", "prompt", "random_weights", "model_random_weights")
_META_SUFFIX = ".random_weights"
SORT_FIELDS = ("prompt", "method")  # sortable besides the score columns


@dataclass(frozen=True)
class RunSource:
    folder: Path  # the run folder (holding run.json and scores.csv)
    run_id: str
    model: str
    method: str
    videos: Path


@dataclass(frozen=True)
class BrowseVideo:
    id: str
    method: str  # the run's label in the browser
    prompt: str
    prompt_id: str
    source: Path
    scores: dict[str, float | None]

    def row(self) -> dict[str, Any]:
        return {"id": self.id, "method": self.method, "prompt": self.prompt, "prompt_id": self.prompt_id,
                "video": f"/media/{self.id}.webm", "scores": self.scores}


def _run_folder(path: Path) -> Path:
    if (path / "run.json").is_file():
        return path
    if (path / "run" / "run.json").is_file():
        return path / "run"
    if not path.is_dir():
        raise VbenchPrefError(f"{path}: run folder not found")
    raise VbenchPrefError(f"{path}: no run.json here or in {path / 'run'} (is it a scored run or an eval --out folder?)")


def _videos_folder(folder: Path, info: dict[str, Any]) -> Path:
    """The run's videos folder; run.json may hold it relative to where the run was made."""
    inputs = info.get("inputs") if isinstance(info.get("inputs"), dict) else {}
    given = inputs.get("videos")
    if not given:
        raise VbenchPrefError(f"{folder / 'run.json'}: no inputs.videos (which folder holds the videos?)")
    given = Path(str(given))
    candidates = [given] if given.is_absolute() else [given, folder.parent / given.name, folder / given]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    raise VbenchPrefError(f"{folder / 'run.json'}: videos folder {given} not found")


def read_run(path: Path) -> RunSource:
    folder = _run_folder(Path(path))
    try:
        info = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise VbenchPrefError(f"{folder / 'run.json'}: cannot read ({exc})") from None
    if not isinstance(info, dict):
        raise VbenchPrefError(f"{folder / 'run.json'}: expected a JSON object")
    if not (folder / "scores.csv").is_file():
        raise VbenchPrefError(f"{folder / 'scores.csv'}: file not found (the run has no scores yet)")
    return RunSource(folder=folder.resolve(), run_id=str(info.get("run_id") or folder.name),
                     model=str(info.get("model") or ""), method=str(info.get("method") or folder.name),
                     videos=_videos_folder(folder, info))


def method_labels(runs: Sequence[RunSource]) -> list[str]:
    """One label per run: its method, with the model where methods repeat, with the run id where both do."""
    labels = [r.method for r in runs]
    if len(set(labels)) < len(labels):
        labels = [r.method if labels.count(r.method) == 1 else f"{r.method} ({r.model or r.run_id})" for r in runs]
    if len(set(labels)) < len(labels):
        labels = [label if labels.count(label) == 1 else f"{label} [{r.run_id}]" for label, r in zip(labels, runs)]
    if len(set(labels)) < len(labels):  # the same run given twice
        raise VbenchPrefError(f"the same run is given twice: {', '.join(str(r.folder) for r in runs)}")
    return labels


def _score(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "") else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _manifest_prompt_ids(videos: Path) -> dict[str, str]:
    """video -> prompt id from generate's manifest.jsonl, when the videos came from ``generate``."""
    file = videos / "manifest.jsonl"
    ids: dict[str, str] = {}
    if file.is_file():
        for line in file.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                ids[str(entry["video"])] = str(entry["prompt_id"])
            except (ValueError, KeyError, TypeError):
                continue
    return ids


def _video_id(run: RunSource, video: str) -> str:
    return hashlib.sha256(f"{run.run_id}\0{run.folder}\0{video}".encode("utf-8")).hexdigest()[:24]


def read_scores(run: RunSource, label: str) -> tuple[list[str], list[BrowseVideo]]:
    """(score columns, videos) of one run."""
    from vbench_pref.generate.prompts import prompt_id

    file = run.folder / "scores.csv"
    with open(file, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        if "video" not in header:
            raise VbenchPrefError(f"{file}: no 'video' column")
        columns = [c for c in header if c not in _META_COLUMNS and not c.endswith(_META_SUFFIX)]
        known = _manifest_prompt_ids(run.videos)
        videos = []
        for row in reader:
            name, prompt = row["video"] or "", row.get("prompt") or ""
            source = (run.videos / name).resolve()
            if not name or not source.is_relative_to(run.videos):
                continue  # a row naming a file outside the run's videos folder is not served
            videos.append(BrowseVideo(
                id=_video_id(run, name), method=label, prompt=prompt,
                prompt_id=known.get(name) or prompt_id(prompt), source=source,
                scores={c: _score(row.get(c)) for c in columns},
            ))
    return columns, videos


class BrowseQueryError(ValueError):
    """A query parameter the browser should not have sent (answered 422)."""


class Catalog:
    """The videos of some runs, queried by the run browser."""

    def __init__(self, runs: Sequence[str | Path]) -> None:
        if not runs:
            raise VbenchPrefError("no runs to browse")
        sources = [read_run(Path(r)) for r in runs]
        self.methods = method_labels(sources)
        self.columns: list[str] = []
        self.videos: list[BrowseVideo] = []
        for source, label in zip(sources, self.methods):
            columns, videos = read_scores(source, label)
            self.columns += [c for c in columns if c not in self.columns]
            self.videos += videos
        for video in self.videos:  # every row has every column (None where its run lacks it)
            for column in self.columns:
                video.scores.setdefault(column, None)
        self.by_id = {v.id: v for v in self.videos}

    def query(self, sort: str | None = None, order: str = "asc", q: str = "", method: str | None = None,
              limit: int = 50, offset: int = 0) -> tuple[int, list[BrowseVideo]]:
        """(number of matching videos, one page of them); missing scores sort last either way."""
        if sort is not None and sort not in self.columns and sort not in SORT_FIELDS:
            raise BrowseQueryError(f"sort: unknown column {sort!r}")
        if order not in ("asc", "desc"):
            raise BrowseQueryError("order: asc or desc")
        if method is not None and method not in self.methods:
            raise BrowseQueryError(f"method: unknown method {method!r}")
        needle = q.casefold()
        rows = [v for v in self.videos if needle in v.prompt.casefold() and (method is None or v.method == method)]
        if sort is not None:
            def value(v: BrowseVideo) -> Any:
                return getattr(v, sort) if sort in SORT_FIELDS else v.scores[sort]

            present = [v for v in rows if value(v) is not None]
            rows = sorted(present, key=value, reverse=order == "desc") + [v for v in rows if value(v) is None]
        return len(rows), rows[offset:offset + limit]

    def compare(self, prompt: str, a: str, b: str) -> dict[str, list[BrowseVideo]]:
        """Method -> its videos of one prompt (exact text), for methods ``a`` and ``b``."""
        for name, label in (("a", a), ("b", b)):
            if label not in self.methods:
                raise BrowseQueryError(f"{name}: unknown method {label!r}")
        return {label: [v for v in self.videos if v.method == label and v.prompt == prompt] for label in (a, b)}

    def prompts(self) -> list[str]:
        return list(dict.fromkeys(v.prompt for v in self.videos))


class WebmCache:
    """Browser-playable copies of the runs' videos: WebM as is, anything else transcoded once into ``folder``."""

    def __init__(self, folder: Path, at_once: int = 2) -> None:
        self.folder = Path(folder)
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        # a page of 50 thumbnails asks for 50 transcodes; each encoder is multi-threaded already
        self._encoders = threading.BoundedSemaphore(at_once)

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def playable(self, video: BrowseVideo) -> Path:
        """The file to serve for ``video``; transcodes on first use (concurrent callers wait for one transcode)."""
        source = video.source
        if source.suffix.lower() == ".webm":
            return source
        stat = source.stat()  # a regenerated video (new size or time) gets a new transcode
        key = hashlib.sha256(f"{video.id}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:32]
        target = self.folder / f"{key}.webm"
        if not target.is_file():
            with self._lock(key):
                if not target.is_file():
                    self.folder.mkdir(parents=True, exist_ok=True)
                    with self._encoders:
                        media.to_webm(source, target)  # atomic: another process never sees half a file
        return target


def default_cache() -> Path:
    from vbench_pref.weights import cache_dir

    return cache_dir() / "browse"
