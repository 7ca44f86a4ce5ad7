"""``vbench-pref pairs``: N videos per prompt, scored by a reward, into (chosen, rejected) preference pairs.

As in the PG-DPO paper, each prompt gives its best video against its worst (``mode="best_worst"``);
``mode="all"`` gives every ordered pair. Pairs whose reward margin is not above zero or below
``min_margin`` are dropped: equal rewards express no preference. Videos without a reward (decode or
scoring failure) take part in no pair. The pairs are written as ``pairs.jsonl`` and ``pairs.parquet``,
with video paths relative to the pairs file: this is what ``train-pgdpo`` reads.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from vbench_pref import registry
from vbench_pref.atomic import atomic_path, atomic_write_text
from vbench_pref.distributed import processes
from vbench_pref.errors import VbenchPrefError
from vbench_pref.evaluator import SetEvaluator
from vbench_pref.evaluate import GenerationOptions, check_generation_and_scoring, generate_videos, release
from vbench_pref.generate.prompts import load_suite
from vbench_pref.preflight import check_range
from vbench_pref.scoring import ScoreOptions, run_scoring

PAIR_MODES = ("best_worst", "all")
PAIR_COLUMNS = [
    "prompt_id", "prompt", "image", "chosen", "rejected", "chosen_score", "rejected_score", "margin",
    "chosen_seed", "rejected_seed", "reward", "random_weights", "model_random_weights", "reward_random_weights",
]


@dataclass(frozen=True)
class Reward:
    evaluator: str
    score: str
    column: str
    higher_is_better: bool


def parse_reward(spec: str) -> Reward:
    """``NAME`` or ``NAME.SCORE`` -> the evaluator, its score, its column in scores.csv and its direction.

    A bare NAME means the evaluator's only score, or its ``primary_score`` (videoalign: overall).
    """
    name, _, score = spec.partition(".")
    cls = registry.get(name)
    if issubclass(cls, SetEvaluator):
        raise VbenchPrefError(f"--reward {name}: a set-level evaluator gives a distance per run, not a score per video")
    columns = cls.column_specs()
    by_score = {s.name: (column, s) for column, s in columns.items()}
    if not score and len(by_score) > 1 and cls.primary_score is not None:
        score = cls.primary_score
    if not score:
        if len(by_score) != 1:
            choices = ", ".join(f"{name}.{s}" for s in by_score)
            raise VbenchPrefError(f"--reward {name} has several scores: pick one of {choices}")
        score = next(iter(by_score))
    if score not in by_score:
        raise VbenchPrefError(f"--reward {spec}: {name} has no score {score!r} (scores: {', '.join(by_score)})")
    column, spec_ = by_score[score]
    return Reward(name, score, column, spec_.higher_is_better)


@dataclass(frozen=True)
class Candidate:
    video: str
    score: float
    seed: int | None = None


def select_pairs(
    candidates: list[Candidate], higher_is_better: bool, mode: str = "best_worst", min_margin: float = 0.0
) -> list[tuple[Candidate, Candidate]]:
    """(chosen, rejected) pairs among one prompt's videos; a pure function of their rewards."""
    if mode not in PAIR_MODES:
        raise VbenchPrefError(f"--mode must be one of {', '.join(PAIR_MODES)}")
    sign = 1.0 if higher_is_better else -1.0
    scored = [c for c in candidates if not math.isnan(c.score)]
    # stable order: ties are broken by position, so the same inputs always give the same pairs
    ranked = sorted(scored, key=lambda c: -sign * c.score)
    if mode == "best_worst":
        options = [(ranked[0], ranked[-1])] if len(ranked) >= 2 else []
    else:
        options = list(itertools.combinations(ranked, 2))
    return [(a, b) for a, b in options if sign * (a.score - b.score) > 0 and abs(a.score - b.score) >= min_margin]


@dataclass
class PairOptions:
    generation: GenerationOptions
    out: Path
    reward: str
    mode: str = "best_worst"
    min_margin: float = 0.0
    evaluator_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    score_batch_size: int = 8
    command: list[str] | None = None


@dataclass
class PairResult:
    out: Path
    pairs: int
    prompts: int
    prompts_without_pair: int
    jsonl: Path
    parquet: Path
    model_random_weights: bool  # the videos' generator
    reward_random_weights: bool  # the reward evaluator

    @property
    def random_weights(self) -> bool:
        return self.model_random_weights or self.reward_random_weights


