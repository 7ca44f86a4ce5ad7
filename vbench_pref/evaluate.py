"""``vbench-pref eval``: generate a prompt suite with a checkpoint, score the videos, add the run to a leaderboard.

Layout of ``--out``::

    videos/      the generated videos, manifest.jsonl, generation.json (see generate.runner)
    run/         the scoring run (scores.csv, summary.json, run.json, ...)

Every step resumes: a rerun of the same command reuses the videos and scores it finds.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from vbench_pref.atomic import atomic_write_text
from vbench_pref.distributed import Processes, processes
from vbench_pref.errors import VbenchPrefError
from vbench_pref.generate.families import GenerationSettings
from vbench_pref.generate.models import LoadedModel, load_model
from vbench_pref.generate.prompts import PromptSuite, bundled_dir, load_suite
from vbench_pref.generate.runner import GenerationResult, generate
from vbench_pref.preflight import (
    check_at_least, check_device, check_output_file, check_output_folder, check_range, check_seed,
)
from vbench_pref.evaluator import SetEvaluator
from vbench_pref.scoring import (
    DTYPES, ScoreOptions, ScoreResult, check_evaluators, check_score_options, check_set_level, run_scoring,
)

log = logging.getLogger(__name__)

RUNS_LIST_SUFFIX = ".runs.txt"


@dataclass
class GenerationOptions:
    """What the videos depend on (shared by ``eval``, ``generate`` and ``pairs``)."""

    model: str
    prompts: str
    n: int = 1
    seed: int = 0
    frames: int | None = None
    height: int | None = None
    width: int | None = None
    steps: int | None = None
    guidance: float | None = None
    fps: int | None = None
    negative_prompt: str | None = None  # None: the family's default; "": none
    dtype: str = "auto"
    device: str = "auto"
    batch_size: int = 1
    base_model: str | None = None


@dataclass
class EvalOptions:
    generation: GenerationOptions
    out: Path | None = None
    evaluators: list[str] = field(default_factory=list)
    evaluator_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    score_batch_size: int = 8
    chunk_videos: int = 16
    memory_budget: str | None = None  # as ``score --memory-budget``
    workers: int = 2
    backend: str = "pyav"
    score_dtype: str = "float32"
    method: str | None = None
    leaderboard: Path | None = Path("runs/leaderboard")
    reported: list[str] = field(default_factory=list)
    command: list[str] | None = None
    reference: str | None = None  # as ``score --reference``


@dataclass
class EvalResult:
    out: Path
    generation: GenerationResult
    scoring: ScoreResult
    leaderboard: Path | None
    model_label: str


def resolve_dtype(dtype: str, device: torch.device) -> str:
    """``auto``: bfloat16 on a GPU, float32 on the CPU (where bfloat16 matmuls are slow and inexact)."""
    if dtype == "auto":
        return "bfloat16" if device.type == "cuda" else "float32"
    if dtype not in DTYPES:
        raise VbenchPrefError(f"--dtype must be auto or one of {', '.join(DTYPES)}")
    return dtype


def check_generation_options(opts: GenerationOptions, procs: Processes = Processes()) -> torch.device:
    """The generation options a model does not have to be loaded to check; returns the device."""
    check_at_least(1, n=opts.n, frames=opts.frames, height=opts.height, width=opts.width, steps=opts.steps,
                   fps=opts.fps, gen_batch_size=opts.batch_size)
    check_range("--guidance", opts.guidance, 0)
    check_seed(opts.seed)
    if opts.dtype != "auto" and opts.dtype not in DTYPES:
        raise VbenchPrefError(f"--dtype must be auto or one of {', '.join(DTYPES)}")
    return check_device(procs.device(opts.device))


def check_generation_and_scoring(
    generation: GenerationOptions, score_opts: ScoreOptions, out: Path, procs: Processes = Processes()
) -> None:
    """What generating into ``out`` and then scoring with ``score_opts`` needs, before the first video:
    options, devices, evaluator weights and the output folder."""
    check_generation_options(generation, procs)
    check_score_options(score_opts, procs)
    evaluators, _ = check_evaluators(score_opts.evaluators, score_opts.evaluator_options)
    check_set_level(score_opts.reference, [e for e in evaluators if isinstance(e, SetEvaluator)])
    check_output_folder(out)


def settings_for(model: LoadedModel, opts: GenerationOptions) -> GenerationSettings:
    """The model's defaults with the options given; ``--negative-prompt ''`` turns the default one off."""
    settings = model.defaults.with_overrides(
        num_frames=opts.frames, height=opts.height, width=opts.width, steps=opts.steps, guidance=opts.guidance,
        fps=opts.fps, negative_prompt=opts.negative_prompt or None,
    )
    return dataclasses.replace(settings, negative_prompt=None) if opts.negative_prompt == "" else settings


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "model"


def suite_name(suite: PromptSuite) -> str:
    """A bundled suite by its name (``demo``), any other by its file's name (``my.txt``)."""
    return suite.name if suite.source.resolve().parent == bundled_dir().resolve() else suite.source.name


def default_out(opts: GenerationOptions, suite: PromptSuite) -> Path:
    return Path("runs") / f"{slug(opts.model.removeprefix('builtin:'))}-{suite.name}"


