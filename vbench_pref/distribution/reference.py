"""Reference sets: the features and statistics of a folder of real videos, kept in the cache by name.

Layout (``cache_dir()`` is ``$VBENCH_PREF_CACHE``, ``$XDG_CACHE_HOME/vbench_pref`` or ``~/.cache/vbench_pref``)::

    <cache>/reference/<NAME>/<evaluator>/features.safetensors  features (rows x dim, float32), rows (int64 per video)
    <cache>/reference/<NAME>/<evaluator>/stats.safetensors     mean (dim), cov (dim x dim), float64, ddof=1
    <cache>/reference/<NAME>/<evaluator>/reference.json        identity, n, the videos' sha256, the files' sha256
    <cache>/reference/<NAME>/.work/<evaluators>/               the resumable extraction run (removed when done)

``reference.json`` is written last, naming the sha256 of the two tensor files: a set is complete when it
exists and both files match it. Its ``identity`` (``SetEvaluator.identity``: evaluator, version, options,
frame spec, feature dimension, weight digests, random weights) must equal the scoring run's, else the run
is refused with the fields that differ.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from vbench_pref.atomic import atomic_path, atomic_write_text
from vbench_pref.distribution.distance import GaussianStats, gaussian_stats
from vbench_pref.distribution.features import FeatureRows
from vbench_pref.errors import VbenchPrefError
from vbench_pref.evaluator import SetEvaluator
from vbench_pref.results import config_differences, now_iso
from vbench_pref.weights import cache_dir, hash_file

REFERENCE_JSON = "reference.json"
FEATURES_FILE = "features.safetensors"
STATS_FILE = "stats.safetensors"
FORMAT_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class ReferenceMismatch(VbenchPrefError):
    """A reference set made with other settings (or of other videos) than the ones asked for."""


@dataclass(frozen=True)
class ReferenceSet:
    """One evaluator's statistics of a reference set, read back and checked."""

    name: str
    evaluator: str
    info: dict[str, Any]
    features: FeatureRows
    stats: GaussianStats

    @property
    def n_videos(self) -> int:
        return self.features.n_videos


def reference_root() -> Path:
    return cache_dir() / "reference"


def check_name(name: str) -> str:
    """A reference set's name: letters, digits, ``_.-`` (it becomes a folder name)."""
    if not _NAME.match(name):
        raise VbenchPrefError(f"reference set name {name!r}: use letters, digits, '_', '.' and '-' (up to 100)")
    return name


def reference_folder(name: str, evaluator: str | None = None) -> Path:
    folder = reference_root() / check_name(name)
    return folder if evaluator is None else folder / evaluator


def complete_evaluators(name: str) -> list[str]:
    """The evaluators a reference set has statistics of (those with a reference.json)."""
    folder = reference_root() / name
    return sorted(p.parent.name for p in folder.glob(f"*/{REFERENCE_JSON}")) if folder.is_dir() else []


def reference_names() -> list[str]:
    """Every reference set in the cache with at least one evaluator's statistics."""
    root = reference_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and complete_evaluators(p.name))


def how_to_make(evaluators: Sequence[str], name: str = "NAME") -> str:
    flags = " ".join(f"-e {e}" for e in evaluators)
    return f"`vbench-pref reference-stats --videos REAL_DIR --name {name} {flags}`"


def existing_sets_text() -> str:
    names = reference_names()
    listing = ", ".join(f"{n} ({', '.join(complete_evaluators(n))})" for n in names)
    return f"reference sets in {reference_root()}: {listing}" if names else f"no reference set in {reference_root()} yet"


def require_reference(reference: str | None, evaluators: Sequence[SetEvaluator]) -> None:
    """Refuse set-level evaluators without ``--reference`` (and ``--reference`` without them), in one line."""
    names = [e.name for e in evaluators]
    if reference is None and names:
        raise VbenchPrefError(
            f"{', '.join(names)}: set-level evaluator(s) measure a distance to a reference set: pass --reference NAME "
            f"({existing_sets_text()}; make one with {how_to_make(names)})"
        )
    if reference is not None and not names:
        raise VbenchPrefError("--reference is for set-level evaluators (e.g. -e fvd); none is selected")