def build_pairs(manifest: list[dict[str, Any]], scores: pd.DataFrame, reward: Reward, mode: str, min_margin: float,
                videos_prefix: str, model_random_weights: bool, reward_random_weights: bool) -> list[dict[str, Any]]:
    """Pair records of every prompt, in manifest order.

    ``random_weights`` is true when the videos' generator or the reward has random weights (each is recorded
    too): such pairs are for smoke tests only.
    """
    values = dict(zip(scores["video"].astype(str), scores[reward.column].astype(float)))
    by_prompt: dict[str, list[dict[str, Any]]] = {}
    for entry in manifest:
        by_prompt.setdefault(entry["prompt_id"], []).append(entry)
    records = []
    for prompt_id, entries in by_prompt.items():
        candidates = [Candidate(e["video"], values.get(e["video"], math.nan), e.get("seed")) for e in entries]
        for chosen, rejected in select_pairs(candidates, reward.higher_is_better, mode, min_margin):
            records.append({
                "prompt_id": prompt_id,
                "prompt": entries[0]["prompt"],
                "image": entries[0].get("image"),
                "chosen": f"{videos_prefix}/{chosen.video}",
                "rejected": f"{videos_prefix}/{rejected.video}",
                "chosen_score": chosen.score,
                "rejected_score": rejected.score,
                "margin": abs(chosen.score - rejected.score),
                "chosen_seed": chosen.seed,
                "rejected_seed": rejected.seed,
                "reward": reward.column,
                "random_weights": model_random_weights or reward_random_weights,
                "model_random_weights": model_random_weights,
                "reward_random_weights": reward_random_weights,
            })
    return records


def run_pairs(
    opts: PairOptions,
    on_generation_start: Callable[[int, int], None] | None = None,
    on_video: Callable[[], None] | None = None,
    on_scoring_start: Callable[[int, int, dict[str, str], bool], None] | None = None,
    on_scored: Callable[[], None] | None = None,
) -> PairResult:
    if opts.generation.n < 2:
        raise VbenchPrefError("--n must be at least 2: a pair needs two videos of the same prompt")
    if opts.mode not in PAIR_MODES:
        raise VbenchPrefError(f"--mode must be one of {', '.join(PAIR_MODES)}")
    check_range("--min-margin", opts.min_margin, 0)
    reward = parse_reward(opts.reward)
    procs = processes()
    suite = load_suite(opts.generation.prompts)
    videos = opts.out / "videos"
    score_opts = ScoreOptions(
        videos=videos, out=opts.out / "reward", evaluators=[reward.evaluator],
        evaluator_options=opts.evaluator_options, device=opts.generation.device,
        batch_size=opts.score_batch_size, method="pairs", seed=opts.generation.seed, command=opts.command,
    )
    # the reward's weights, options and the output folder are checked before the first video is generated
    check_generation_and_scoring(opts.generation, score_opts, opts.out, procs)
    generation, model = generate_videos(opts.generation, videos, procs, on_generation_start, on_video, suite)
    release(model)
    scored = run_scoring(
        dataclasses.replace(score_opts, model=model.label), on_start=on_scoring_start, on_video=on_scored, procs=procs
    )
    jsonl, parquet = opts.out / "pairs.jsonl", opts.out / "pairs.parquet"
    reward_random = bool(scored.summary.get("scores", {}).get(reward.column, {}).get("random_weights"))
    if not procs.is_main:
        return PairResult(opts.out, 0, len(suite.entries), 0, jsonl, parquet, model.random_weights, reward_random)
    scores = pd.read_parquet(scored.run_dir / "scores.parquet")
    records = build_pairs(generation.entries, scores, reward, opts.mode, opts.min_margin, "videos",
                          model.random_weights, reward_random)
    atomic_write_text(jsonl, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    with atomic_path(parquet) as tmp:
        pd.DataFrame(records, columns=PAIR_COLUMNS).to_parquet(tmp, index=False)
    paired = {r["prompt_id"] for r in records}
    return PairResult(
        opts.out, len(records), len(suite.entries), len(suite.entries) - len(paired), jsonl, parquet,
        model.random_weights, reward_random,
    )
