"""``vbench-pref study create``: eval runs -> a blinded, balanced study plan with its media and tokens.

The steps, each a function of its own:

* ``read_run`` reads one run folder (``run.json``, ``scores.csv``, ``errors.csv``, the videos' manifest);
* ``method_labels`` names the runs, ``check_same_suite`` refuses runs on different prompt suites;
* ``common_prompts`` keeps the prompts every method has a video for, ``pick_videos`` one video per
  (prompt, method), seeded;
* ``assign_comparisons`` is the balanced design (a pure function; its docstring states what it guarantees),
  ``add_attention_checks`` puts the checks in;
* ``create_study`` transcodes the used videos once each to ``media/<random id>.webm``, then writes
  ``tokens.json`` and, last, ``study.json``.

Everything a user can get wrong is refused before a file is written. An interrupted create (no study.json)
resumes: every finished media file is recorded in ``.create.jsonl`` and reused.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from vbench_pref.atomic import append_synced, cut_torn_line
from vbench_pref.errors import VbenchPrefError
from vbench_pref.preflight import check_output_folder, check_range, check_seed
from vbench_pref.study.plan import (
    ANSWER_MODES, ASPECTS, MEDIA_DIR, PLAN_FILE, SIDES, Item, MethodSource, Participant, Plan, StudyVideo, Tokens,
    save_plan, save_tokens,
)

JOURNAL = ".create.jsonl"  # media finished by an interrupted create: reused when it runs again
DEFAULT_ASPECTS = ("vq", "mq", "ta", "overall")
DEFAULT_OVERLAP = 3
MAX_PARTICIPANTS = 1000
MAX_PER_PARTICIPANT = 1000


# --- options ---------------------------------------------------------------------------------------------


@dataclass
class CreateOptions:
    runs: list[str]  # PATH or LABEL=PATH
    out: Path
    aspects: tuple[str, ...] = DEFAULT_ASPECTS
    per_participant: int = 18
    participants: int = 30
    answers: str = "abc"
    baseline: str | None = None
    attention_checks: int = 2
    overlap: int = DEFAULT_OVERLAP
    seed: int = 0
    command: list[str] | None = None


def parse_aspects(text: str) -> tuple[str, ...]:
    """``vq,mq,ta,overall`` -> the aspect keys, in that order; one-line error for an unknown or repeated one."""
    keys = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [k for k in keys if k not in ASPECTS]
    if unknown or not keys:
        raise VbenchPrefError(f"--aspects: unknown aspect {', '.join(map(repr, unknown)) or '(none given)'}; "
                              f"choose from {', '.join(ASPECTS)}")
    if len(set(keys)) != len(keys):
        raise VbenchPrefError(f"--aspects: {text!r} names an aspect twice")
    return keys


def check_options(opts: CreateOptions) -> None:
    parse_aspects(",".join(opts.aspects))
    if opts.answers not in ANSWER_MODES:
        raise VbenchPrefError(f"--answers must be one of {', '.join(ANSWER_MODES)}; got {opts.answers!r}")
    check_range("--participants", opts.participants, 1, MAX_PARTICIPANTS)
    check_range("--per-participant", opts.per_participant, 1, MAX_PER_PARTICIPANT)
    check_range("--attention-checks", opts.attention_checks, 0, opts.per_participant)
    check_range("--overlap", opts.overlap, 1)
    check_seed(opts.seed)


# --- runs ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceVideo:
    """One usable video of a run: its path relative to the videos folder and its prompt."""

    video: str
    prompt: str
    prompt_id: str | None
    image: str | None = None
    seed: int | None = None


@dataclass
class RunSource:
    """One run as a study reads it."""

    path: Path  # the folder holding run.json
    label: str | None  # given as LABEL=PATH
    run_id: str
    model: str
    method: str
    suite: dict[str, Any]
    videos_dir: Path
    videos: list[SourceVideo]
    failed: int = 0  # listed in errors.csv with no score
    missing: int = 0  # in scores.csv, but the file is gone
    without_prompt: int = 0


def split_label(spec: str) -> tuple[str | None, Path]:
    """``LABEL=PATH`` or ``PATH`` (a path that exists as written is a path, even with a ``=`` in it)."""
    if "=" in spec and not Path(spec).exists():
        label, _, path = spec.partition("=")
        label = label.strip()
        if not label or any(c in label for c in "\n\r\t"):
            raise VbenchPrefError(f"--runs {spec!r}: empty or unprintable label before '='")
        return label, Path(path).expanduser()
    return None, Path(spec).expanduser()


def run_folder(path: Path) -> Path:
    """The folder holding run.json: ``path`` itself (a score/eval run) or ``path/run`` (an eval --out)."""
    for candidate in (path, path / "run"):
        if (candidate / "run.json").is_file() and (candidate / "scores.csv").is_file():
            return candidate
    raise VbenchPrefError(
        f"--runs {path}: not a run folder (no run.json and scores.csv in it or in {path / 'run'}; "
        "make one with `vbench-pref eval` or `vbench-pref score`)"
    )


def _read_json(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VbenchPrefError(f"{file}: not readable JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise VbenchPrefError(f"{file}: expected a JSON object")
    return data


def _read_csv(file: Path) -> list[dict[str, str]]:
    if not file.is_file():
        return []
    try:
        with open(file, encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise VbenchPrefError(f"{file}: not a readable CSV ({type(exc).__name__}: {exc})") from None


def _videos_dir(run_dir: Path, info: dict[str, Any]) -> Path:
    """run.json's videos folder (the resolved one of its configuration first); an eval folder moved whole
    still finds its ``videos/`` beside ``run/``."""
    recorded = [((info.get("config") or {}).get("inputs") or {}).get("videos"), (info.get("inputs") or {}).get("videos")]
    candidates = [Path(str(v)) for v in recorded if isinstance(v, str) and v]
    if run_dir.name == "run":
        candidates.append(run_dir.parent / "videos")
    for candidate in candidates:
        folder = candidate if candidate.is_absolute() else run_dir / candidate
        if folder.is_dir():
            return folder.resolve()
    raise VbenchPrefError(f"{run_dir / 'run.json'}: its videos folder {recorded[1] or recorded[0]} is not found")


def inside(folder: Path, relative: str) -> Path:
    """``folder/relative``, resolved; refused when it leaves ``folder`` (``..``, an absolute path, a link)."""
    base = folder.resolve()
    target = (base / relative).resolve()
    if Path(relative).is_absolute() or not target.is_relative_to(base):
        raise VbenchPrefError(f"video {relative!r} lies outside its run's videos folder {base}; refusing it")
    return target


def _manifest(videos_dir: Path) -> dict[str, dict[str, Any]]:
    file = videos_dir / "manifest.jsonl"
    if not file.is_file():
        return {}
    entries: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            raise VbenchPrefError(f"{file} line {number} is not valid JSON") from None
        if isinstance(entry, dict) and isinstance(entry.get("video"), str):
            entries[entry["video"]] = entry
    return entries


def read_run(spec: str) -> RunSource:
    """One ``--runs`` argument read into its usable videos (failed and missing ones counted, left out)."""
    label, path = split_label(spec)
    run_dir = run_folder(path)
    info = _read_json(run_dir / "run.json")
    videos_dir = _videos_dir(run_dir, info)
    summary = _read_json(run_dir / "summary.json") if (run_dir / "summary.json").is_file() else {}
    columns = list((summary.get("scores") or {}).keys())
    errored = {row.get("video", "") for row in _read_csv(run_dir / "errors.csv")}
    manifest = _manifest(videos_dir)
    run = RunSource(
        path=run_dir.resolve(), label=label, run_id=str(info.get("run_id") or run_dir.name),
        model=str(info.get("model") or ""), method=str(info.get("method") or ""),
        suite=dict(info.get("suite") or {}), videos_dir=videos_dir, videos=[],
    )
    for row in _read_csv(run_dir / "scores.csv"):
        video = row.get("video") or ""
        if not video:
            continue
        if video in errored and not any(_finite(row.get(c)) for c in columns):
            run.failed += 1
            continue
        if not inside(videos_dir, video).is_file():
            run.missing += 1
            continue
        entry = manifest.get(video, {})
        prompt = str(entry.get("prompt") or row.get("prompt") or "")
        if not prompt:
            run.without_prompt += 1
            continue
        prompt_id = entry.get("prompt_id")
        seed = entry.get("seed")
        image = entry.get("image")
        run.videos.append(SourceVideo(
            video, prompt, str(prompt_id) if prompt_id not in (None, "") else None,
            str(image) if image else None, int(seed) if isinstance(seed, int) else None,
        ))
    return run


def _finite(text: str | None) -> bool:
    try:
        return text is not None and math.isfinite(float(text))
    except ValueError:
        return False


def method_labels(runs: Sequence[RunSource]) -> list[str]:
    """Each run's label: LABEL=PATH's, else its method when no other run has that method, else its model, else
    "model / method"; duplicates are refused (give LABEL=PATH)."""
    def unique(values: list[str], value: str) -> bool:
        return bool(value) and values.count(value) == 1

    methods = [r.method for r in runs]
    models = [r.model for r in runs]
    both = [f"{r.model} / {r.method}" for r in runs]
    labels = []
    for run, m, mo, b in zip(runs, methods, models, both):
        if run.label:
            labels.append(run.label)
        elif unique(methods, m):
            labels.append(m)
        elif unique(models, mo):
            labels.append(mo)
        elif run.model and run.method and unique(both, b):
            labels.append(b)
        else:
            raise VbenchPrefError(f"--runs {run.path}: runs share the model and method {b!r}; "
                                  "name them with LABEL=PATH")
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise VbenchPrefError(f"--runs: duplicate label {twice[0]!r}; name the runs with LABEL=PATH")
    return labels


def check_same_suite(runs: Sequence[RunSource], labels: Sequence[str]) -> None:
    """Refuse runs on different prompt suites (by name and digest), naming two that differ."""
    def identity(run: RunSource) -> tuple[Any, Any]:
        return run.suite.get("name"), run.suite.get("digest")

    first = identity(runs[0])
    for run, label in zip(runs[1:], labels[1:]):
        if identity(run) != first:
            def say(ident: tuple[Any, Any]) -> str:
                return f"{ident[0] or 'no suite'}" + (f" (sha256 {str(ident[1])[:12]})" if ident[1] else "")

            raise VbenchPrefError(
                f"--runs: mixed prompt suites: {labels[0]!r} is on {say(first)}, {label!r} on {say(identity(run))}; "
                "a study compares runs on the same prompts"
            )


@dataclass(frozen=True)
class Prompt:
    key: str  # how the runs' videos are matched: the suite's prompt id, else the prompt text
    prompt_id: str
    text: str
    image: str | None


def _prompt_key(video: SourceVideo, by_id: bool) -> str:
    return video.prompt_id if by_id and video.prompt_id else video.prompt


def common_prompts(runs: Sequence[RunSource]) -> tuple[list[Prompt], int]:
    """The prompts every run has a video for (in the first run's order), and how many others were left out.

    Prompts are matched by the suite's prompt id when every video has one (eval runs), else by their text.
    """
    by_id = all(v.prompt_id for r in runs for v in r.videos)
    keysets = [{_prompt_key(v, by_id) for v in r.videos} for r in runs]
    shared = set.intersection(*keysets) if keysets else set()
    every = set.union(*keysets) if keysets else set()
    prompts: dict[str, Prompt] = {}
    for video in runs[0].videos:
        key = _prompt_key(video, by_id)
        if key in shared and key not in prompts:
            prompt_id = video.prompt_id or "p-" + _digest(video.prompt)[:10]
            prompts[key] = Prompt(key, prompt_id, video.prompt, video.image)
    return list(prompts.values()), len(every - shared)


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def pick_videos(runs: Sequence[RunSource], prompts: Sequence[Prompt], seed: int) -> list[dict[str, SourceVideo]]:
    """Per run, prompt key -> the one video compared: one of its videos of that prompt, chosen with ``seed``."""
    by_id = all(v.prompt_id for r in runs for v in r.videos)
    keys = {p.key for p in prompts}
    chosen = []
    for index, run in enumerate(runs):
        rng = random.Random(f"{seed}:pick:{index}")
        options: dict[str, list[SourceVideo]] = {}
        for video in run.videos:
            key = _prompt_key(video, by_id)
            if key in keys:
                options.setdefault(key, []).append(video)
        chosen.append({key: rng.choice(sorted(videos, key=lambda v: v.video)) for key, videos in options.items()})
    return chosen


# --- the design ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    prompt: int  # index into the study's prompts
    left: int  # indices into the methods
    right: int


@dataclass(frozen=True)
class Assignment:
    participants: tuple[tuple[Comparison, ...], ...]  # per participant, in presentation order
    per_participant: int  # comparisons each participant makes (the request, capped at what exists)
    distinct: int  # distinct (prompt, method pair) comparisons used
    prompts_used: int


def method_pairs(n_methods: int, answers: str, baseline: int) -> list[tuple[int, int]]:
    """The method pairs compared: every pair (``abc``), or each method with the baseline (``gsb``)."""
    if answers == "gsb":
        return [(m, baseline) for m in range(n_methods) if m != baseline]
    return [(a, b) for a in range(n_methods) for b in range(a + 1, n_methods)]


def _blocks(participants: int, per_participant: int, prompts: int, pairs: int, overlap: int) -> tuple[int, int]:
    """(B, W): participants i share the comparisons of block ``i mod B``; W comparisons are used in all."""
    n, k, cells = participants, per_participant, prompts * pairs
    step = pairs // math.gcd(k, pairs)  # B*k must be a multiple of the pair count for the pairs to stay even
    cap = cells // k  # more blocks would need more distinct comparisons than exist
    high = min(n, max(1, n // overlap), cap)
    if high >= step:
        blocks = high - high % step
    elif step <= min(n, cap):
        blocks = step  # fewer participants per block than asked, the most the pair balance allows
    elif n * k <= cells:
        blocks = n
    else:
        return n, cells  # every comparison exists fewer times than needed: participants' windows wrap around
    return blocks, blocks * k


def assign_comparisons(
    participants: int, per_participant: int, prompts: int, pairs: Sequence[tuple[int, int]],
    overlap: int = DEFAULT_OVERLAP, seed: int = 0,
) -> Assignment:
    """A balanced, seeded design: which participant judges which (prompt, method pair), on which sides.

    With N participants, P prompts, Q method pairs and K = min(per_participant, P*Q) comparisons each:

    * every participant gets K comparisons, all distinct (prompt, pair) cells;
    * within each participant every method pair appears floor(K/Q) or ceil(K/Q) times, and over the study
      every pair appears floor(NK/Q) or ceil(NK/Q) times;
    * no prompt appears twice for one participant when P >= K;
    * the distinct cells used use each prompt equally often (+-1); when there are more cells than the study can
      judge ``overlap`` times, only that many are used (fewer prompts, each judged more often);
    * participants come in B blocks sharing their cells (participant i is in block i mod B), B as large as
      possible with N/B >= ``overlap`` (fewer when prompts run short or the pair balance needs it), so each cell
      is judged by floor(N/B) or ceil(N/B) participants;
    * for each pair, each of its methods is on the left in half of its comparisons (+-1), and also within each
      cell's judgements (+-1);
    * each participant's order is shuffled; everything is a function of the arguments and ``seed``.

    The construction: the study's N*K slots t (participant t // K, position t % K) take cell c = t mod W, a
    W-periodic sequence with W a multiple of K (blocks) and of Q; cell c has pair c mod Q and prompt
    (c + c // L) mod P with L = lcm(P, Q): consecutive cells walk through the prompts, and the shift at each L
    keeps the (prompt, pair) cells of the W <= P*Q used ones distinct.
    """
    q, p, n = len(pairs), prompts, participants
    if q < 1 or p < 1 or n < 1 or per_participant < 1 or overlap < 1:
        raise VbenchPrefError("a study needs a method pair, a prompt, a participant and a comparison each")
    k = min(per_participant, p * q)
    rng = random.Random(f"{seed}:assign")
    prompt_order = list(range(p))
    rng.shuffle(prompt_order)
    pair_order = list(range(q))
    rng.shuffle(pair_order)
    blocks, width = _blocks(n, k, p, q, overlap)
    lcm = p * q // math.gcd(p, q)

    slots: list[tuple[int, int, int]] = []  # (participant, cell, pair)
    for t in range(n * k):
        cell = t % width
        slots.append((t // k, cell, cell % q))
    # sides: along each pair's slots (by cell, then participant) the orientation alternates
    flips = {}
    starts = [rng.randrange(2) for _ in range(q)]
    runs = [0] * q
    for participant, cell, pair in sorted(slots, key=lambda s: (s[2], s[1], s[0])):
        flips[(participant, cell)] = (starts[pair] + runs[pair]) % 2
        runs[pair] += 1
    per: list[list[Comparison]] = [[] for _ in range(n)]
    for participant, cell, pair in slots:
        a, b = pairs[pair_order[pair]]
        if flips[(participant, cell)]:
            a, b = b, a
        per[participant].append(Comparison(prompt_order[(cell + cell // lcm) % p], a, b))
    for items in per:
        rng.shuffle(items)
    used = {(prompt_order[(c + c // lcm) % p]) for c in range(min(width, n * k))}
    return Assignment(tuple(tuple(items) for items in per), k, min(width, n * k), len(used))


@dataclass(frozen=True)
class Check:
    """An attention check: the ``video``-th compared video beside its spoiled copy, the copy on ``side``."""

    position: int
    video: int
    side: str


def add_attention_checks(participants: int, comparisons: int, checks: int, videos: int, overlap: int,
                         seed: int = 0) -> tuple[list[list[Check]], list[int]]:
    """Per participant ``checks`` attention checks at random positions, never the first, on distinct videos;
    the spoiled side random. Videos come from a pool of about N*checks/overlap (each spoiled copy is seen by
    several participants, so few copies are made). Returns the checks and the pool."""
    rng = random.Random(f"{seed}:checks")
    if checks == 0:
        return [[] for _ in range(participants)], []
    size = min(videos, max(checks, math.ceil(participants * checks / overlap)))
    pool = sorted(rng.sample(range(videos), size))
    out = []
    for _ in range(participants):
        positions = sorted(rng.sample(range(1, comparisons + checks), checks))
        chosen = rng.sample(pool, checks) if len(pool) >= checks else [rng.choice(pool) for _ in range(checks)]
        out.append([Check(pos, video, rng.choice(SIDES)) for pos, video in zip(positions, chosen)])
    return out, pool


# --- the study folder --------------------------------------------------------------------------------------


@dataclass
class CreateResult:
    plan: Plan
    out: Path
    runs: list[RunSource]
    prompts_common: int
    prompts_left_out: int  # not every method has a video
    per_participant_requested: int
    media_made: int
    media_reused: int
    checks: int
    spoiled: int
    replication: tuple[int, int]  # fewest and most participants judging one comparison
    extra: dict[str, Any] = field(default_factory=dict)


def check_study_folder(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise VbenchPrefError(f"--out {out} exists and is not a folder")
    if (out / PLAN_FILE).exists():
        raise VbenchPrefError(f"--out {out} already holds a study ({PLAN_FILE}); a study's plan never changes once "
                              "invites are out: use a new --out")
    check_output_folder(out)


def _read_journal(out: Path) -> dict[str, str]:
    file = out / JOURNAL
    if not file.is_file():
        return {}
    done: dict[str, str] = {}
    for line in file.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
            key, video_id = str(entry["key"]), str(entry["id"])
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a torn line: that media is made again
        if (out / MEDIA_DIR / f"{video_id}.webm").is_file():
            done[key] = video_id
    return done


def prepare(opts: CreateOptions) -> tuple[list[RunSource], list[str], int]:
    """Everything checked before any file is written: the options, the folder, the runs; (runs, labels, baseline)."""
    check_options(opts)
    check_study_folder(opts.out)
    if len(opts.runs) < 2:
        raise VbenchPrefError(f"--runs: a study compares at least 2 methods; got {len(opts.runs)}")
    runs = [read_run(spec) for spec in opts.runs]
    labels = method_labels(runs)
    check_same_suite(runs, labels)
    baseline = labels[0] if opts.baseline is None else opts.baseline
    if baseline not in labels:
        raise VbenchPrefError(f"--baseline {baseline!r} is not one of the methods: {', '.join(labels)}")
    return runs, labels, labels.index(baseline)


def create_study(opts: CreateOptions, on_media_start: Callable[[int, int], None] | None = None,
                 on_media: Callable[[], None] | None = None) -> CreateResult:
    """Plan the study of ``opts.runs`` in ``opts.out``: media, tokens.json, then study.json (last, atomically)."""
    from vbench_pref.results import now_iso
    from vbench_pref.study.media import to_webm
    from vbench_pref.weights import sha256_file

    runs, labels, baseline = prepare(opts)
    prompts, left_out = common_prompts(runs)
    if not prompts:
        raise VbenchPrefError("--runs: no prompt has a video in every run; nothing to compare")
    picked = pick_videos(runs, prompts, opts.seed)
    pairs = method_pairs(len(runs), opts.answers, baseline)
    design = assign_comparisons(opts.participants, opts.per_participant, len(prompts), pairs, opts.overlap, opts.seed)

    # the compared videos, each once: (method index, prompt index)
    used = sorted({(m, c.prompt) for items in design.participants for c in items for m in (c.left, c.right)})
    checks, pool = add_attention_checks(opts.participants, design.per_participant, opts.attention_checks, len(used),
                                        opts.overlap, opts.seed)
    sources = {}
    for m, pi in used:
        video = picked[m][prompts[pi].key]
        path = inside(runs[m].videos_dir, video.video)
        sources[(m, pi)] = (video, path, sha256_file(path))

    out = opts.out
    (out / MEDIA_DIR).mkdir(parents=True, exist_ok=True)
    journal = out / JOURNAL
    cut_torn_line(journal)
    done = _read_journal(out)
    reused = 0
    jobs: list[tuple[str, str, Path, int | None]] = []  # (key, id, source, spoil seed)
    ids: dict[tuple[int, int], str] = {}
    spoiled_ids: dict[int, str] = {}
    for (m, pi), (video, path, digest) in sources.items():
        key = json.dumps([labels[m], video.video, digest])
        ids[(m, pi)] = done.get(key) or secrets.token_hex(8)
        reused += key in done
        if key not in done:
            jobs.append((key, ids[(m, pi)], path, None))
    for index in pool:
        m, pi = used[index]
        video, path, digest = sources[(m, pi)]
        spoil_seed = random.Random(f"{opts.seed}:spoil:{index}").randrange(2**31)
        key = json.dumps([labels[m], video.video, digest, "spoiled", spoil_seed])
        spoiled_ids[index] = done.get(key) or secrets.token_hex(8)
        reused += key in done
        if key not in done:
            jobs.append((key, spoiled_ids[index], path, spoil_seed))
    if on_media_start is not None:
        on_media_start(len(jobs) + reused, reused)
    for key, video_id, path, spoil_seed in jobs:
        to_webm(path, out / MEDIA_DIR / f"{video_id}.webm", spoil_seed=spoil_seed)
        append_synced(journal, json.dumps({"key": key, "id": video_id}) + "\n")
        if on_media is not None:
            on_media()

    videos: dict[str, StudyVideo] = {}
    for (m, pi), (video, _, digest) in sources.items():
        prompt = prompts[pi]
        vid = ids[(m, pi)]
        videos[vid] = StudyVideo(vid, labels[m], prompt.prompt_id, prompt.text, video.video, digest,
                                 f"{MEDIA_DIR}/{vid}.webm", video.image or prompt.image)
    for index, vid in spoiled_ids.items():
        original = videos[ids[used[index]]]
        videos[vid] = StudyVideo(vid, original.method, original.prompt_id, original.prompt, original.source,
                                 original.sha256, f"{MEDIA_DIR}/{vid}.webm", original.image, corrupted_from=original.id)

    items: dict[str, Item] = {}
    participants = []
    width = max(2, len(str(opts.participants)))
    for index, (comparisons, participant_checks) in enumerate(zip(design.participants, checks)):
        pid = f"p{index + 1:0{width}d}"
        order: list[str] = []
        for c in comparisons:
            item = Item(secrets.token_hex(8), pid, prompts[c.prompt].prompt_id, ids[(c.left, c.prompt)],
                        ids[(c.right, c.prompt)])
            items[item.id] = item
            order.append(item.id)
        for check in participant_checks:
            original, spoiled = ids[used[check.video]], spoiled_ids[check.video]
            left, right = (spoiled, original) if check.side == "left" else (original, spoiled)
            item = Item(secrets.token_hex(8), pid, videos[original].prompt_id, left, right, check=check.side)
            items[item.id] = item
            order.insert(check.position, item.id)
        participants.append(Participant(pid, tuple(order)))

    counts: dict[tuple[str, str], int] = {}
    for item in items.values():
        if item.check is None:
            pair = tuple(sorted((videos[item.left].method, videos[item.right].method)))
            cell = (item.prompt_id, "|".join(pair))
            counts[cell] = counts.get(cell, 0) + 1
    plan = Plan(
        study_id=f"study-{secrets.token_hex(6)}", created=now_iso(),
        suite={k: runs[0].suite.get(k) for k in ("name", "digest", "prompts") if k in runs[0].suite},
        aspects=tuple(opts.aspects), answers=opts.answers, baseline=labels[baseline], seed=opts.seed,
        methods={label: MethodSource(label, run.model, run.method, run.run_id, str(run.path), str(run.videos_dir))
                 for label, run in zip(labels, runs)},
        videos=videos, items=items, participants=tuple(participants),
        settings={
            "per_participant": design.per_participant, "per_participant_requested": opts.per_participant,
            "participants": opts.participants, "attention_checks": opts.attention_checks, "overlap": opts.overlap,
            "prompts_compared": design.prompts_used, "prompts_common": len(prompts), "comparisons": design.distinct,
            "command": opts.command,
        },
    )
    plan.check()
    tokens = Tokens({p.id: secrets.token_urlsafe(24) for p in participants}, secrets.token_urlsafe(24))
    save_tokens(tokens, out)
    save_plan(plan, out)
    _tidy(out, set(videos))
    return CreateResult(
        plan=plan, out=out, runs=runs, prompts_common=len(prompts), prompts_left_out=left_out,
        per_participant_requested=opts.per_participant, media_made=len(jobs), media_reused=reused,
        checks=sum(len(c) for c in checks), spoiled=len(spoiled_ids),
        replication=(min(counts.values()), max(counts.values())),
    )


def _tidy(out: Path, kept: set[str]) -> None:
    """After study.json: the journal is done, and media an interrupted create made but this plan does not use go."""
    (out / JOURNAL).unlink(missing_ok=True)
    for file in (out / MEDIA_DIR).iterdir():
        stale = file.name.startswith(".") and file.name.endswith(".tmp")
        if stale or (file.suffix == ".webm" and file.stem not in kept):
            try:
                os.unlink(file)
            except OSError:
                pass