def read_info(name: str, evaluator: str) -> dict[str, Any]:
    """A reference set's reference.json for one evaluator; one-line errors naming what is missing."""
    folder = reference_root() / check_name(name)
    if not folder.is_dir() or not complete_evaluators(name):
        raise VbenchPrefError(f"no reference set {name!r} ({existing_sets_text()}); make it with {how_to_make([evaluator], name)}")
    file = folder / evaluator / REFERENCE_JSON
    if not file.is_file():
        has = ", ".join(complete_evaluators(name))
        source = _source(name)
        raise VbenchPrefError(
            f"reference set {name!r} has no {evaluator} statistics (it has: {has}); add them with "
            f"`vbench-pref reference-stats --videos {source} --name {name} -e {evaluator}`"
        )
    try:
        info = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VbenchPrefError(f"{file}: cannot read ({exc}); remake the reference set with --replace") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT_VERSION:
        raise VbenchPrefError(f"{file}: not a reference set of this version; remake it with --replace")
    return info


def _source(name: str) -> str:
    """The videos folder a reference set was made from (for the hint), or REAL_DIR."""
    for evaluator in complete_evaluators(name):
        try:
            return str(json.loads((reference_root() / name / evaluator / REFERENCE_JSON).read_text(encoding="utf-8"))["videos"]["folder"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return "REAL_DIR"


def identity_differences(stored: dict[str, Any], current: dict[str, Any], skip: Sequence[str] = ()) -> list[str]:
    """What differs between two identities, as ``field (reference X, this run Y)``."""
    def pick(identity: dict[str, Any], key: str) -> Any:
        value: Any = identity
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value

    keys = [k for k in config_differences(stored, current) if k.split(".")[0] not in skip]
    return [f"{k} (reference {pick(stored, k)!r}, this run {pick(current, k)!r})" for k in keys]


def check_identity(name: str, evaluator: SetEvaluator, info: dict[str, Any], with_weights: bool) -> None:
    """Refuse a reference set whose features were made otherwise than ``evaluator`` makes them."""
    skip = () if with_weights else ("weights", "random_weights", "dtype")  # known once loaded
    current = evaluator.identity() if with_weights else evaluator.identity_before_load()
    differences = identity_differences(info.get("identity", {}), current, skip)
    if differences:
        raise ReferenceMismatch(
            f"reference set {name!r} was made with other {evaluator.name} settings: {'; '.join(differences)}; "
            f"score with its settings, or remake it with `vbench-pref reference-stats --videos {_source(name)} "
            f"--name {name} -e {evaluator.name} --replace`"
        )


def check_references(name: str, evaluators: Sequence[SetEvaluator], with_weights: bool = False) -> None:
    """Every evaluator has statistics in ``name`` made with its settings (weights only once loaded)."""
    for evaluator in evaluators:
        check_identity(name, evaluator, read_info(name, evaluator.name), with_weights)


def _digest(path: Path) -> str:
    return hash_file(path)["sha256"]


def load_reference(name: str, evaluator: SetEvaluator) -> ReferenceSet:
    """The checked statistics and features of ``evaluator`` in reference set ``name``."""
    from safetensors.torch import load_file

    info = read_info(name, evaluator.name)
    check_identity(name, evaluator, info, with_weights=True)
    folder = reference_root() / name / evaluator.name
    for key, file in (("features_sha256", FEATURES_FILE), ("stats_sha256", STATS_FILE)):
        path = folder / file
        if not path.is_file() or _digest(path) != info.get(key):
            raise VbenchPrefError(f"reference set {name!r}: {path} is missing or does not match {REFERENCE_JSON}; remake it with --replace")
    tensors = load_file(str(folder / FEATURES_FILE))
    stats = load_file(str(folder / STATS_FILE))
    counts = tensors["rows"].tolist()
    videos = [str(v["video"]) for v in info["videos"]["files"]]
    labels = tuple(v for v, c in zip(videos, counts) for _ in range(int(c)))
    rows = FeatureRows(tensors["features"].numpy(), labels, tuple(videos))
    mean, cov = stats["mean"].numpy(), stats["cov"].numpy()
    return ReferenceSet(name, evaluator.name, info, rows, GaussianStats(mean, cov, int(info["n_features"])))


def video_digests(paths: Sequence[tuple[str, Path]]) -> list[dict[str, Any]]:
    """Each video's id, size and full sha256 (a reference set is made once: hashing whole files is affordable)."""
    return [{"video": video, "bytes": path.stat().st_size, "sha256": hash_file(path)["sha256"]} for video, path in paths]


def videos_digest(files: Sequence[dict[str, Any]]) -> str:
    lines = sorted(json.dumps([f["video"], f["sha256"]]) for f in files)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def check_same_videos(name: str, digest: str, replace: bool) -> list[str]:
    """A reference set is one set of videos: refuse statistics of other videos under the same name, or with
    ``replace`` return the evaluators whose statistics are of other videos (to be removed)."""
    stale = []
    for evaluator in complete_evaluators(name):
        try:
            info = json.loads((reference_root() / name / evaluator / REFERENCE_JSON).read_text(encoding="utf-8"))
            other = info["videos"]["digest"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if other == digest:
            continue
        if not replace:
            raise ReferenceMismatch(
                f"reference set {name!r} holds {evaluator} statistics of other videos ({info['videos'].get('folder')}); "
                "use another --name, or --replace to remake it from these videos"
            )
        stale.append(evaluator)
    return stale


def write_reference(
    name: str,
    evaluator: SetEvaluator,
    identity: dict[str, Any],
    features: FeatureRows,
    files: list[dict[str, Any]],
    folder: Path,
    provenance: dict[str, Any],
) -> Path:
    """Store one evaluator's features and statistics; reference.json last, so a set is complete or absent."""
    from safetensors.torch import save_file

    target = reference_folder(name, evaluator.name)
    target.mkdir(parents=True, exist_ok=True)
    (target / REFERENCE_JSON).unlink(missing_ok=True)  # the old set stops counting before its files change
    counts = [features.videos.count(v) for v in features.order]
    stats = gaussian_stats(features.rows)
    with atomic_path(target / FEATURES_FILE) as tmp:
        save_file({"features": torch.from_numpy(np.ascontiguousarray(features.rows, dtype=np.float32)),
                   "rows": torch.tensor(counts, dtype=torch.int64)}, str(tmp))
    with atomic_path(target / STATS_FILE) as tmp:
        save_file({"mean": torch.from_numpy(stats.mean.copy()), "cov": torch.from_numpy(stats.cov.copy())}, str(tmp))
    by_video = {f["video"]: f for f in files}
    kept = [by_video[v] for v in features.order]
    info = {
        "format": FORMAT_VERSION,
        "name": name,
        "evaluator": evaluator.name,
        "identity": identity,
        "created": now_iso(),
        "n_videos": features.n_videos,
        "n_features": int(features.rows.shape[0]),
        "feature_dim": int(features.rows.shape[1]),
        "sample_unit": evaluator.sample_unit,
        "videos": {"folder": str(folder.resolve()), "digest": videos_digest(files), "files": kept,
                   "failed": sorted(set(by_video) - set(features.order))},
        "features_sha256": _digest(target / FEATURES_FILE),
        "stats_sha256": _digest(target / STATS_FILE),
        "provenance": provenance,
    }
    atomic_write_text(target / REFERENCE_JSON, json.dumps(info, indent=1, ensure_ascii=False) + "\n")
    return target