def generate_videos(
    opts: GenerationOptions,
    out: Path,
    procs: Processes,
    on_start: Callable[[int, int], None] | None = None,
    on_video: Callable[[], None] | None = None,
    suite: PromptSuite | None = None,
) -> tuple[GenerationResult, LoadedModel]:
    """Load the model and make the suite's missing videos in ``out`` (every process calls this)."""
    suite = suite or load_suite(opts.prompts)
    device = check_generation_options(opts, procs)
    check_output_folder(out)
    dtype = resolve_dtype(opts.dtype, device)
    log.info("loading the model %s on %s", opts.model, device)
    model = load_model(opts.model, device, DTYPES[dtype], opts.base_model)
    settings = settings_for(model, opts)
    result = generate(
        model, suite, out, settings, n=opts.n, seed=opts.seed, batch_size=opts.batch_size, dtype=dtype,
        procs=procs, on_start=on_start, on_video=on_video,
    )
    return result, model


def release(model: LoadedModel) -> None:
    """Free the generator before the evaluators load: on a GPU both rarely fit at once."""
    model.pipeline = None
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def check_leaderboard(prefix: Path, reported: list[str]) -> None:
    """The leaderboard's files can be written and every --reported file exists."""
    from vbench_pref.cli.leaderboard_cmd import resolve_reported
    from vbench_pref.leaderboard import output_paths

    for file in (prefix.with_name(prefix.name + RUNS_LIST_SUFFIX), *output_paths(prefix)):
        check_output_file(file, "--leaderboard")
    for name in reported:
        resolve_reported(name)


def add_to_leaderboard(prefix: Path, run_dir: Path, reported: list[str]) -> Path:
    """Add ``run_dir`` to the runs listed beside the leaderboard (``PREFIX.runs.txt``) and rebuild it.

    A listed run of the same suite, model and method whose columns ``run_dir`` all measures again is
    replaced (one line says so); listed runs that cannot be read are left out with a warning.
    """
    from vbench_pref.cli._app import console
    from vbench_pref.cli.leaderboard_cmd import write_leaderboard
    from vbench_pref.leaderboard import superseded_by

    listing = prefix.with_name(prefix.name + RUNS_LIST_SUFFIX)
    runs = [line for line in listing.read_text(encoding="utf-8").splitlines() if line.strip()] if listing.is_file() else []
    entry = str(run_dir.resolve())
    others = [r for r in runs if r != entry and (Path(r) / "run.json").is_file()]
    replaced = {str(p) for p in superseded_by(run_dir, others)}
    for old in replaced:
        console.print(f"leaderboard: {entry} replaces {old} (same suite, model and method)", highlight=False)
    updated = [r for r in runs if r not in replaced] + ([] if entry in runs else [entry])
    if updated != runs:
        atomic_write_text(listing, "".join(r + "\n" for r in updated))
    present = [Path(r) for r in updated if (Path(r) / "run.json").is_file()]
    return write_leaderboard(present, reported, prefix, skip_unreadable=True)


def run_eval(
    opts: EvalOptions,
    on_generation_start: Callable[[int, int], None] | None = None,
    on_video: Callable[[], None] | None = None,
    score: Callable[[ScoreOptions, Processes], ScoreResult] | None = None,
    on_generated: Callable[[GenerationResult], None] | None = None,
) -> EvalResult:
    procs = processes()
    suite = load_suite(opts.generation.prompts)
    out = opts.out or default_out(opts.generation, suite)
    score_opts = ScoreOptions(
        videos=out / "videos", out=out / "run", prompts=None, evaluators=list(opts.evaluators),
        evaluator_options=opts.evaluator_options, device=opts.generation.device, dtype=opts.score_dtype,
        batch_size=opts.score_batch_size, backend=opts.backend, workers=opts.workers, chunk_videos=opts.chunk_videos,
        memory_budget=opts.memory_budget,
        seed=opts.generation.seed, command=opts.command, suite=suite_name(suite), reference=opts.reference,
    )
    # everything the scoring and the leaderboard need is checked before the first video is generated
    check_generation_and_scoring(opts.generation, score_opts, out, procs)
    if opts.leaderboard is not None:
        check_leaderboard(opts.leaderboard, opts.reported)
    generation, model = generate_videos(opts.generation, out / "videos", procs, on_generation_start, on_video, suite)
    label, method = model.base_label, opts.method or model.source.get("method") or "base"
    release(model)
    if on_generated is not None:
        on_generated(generation)
    score_opts = dataclasses.replace(score_opts, model=label, method=method)
    scoring = (score or (lambda o, p: run_scoring(o, procs=p)))(score_opts, procs)
    board = None
    if procs.is_main and opts.leaderboard is not None:
        board = add_to_leaderboard(opts.leaderboard, scoring.run_dir, opts.reported)
    if procs.is_main:
        _link_generation(scoring.run_dir, out / "videos")
    return EvalResult(out, generation, scoring, board, label)


def _link_generation(run_dir: Path, videos: Path) -> None:
    """Record in run.json how the videos were made, so a leaderboard row traces back to its checkpoint."""
    run_json = run_dir / "run.json"
    generation_json = videos / "generation.json"
    if not (run_json.is_file() and generation_json.is_file()):
        return
    provenance = json.loads(run_json.read_text(encoding="utf-8"))
    provenance["generation"] = json.loads(generation_json.read_text(encoding="utf-8"))
    atomic_write_text(run_json, json.dumps(provenance, indent=2, ensure_ascii=False) + "\n")
