"""``vbench-pref reference-stats``: a folder of real videos → a named reference set in the cache.

The features are computed by the scoring engine (one decode per video, batches across videos, resumable) into
a work folder inside the reference set; when every video is done, each evaluator's features, statistics and
identity are written (``reference.write_reference``) and the work folder is removed. A rerun after an
interruption resumes; a rerun on a complete set with the same videos and settings only says so.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

import vbench_pref
from vbench_pref.distribution.features import FeatureStore
from vbench_pref.distribution.reference import (
    REFERENCE_JSON,
    check_identity,
    check_name,
    check_same_videos,
    complete_evaluators,
    reference_folder,
    video_digests,
    videos_digest,
    write_reference,
)
from vbench_pref.errors import VbenchPrefError
from vbench_pref.evaluator import SetEvaluator, SharedModels, set_identity
from vbench_pref.matching import match_videos
from vbench_pref.scoring import DTYPES, ScoreOptions, ScoreResult, build_evaluators, load_evaluator, run_scoring

WORK = ".work"


@dataclass
class ReferenceStatsResult:
    name: str
    written: dict[str, Path]  # evaluator -> its folder in the reference set
    up_to_date: list[str]
    n_videos: int
    failed: int


def set_level_names() -> list[str]:
    from vbench_pref import registry

    return [n for n, cls in registry.available().items() if issubclass(cls, SetEvaluator)]


def _selected(opts: ScoreOptions) -> list[SetEvaluator]:
    if not opts.evaluators:
        raise VbenchPrefError(
            f"choose the evaluator(s) to compute with -e NAME (set-level evaluators: {', '.join(set_level_names()) or 'none installed'})"
        )
    evaluators, _ = build_evaluators(opts.evaluators, opts.evaluator_options, with_prompts=False)
    plain = [e.name for e in evaluators if not isinstance(e, SetEvaluator)]
    if plain:
        raise VbenchPrefError(
            f"{', '.join(plain)}: not set-level evaluator(s); reference sets hold features of set-level ones "
            f"({', '.join(set_level_names()) or 'none installed'})"
        )
    return [e for e in evaluators if isinstance(e, SetEvaluator)]


def _up_to_date(name: str, evaluator: SetEvaluator, digest: str, opts: ScoreOptions, replace: bool) -> bool:
    """True when the set already has this evaluator's statistics of these videos with these settings.

    Settings that are known only once the evaluator is loaded (weight digests, dtype) are compared by loading
    it on the CPU: cheaper than extracting the features again, and never wrong about a changed weights file.
    """
    if evaluator.name not in complete_evaluators(name):
        return False
    info = json.loads((reference_folder(name, evaluator.name) / REFERENCE_JSON).read_text(encoding="utf-8"))
    if info.get("videos", {}).get("digest") != digest or replace:
        return False
    check_identity(name, evaluator, info, with_weights=False)
    load_evaluator(evaluator, torch.device("cpu"), DTYPES[opts.dtype], SharedModels())
    check_identity(name, evaluator, info, with_weights=True)
    return True


def make_reference_stats(
    name: str,
    opts: ScoreOptions,
    replace: bool = False,
    on_start: Callable[[int, int, dict[str, str], bool], None] | None = None,
    on_video: Callable[[], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> ReferenceStatsResult:
    """Compute (or resume) the named reference set's features and statistics for the selected evaluators.

    ``opts`` are the scoring options of the extraction (videos, evaluators and their options, device, batching);
    its ``out``, ``prompts`` and ``reference`` are not used: the work folder is inside the reference set.
    """
    name = check_name(name)
    evaluators = _selected(opts)
    matching = match_videos(opts.videos, None, opts.recursive)
    files = video_digests([(t.video, t.path) for t in matching.tasks])
    digest = videos_digest(files)
    for stale in check_same_videos(name, digest, replace):  # one name, one set of videos
        shutil.rmtree(reference_folder(name, stale))
    todo = [e for e in evaluators if not _up_to_date(name, e, digest, opts, replace)]
    done = [e.name for e in evaluators if e not in todo]
    if not todo:
        return ReferenceStatsResult(name, {}, done, len(matching.tasks), 0)
    work = reference_folder(name) / WORK / "+".join(sorted(e.name for e in todo))
    score_opts = dataclasses.replace(
        opts, out=work, prompts=None, reference=None, features_only=True, evaluators=[e.name for e in todo],
        evaluator_options={k: v for k, v in opts.evaluator_options.items() if k in {e.name for e in todo}},
        method=f"reference:{name}",
    )
    result: ScoreResult = run_scoring(score_opts, on_start=on_start, on_video=on_video, on_note=on_note)
    provenance = json.loads((work / "run.json").read_text(encoding="utf-8"))
    by_name = {p["name"]: p for p in provenance["evaluators"]}
    written: dict[str, Path] = {}
    videos = [t.video for t in matching.tasks]
    for evaluator in todo:
        features = FeatureStore(work, evaluator.name).read(videos)
        if features.n_videos < 2:
            raise VbenchPrefError(
                f"{evaluator.name}: only {features.n_videos} of {len(videos)} videos of {opts.videos} gave features "
                f"(see {work / 'errors.csv'}); a reference set needs at least 2"
            )
        identity = set_identity(by_name[evaluator.name], type(evaluator), str(provenance["dtype"]))
        record = {"package": {"name": "vbench-pref", "version": vbench_pref.__version__},
                  "evaluator": by_name[evaluator.name], "device": provenance.get("device"),
                  "dtype": provenance.get("dtype"), "command": provenance.get("command")}
        written[evaluator.name] = write_reference(name, evaluator, identity, features, files, opts.videos, record)
    shutil.rmtree(work, ignore_errors=True)
    return ReferenceStatsResult(name, written, done, len(matching.tasks), result.n_failed)
