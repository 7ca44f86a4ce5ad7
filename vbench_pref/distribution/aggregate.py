"""A run's distances: its stored features against a reference set, as summary.json entries."""

from __future__ import annotations

import math
from typing import Any

from vbench_pref.distribution.distance import (
    DISTANCE_RESAMPLES,
    DISTANCE_SEED,
    bootstrap_frechet,
    bootstrap_kid,
    small_sample_warning,
)
from vbench_pref.distribution.features import FeatureRows
from vbench_pref.distribution.reference import ReferenceSet
from vbench_pref.evaluator import SetEvaluator


def distance_entries(
    evaluator: SetEvaluator,
    features: FeatureRows,
    reference: ReferenceSet,
    n_missing: int,
    resamples: int = DISTANCE_RESAMPLES,
    seed: int = DISTANCE_SEED,
) -> dict[str, dict[str, Any]]:
    """One summary entry per distance of ``evaluator``: the value (``mean``, so the leaderboard reads it), its
    bootstrap interval (``ci95``), n (generated videos) and the reference set's name and size.

    ``std`` is KID's subset standard deviation (``stderr`` its standard error); a Fréchet distance has none.
    With fewer than two videos in either set the value is missing (NaN), never 0.
    """
    entries: dict[str, dict[str, Any]] = {}
    ref = reference.features
    n_rows, n_ref_rows = int(features.rows.shape[0]), int(ref.rows.shape[0])
    for column, spec in evaluator.distance_columns().items():
        value, low, high, std, stderr = math.nan, math.nan, math.nan, math.nan, math.nan
        interval: dict[str, Any] | None = None
        if features.n_videos >= 2 and reference.n_videos >= 2:
            if spec.kind == "frechet":
                value, bounds = bootstrap_frechet(features.rows, reference.stats, features.videos,
                                                  resamples=resamples, seed=seed)
            else:
                result, bounds = bootstrap_kid(features.rows, ref.rows, features.videos, ref.videos,
                                               resamples=resamples, seed=seed)
                value, std, stderr = result.value, result.std, result.stderr
            low, high, interval = bounds.low, bounds.high, bounds.describe()
        entries[column] = {
            "mean": value,
            "std": std,
            "stderr": stderr,
            "n": features.n_videos,
            "n_missing": n_missing,
            "ci95": [low, high],
            "higher_is_better": False,
            "range": list(spec.range),
            "evaluator": evaluator.name,
            "score": spec.name,
            "random_weights": evaluator.uses_random_weights,
            "kind": "distance",
            "distance": spec.kind,
            "reference": reference.name,
            "n_reference": reference.n_videos,
            "n_features": n_rows,
            "n_reference_features": n_ref_rows,
            "sample_size": evaluator.sample_size,
            "sample_unit": evaluator.sample_unit,
            "interval": interval,
            "warning": small_sample_warning(column, spec.kind, n_rows, n_ref_rows, evaluator.sample_size,
                                            evaluator.sample_unit),
        }
    return entries
