"""A small study made by hand (no `study create`): two methods, a few tiny prompts' videos, an attention check.

``make_study(folder)`` writes a study folder (study.json, tokens.json, media/*.webm) from tiny H.264 videos
it writes itself, and returns a ``HandMadeStudy`` with the plan and the tokens. Tests of the server, the
browser tests and the load benchmark build their studies with it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vbench_pref.study import media
from vbench_pref.study.plan import (
    MEDIA_DIR,
    Item,
    MethodSource,
    Participant,
    Plan,
    StudyVideo,
    Tokens,
    save_plan,
    save_tokens,
)
from vbench_pref.video import write_video
from vbench_pref.weights import sha256_file

METHODS = ("base", "dpo")


@dataclass(frozen=True)
class HandMadeStudy:
    folder: Path
    plan: Plan
    tokens: Tokens

    def token(self, participant: str) -> str:
        return self.tokens.participants[participant]

    def items(self, participant: str) -> tuple[str, ...]:
        return self.plan.participant(participant).items


def tiny_frames(seed: int, frames: int = 6, size: int = 32) -> np.ndarray:
    """A moving gradient with a per-video colour: distinct, smooth, cheap to encode."""
    rng = np.random.default_rng(seed)
    colour = rng.integers(40, 215, size=3)
    y, x = np.mgrid[0:size, 0:size]
    out = np.empty((frames, size, size, 3), dtype=np.uint8)
    for t in range(frames):
        ramp = ((x + 3 * t) % size) * (160 // size)
        out[t] = np.clip(colour[None, None, :] + ramp[..., None] - 60 + (y[..., None] // 4), 0, 255)
    return out


def make_study(
    folder: Path,
    participants: int = 3,
    prompts: int = 3,
    aspects: tuple[str, ...] = ("vq", "overall"),
    answers: str = "abc",
    attention_check: bool = True,
    seed: int = 0,
) -> HandMadeStudy:
    """A study in ``folder``: every participant compares base vs dpo on every prompt (sides alternating),
    then, with ``attention_check``, one pair whose right video is a spoiled copy."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    prompt_texts = [f"a tiny test scene number {i}" for i in range(prompts)]
    methods, videos = {}, {}
    by_method_prompt: dict[tuple[str, int], str] = {}
    for m, method in enumerate(METHODS):
        videos_dir = folder.parent / f"{folder.name}-runs" / method / "videos"
        videos_dir.mkdir(parents=True, exist_ok=True)
        methods[method] = MethodSource(label=method, model="tiny", method=method, run_id=f"run-{method}",
                                       run_dir=str(videos_dir.parent), videos_dir=str(videos_dir))
        for p, prompt in enumerate(prompt_texts):
            source = write_video(videos_dir / f"p{p}-0.mp4", tiny_frames(seed * 100 + m * 10 + p), fps=8)
            vid = secrets.token_hex(8)
            videos[vid] = StudyVideo(id=vid, method=method, prompt_id=f"p{p}", prompt=prompt, source=source.name,
                                     sha256=sha256_file(source), media=f"{MEDIA_DIR}/{vid}.webm")
            media.to_webm(source, folder / MEDIA_DIR / f"{vid}.webm")
            by_method_prompt[method, p] = vid
    spoiled = None
    if attention_check:
        original = by_method_prompt["dpo", 0]
        spoiled = secrets.token_hex(8)
        source_dir = Path(methods["dpo"].videos_dir)
        videos[spoiled] = StudyVideo(id=spoiled, method="dpo", prompt_id="p0", prompt=prompt_texts[0],
                                     source=videos[original].source, sha256=videos[original].sha256,
                                     media=f"{MEDIA_DIR}/{spoiled}.webm", corrupted_from=original)
        media.to_webm(source_dir / videos[original].source, folder / MEDIA_DIR / f"{spoiled}.webm", spoil_seed=seed)
    items, people = {}, []
    for i in range(participants):
        pid = f"p{i + 1:02d}"
        order = []
        for p in rng.permutation(prompts):
            left, right = ("base", "dpo") if (i + p) % 2 == 0 else ("dpo", "base")
            item = Item(id=f"{pid}-{p}", participant=pid, prompt_id=f"p{p}",
                        left=by_method_prompt[left, p], right=by_method_prompt[right, p])
            items[item.id] = item
            order.append(item.id)
        if spoiled is not None:
            check = Item(id=f"{pid}-check", participant=pid, prompt_id="p0", left=by_method_prompt["base", 0],
                         right=spoiled, check="right")
            items[check.id] = check
            order.insert(len(order) // 2, check.id)
        people.append(Participant(pid, tuple(order)))
    plan = Plan(study_id=f"study-{secrets.token_hex(4)}", created="2026-01-01T00:00:00+00:00",
                suite={"name": "tiny", "digest": "0" * 16, "prompts": prompts}, aspects=tuple(aspects),
                answers=answers, baseline="base", seed=seed, methods=methods, videos=videos, items=items,
                participants=tuple(people), settings={"made_by": "tests/study_helpers.py"})
    plan.check()
    save_plan(plan, folder)
    tokens = Tokens({p.id: secrets.token_urlsafe(16) for p in people}, admin=secrets.token_urlsafe(16))
    save_tokens(tokens, folder)
    return HandMadeStudy(folder, plan, tokens)


def make_run(
    folder: Path,
    method: str,
    videos: dict[str, tuple[str, dict[str, float | None]]],
    model: str = "tiny",
    layout: str = "run",
    suffix: str = ".mp4",
    seed: int = 0,
) -> Path:
    """A scored run made by hand for the run browser: ``videos`` maps a file stem to (prompt, scores).

    ``layout="run"``: ``folder`` is the run folder (run.json + scores.csv) and run.json names its videos
    folder by absolute path; ``layout="eval"``: ``folder`` is an ``eval --out`` folder (``run/``, ``videos/``)
    whose run.json gives the videos folder relative to a working directory that is not the test's.
    ``suffix`` ".mp4" writes H.264 (as ``generate`` does), ".webm" VP9.
    """
    import csv
    import json

    folder = Path(folder)
    run_dir, videos_dir = (folder, folder.parent / f"{folder.name}-videos") if layout == "run" else (folder / "run", folder / "videos")
    run_dir.mkdir(parents=True, exist_ok=True)
    videos_dir.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(c for _, scores in videos.values() for c in scores))
    with open(run_dir / "scores.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video", "prompt", *columns, "model_random_weights", *(f"{c}.random_weights" for c in columns)])
        for i, (stem, (prompt, scores)) in enumerate(videos.items()):
            name = stem + suffix
            frames = tiny_frames(seed * 1000 + i)
            if suffix == ".webm":
                from fractions import Fraction

                media.write_webm(videos_dir / name, frames, Fraction(8))
            else:
                write_video(videos_dir / name, frames, fps=8)
            values = ["" if scores.get(c) is None else repr(scores[c]) for c in columns]
            writer.writerow([name, prompt, *values, "True", *(["False"] * len(columns))])
    given = str(videos_dir.resolve()) if layout == "run" else "elsewhere/out/videos"
    info = {"run_id": f"{method}-{model}-{folder.name}", "model": model, "method": method,
            "inputs": {"videos": given}, "suite": {"name": "tiny", "digest": "0" * 16, "prompts": len(videos)}}
    (run_dir / "run.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return folder
