"""``vbench-pref study export-pairs``: a study's human judgements as preference pairs for ``train-pgdpo``.

Per (prompt, method pair), over the judgements that count (no attention checks, no participant who failed
more of them than allowed): each side's vote share, a tie counting half to each. The majority side is
``chosen``, the other ``rejected`` and ``preference_probability`` is the chosen side's share, in (0.5, 1]:
VideoDPO's p, so a 3-1 vote weighs less than a unanimous one. An exact split states no preference and gives
no pair. ``chosen`` and ``rejected`` are the original videos of the runs (not the study's transcodes), as
absolute paths, checked to be the files the participants saw (same sha256).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vbench_pref.errors import VbenchPrefError
from vbench_pref.study.plan import ANSWERS_FILE, Plan, StudyVideo

EXPORT_COLUMNS = [
    "prompt_id", "prompt", "image", "chosen", "rejected", "preference_probability", "chosen_method",
    "rejected_method", "votes", "judgements", "aspect", "study_id",
]


@dataclass
class ExportResult:
    jsonl: Path
    parquet: Path
    pairs: int
    split: int  # (prompt, pair) comparisons whose votes split exactly: no pair
    too_few: int  # fewer judgements than --min-judgements
    excluded_participants: list[str]
    judgements: int  # judgements counted (of the aspect)


def _original(plan: Plan, video: StudyVideo, verify: dict[str, Path]) -> Path:
    """The run's own file behind a study video: inside its videos folder and unchanged since ``study create``."""
    from vbench_pref.weights import sha256_file

    if video.id in verify:
        return verify[video.id]
    folder = Path(plan.methods[video.method].videos_dir).resolve()
    path = (folder / video.source).resolve()
    if Path(video.source).is_absolute() or not path.is_relative_to(folder):
        raise VbenchPrefError(f"study video {video.id}: source {video.source!r} leaves its videos folder {folder}")
    if not path.is_file():
        raise VbenchPrefError(f"{path}: the video {video.method!r} showed for {video.prompt_id} is gone")
    if sha256_file(path) != video.sha256:
        raise VbenchPrefError(f"{path}: changed since the study was made (sha256 differs); it is not the video the "
                              "participants judged")
    verify[video.id] = path
    return path


def vote_pairs(plan: Plan, counted: Any, aspect: str, min_judgements: int = 1) -> tuple[list[dict[str, Any]], int, int]:
    """Pair rows from the counted judgements (a ``judgements.comparisons`` table); (rows, split, too few)."""
    table = counted[counted["aspect"] == aspect]
    videos: dict[tuple[str, str], StudyVideo] = {}
    for video in plan.videos.values():
        if video.corrupted_from is None:
            videos[(video.method, video.prompt_id)] = video
    verified: dict[str, Path] = {}
    rows, split, too_few = [], 0, 0
    for (prompt_id, x, y), group in table.groupby(["prompt_id", "method_x", "method_y"], sort=True):
        n = len(group)
        if n < min_judgements:
            too_few += 1
            continue
        votes_x = float((group["outcome"] == "x").sum()) + 0.5 * float((group["outcome"] == "tie").sum())
        if votes_x * 2 == n:
            split += 1
            continue
        (chosen, rejected, votes) = (x, y, votes_x) if votes_x * 2 > n else (y, x, n - votes_x)
        winner, loser = videos[(chosen, prompt_id)], videos[(rejected, prompt_id)]
        rows.append({
            "prompt_id": prompt_id, "prompt": winner.prompt, "image": winner.image,
            "chosen": str(_original(plan, winner, verified)), "rejected": str(_original(plan, loser, verified)),
            "preference_probability": votes / n, "chosen_method": chosen, "rejected_method": rejected,
            "votes": votes, "judgements": n, "aspect": aspect, "study_id": plan.study_id,
        })
    return rows, split, too_few


def export_pairs(study: Path, out: Path, aspect: str = "overall", allowed_failures: int = 0,
                 min_judgements: int = 1) -> ExportResult:
    """Write ``out`` (.jsonl) and the same rows as .parquet beside it; one-line errors for bad input."""
    import pandas as pd

    from vbench_pref.atomic import atomic_path, atomic_write_text
    from vbench_pref.preflight import check_output_file, check_range
    from vbench_pref.study.judgements import comparisons, excluded_participants, judgements
    from vbench_pref.study.plan import load_plan
    from vbench_pref.study.store import open_answers

    check_range("--allowed-check-failures", allowed_failures, 0)
    check_range("--min-judgements", min_judgements, 1)
    if out.suffix != ".jsonl":
        raise VbenchPrefError(f"--out {out}: give a .jsonl file name (the .parquet copy goes beside it)")
    check_output_file(out)
    plan = load_plan(study)
    if aspect not in plan.aspects:
        raise VbenchPrefError(f"--aspect {aspect!r}: the study asked about {', '.join(plan.aspects)}")
    if not (Path(study) / ANSWERS_FILE).is_file():
        raise VbenchPrefError(f"{study}: no answers yet ({ANSWERS_FILE} is made when `vbench-pref study serve` runs)")
    store = open_answers(study)
    try:
        table = judgements(plan, store.answers())
    finally:
        store.close()
    counted = comparisons(table, allowed_failures)
    rows, split, too_few = vote_pairs(plan, counted, aspect, min_judgements)
    parquet = out.with_suffix(".parquet")
    atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    with atomic_path(parquet) as tmp:
        pd.DataFrame(rows, columns=EXPORT_COLUMNS).to_parquet(tmp, index=False)
    return ExportResult(out, parquet, len(rows), split, too_few, excluded_participants(table, allowed_failures),
                        int((counted["aspect"] == aspect).sum()))
