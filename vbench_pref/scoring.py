"""The scoring engine: plan → decode each video once → batch across videos → evaluators → journal.

Videos are processed in chunks of ``chunk_videos``. A small thread pool decodes each video once into the
union of the frame views its pending evaluators ask for, one chunk ahead of the evaluators, so that
decoding overlaps compute (at most two chunks of frames are alive). Evaluators are grouped by
``residency_key()``: within a chunk the groups are scored one after the other, and on a CUDA device with
several groups only the group being scored is on the device (``activate``/``deactivate``), so a run
never holds two big models in device memory; each evaluator collects its views into batches of
``batch_size`` videos. A view that would be larger than the decoded frames it comes from (a small video
enlarged to a model's input size, or made float) is kept as a ``FrameView`` for evaluators that read
frames a batch at a time (``lazy_frames``), so it is derived per batch and never exists whole. With a
``memory_budget``, chunks are sized from the frame bytes of the videos seen so far so that the two chunks
alive at once hold at most about that much. Outcomes are appended to the run's journal as batches
finish, and the CSV/Parquet/JSON views are rewritten atomically every few seconds, so an interrupted run loses at most
the batches in flight and a rerun of the same command resumes.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import logging
import platform
import re
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import vbench_pref
from vbench_pref import registry
from vbench_pref.errors import EXIT_OK, EXIT_PARTIAL, VbenchPrefError, VideoDecodeError, WeightsMissingError
from vbench_pref.distribution.features import FeatureStore
from vbench_pref.evaluator import Evaluator, ScoreSpec, SetEvaluator, SharedModels, VideoSample
from vbench_pref.generate.prompts import prompt_id
from vbench_pref.matching import Matching, VideoTask, match_videos
from vbench_pref.distributed import Processes
from vbench_pref.results import RECORDS, Record, RunDir, latest_records, now_iso, shard_journal
from vbench_pref.preflight import check_at_least, check_device, check_output_folder, check_seed
from vbench_pref.stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED
from vbench_pref.video import BACKENDS, FrameSpec, FrameView, available_backends, decode_video

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
MATERIALIZE_EVERY_S = 5.0
LEFT_OUT_LISTED = 50  # videos a manifest left out that run.json names (all are counted)


@dataclass
class ScoreOptions:
    """Everything a scoring run depends on (the CLI's ``score`` options)."""

    videos: Path
    out: Path
    prompts: Path | None = None
    evaluators: list[str] = field(default_factory=list)
    evaluator_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    device: str = "auto"
    dtype: str = "float32"
    batch_size: int = 8
    backend: str = "pyav"
    workers: int = 2
    chunk_videos: int = 16
    model: str | None = None
    method: str | None = None
    recursive: bool = False
    seed: int = 0
    command: list[str] | None = None
    suite: str | None = None  # the prompt suite's name (``eval`` gives it); default: see suite_identity
    allow_outside_paths: bool = False  # a manifest may list videos outside ``videos``
    memory_budget: int | str | None = None  # bytes of frames held at once, e.g. "4GB"; None: chunk_videos only
    reference: str | None = None  # the reference set of set-level evaluators (``reference-stats --name``)
    features_only: bool = False  # set-level evaluators store features, no distance (``reference-stats``)


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*((?:[KMGT]I?)?B?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def parse_size(value: int | str) -> int:
    """Bytes from ``4GB``, ``512MB``, ``2GiB`` or a plain number of bytes; VbenchPrefError otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        match = _SIZE.match(str(value))
        if match is None:
            raise VbenchPrefError(f"--memory-budget takes a size like 4GB or 512MB, got {value!r}")
        unit = (match.group(2) or "").upper()
        base = 1024 ** " KMGT".index(unit[0]) if unit.endswith("IB") else _UNITS[unit[:1]]
        number = int(float(match.group(1)) * base)
    if number < 1:
        raise VbenchPrefError(f"--memory-budget must be positive, got {value!r}")
    return number


@dataclass
class ScoreResult:
    run_dir: Path
    n_videos: int
    n_failed: int
    interrupted: bool
    skipped: dict[str, str]
    summary: dict[str, Any]
    resumed: bool

    @property
    def exit_code(self) -> int:
        return EXIT_PARTIAL if self.n_failed else EXIT_OK


def check_score_options(opts: ScoreOptions, procs: Processes = Processes()) -> torch.device:
    """Every ScoreOptions number, name and the device, before a video is decoded; returns the device."""
    check_at_least(1, batch_size=opts.batch_size, workers=opts.workers, chunk_videos=opts.chunk_videos)
    check_seed(opts.seed)
    if opts.dtype not in DTYPES:
        raise VbenchPrefError(f"--dtype must be one of {', '.join(DTYPES)}")
    if opts.backend not in BACKENDS:
        raise VbenchPrefError(f"--backend must be one of {', '.join(BACKENDS)}; got {opts.backend!r}")
    if opts.backend not in available_backends():
        raise VbenchPrefError(f"--backend {opts.backend} is not installed here (pip install {opts.backend})")
    if opts.memory_budget is not None:
        parse_size(opts.memory_budget)
    return check_device(procs.device(opts.device))


def check_evaluators(
    names: Sequence[str], options: dict[str, dict[str, Any]], with_prompts: bool = True
) -> tuple[list[Evaluator], dict[str, str]]:
    """``build_evaluators``, and refuse a named evaluator whose weights are not on disk (nothing is loaded)."""
    evaluators, skipped = build_evaluators(names, options, with_prompts)
    for evaluator in evaluators:
        reason = evaluator.missing_weights()
        if reason is not None:
            raise WeightsMissingError(reason)
    return evaluators, skipped


def build_evaluators(
    names: Sequence[str], options: dict[str, dict[str, Any]], with_prompts: bool
) -> tuple[list[Evaluator], dict[str, str]]:
    """Instantiate the named evaluators, or by default every one that can run here.

    Default selection skips evaluators whose weights are not on disk and, without prompts, those that
    need a prompt; the reason of each skip is returned so the user sees it.
    """
    unknown_options = sorted(set(options) - set(names)) if names else []
    if unknown_options:
        raise VbenchPrefError(f"options given for evaluator(s) not selected: {', '.join(unknown_options)}")
    if len(set(names)) != len(names):
        raise VbenchPrefError("an evaluator is selected twice")
    skipped: dict[str, str] = {}
    if names:
        known = registry.available()  # one scan of the plug-ins for every name, not one each
        chosen = [(known[n] if n in known else registry.get(n))(**options.get(n, {})) for n in names]
        if not with_prompts:
            needing = [e.name for e in chosen if e.needs_prompt]
            if needing:
                raise VbenchPrefError(f"{', '.join(needing)} need(s) prompts: pass --prompts FILE or a manifest")
        return chosen, skipped
    chosen = []
    for name, cls in registry.available().items():
        if issubclass(cls, SetEvaluator):  # a distance needs a reference set: only when asked for
            skipped[name] = f"set-level: select it with -e {name} and --reference SET"
            continue
        evaluator = cls(**options.get(name, {}))
        reason = evaluator.missing_weights()
        if reason is None and cls.needs_prompt and not with_prompts:
            reason = "needs prompts"
        if reason is None:
            chosen.append(evaluator)
        else:
            skipped[name] = reason
    if not chosen:
        raise VbenchPrefError(f"no evaluator can run: {'; '.join(f'{k}: {v}' for k, v in skipped.items())}")
    return chosen, skipped


def load_evaluator(evaluator: Evaluator, device: torch.device, dtype: torch.dtype, shared: SharedModels) -> None:
    """``evaluator.load``; plug-ins written before models could be shared take ``load(device, dtype)``."""
    if "shared" in inspect.signature(evaluator.load).parameters:
        evaluator.load(device, dtype, shared)
    else:
        evaluator.load(device, dtype)


def git_revision() -> str | None:
    """The commit of the installed source tree (with '-dirty' when modified), or None."""
    here = Path(vbench_pref.__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=False,
        )
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def video_seed(seed: int, video: str) -> int:
    """Per-video seed independent of batch composition and resume order."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{video}".encode()).digest()[:4], "little")


def column_table(evaluators: Sequence[Evaluator]) -> dict[str, tuple[str, ScoreSpec]]:
    table: dict[str, tuple[str, ScoreSpec]] = {}
    for evaluator in evaluators:
        for column, spec in evaluator.column_specs().items():
            table[column] = (evaluator.name, spec)
    return table


def generation_random_weights(videos: Path) -> bool | None:
    """Whether the model that made ``videos`` had random weights, from the folder's generation.json (written
    by ``generate``); None when unknown (videos made elsewhere)."""
    try:
        recorded = json.loads((videos / "generation.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = recorded.get("random_weights") if isinstance(recorded, dict) else None
    return value if isinstance(value, bool) else None


def random_weight_columns(evaluators: Sequence[Evaluator]) -> tuple[str, ...]:
    """Score columns computed with random-weight smoke-test models: labelled in every output."""
    return tuple(c for e in evaluators if e.uses_random_weights for c in e.columns())


def _run_config(opts: ScoreOptions, evaluators: Sequence[Evaluator], matching: Matching, device: torch.device) -> dict[str, Any]:
    """What a run directory is bound to: anything that can change a score (and the reference set of distances)."""
    config: dict[str, Any] = {
        "evaluators": {
            e.name: {
                "version": e.version,
                "options": {k: str(v) for k, v in e.config.items()},
                "frames": e.frame_spec().describe(),
            }
            for e in evaluators
        },
        # where the videos are is recorded, what they hold is compared (a run folder may move with its videos)
        "inputs": {"videos": str(opts.videos.resolve()), "matching": matching.mode, "digest": matching.fingerprint(),
                   "content": matching.content_digest()},
        "device": device.type,
        "dtype": opts.dtype,
        "seed": opts.seed,
    }
    if opts.reference is not None:  # only then: runs without distances keep the configuration they had
        config["reference"] = opts.reference
    return config


@dataclass
class PreparedVideo:
    """One decoded video as its evaluators need it: each frame view (frames, timestamps) by spec.

    A view is a tensor, or a ``FrameView`` (derived per batch) when that is smaller and every evaluator
    reading it takes one.
    """

    fps: float
    views: dict[FrameSpec, tuple[torch.Tensor | FrameView, np.ndarray]]
    # views this video cannot have (e.g. an aspect ratio a model refuses): only their evaluators fail
    failed_views: dict[FrameSpec, str] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Frame bytes held: whole views, and once each decoded frame that some FrameView keeps alive."""
        held = sum(v.nbytes for v, _ in self.views.values() if isinstance(v, torch.Tensor))
        sources = {k: f for v, _ in self.views.values() if isinstance(v, FrameView) for k, f in v.sources().items()}
        return held + sum(f.nbytes for f in sources.values())


def residency_groups(evaluators: Sequence[Evaluator]) -> list[list[Evaluator]]:
    """Evaluators grouped by ``residency_key()``, groups in order of first appearance."""
    groups: dict[str, list[Evaluator]] = {}
    for evaluator in evaluators:
        groups.setdefault(evaluator.residency_key(), []).append(evaluator)
    return list(groups.values())


def swaps_residency(device: torch.device | str, n_groups: int) -> bool:
    """Whether groups take turns on the device: only on CUDA and with more than one group.

    Elsewhere every evaluator is activated once before the first chunk and never deactivated.
    """
    return torch.device(device).type == "cuda" and n_groups > 1


class _Engine:
    """One scoring pass over the pending (video, evaluator) pairs of a run."""

    def __init__(
        self,
        opts: ScoreOptions,
        evaluators: list[Evaluator],
        tasks: list[VideoTask],
        run_dir: RunDir,
        records: list[Record],
        on_video: Callable[[], None],
        device: torch.device | str = "cpu",
        materializes: bool = True,
        model_random_weights: bool | None = None,
        rank: int | None = None,
    ) -> None:
        self.opts = opts
        self.evaluators = list(evaluators)
        self.tasks = tasks
        self.run_dir = run_dir
        self.records = records
        self.columns = column_table(evaluators)
        self.random_columns = random_weight_columns(evaluators)
        self.model_random_weights = model_random_weights
        self.on_video = on_video
        self.materializes = materializes  # sharded runs: only the main process writes the views, at the end
        self.last_materialized = time.monotonic()
        # a set-level evaluator's video is done once its features are stored (the journal only says so after)
        self.stores = {e.name: FeatureStore(run_dir.path, e.name, rank) for e in evaluators if isinstance(e, SetEvaluator)}
        self.distances: dict[str, dict[str, Any]] = {}
        done = {(r.video, r.evaluator) for r in records if r.error is None and r.evaluator not in self.stores}
        for name, store in self.stores.items():
            store.repair()
            done |= {(video, name) for video in store.videos()}
        self.needs = {
            t.video: [e for e in evaluators if (t.video, e.name) not in done] for t in tasks
        }
        working = {e.name for needs in self.needs.values() for e in needs}
        # only groups with pending work take turns on the device; a resumed run may need just one
        self.groups = residency_groups([e for e in evaluators if e.name in working])
        self.group_index = {e.name: i for i, group in enumerate(self.groups) for e in group}
        self.swap = swaps_residency(device, len(self.groups))
        self.resident: list[Evaluator] = []  # activated and not deactivated since
        self.budget = None if opts.memory_budget is None else parse_size(opts.memory_budget)
        self.video_bytes = 0  # the most frame bytes one prepared video held so far (sizes chunks under a budget)
        self.chunk_sizes: list[int] = []

    def todo(self) -> list[VideoTask]:
        return [t for t in self.tasks if self.needs[t.video]]

    def _prepare(self, task: VideoTask) -> PreparedVideo:
        """Decode once and derive every view, in a worker thread: resizing overlaps evaluator compute too.

        A view stays a FrameView (derived per batch, by the evaluator) when every evaluator reading it takes
        one and it would be larger than the decoded frames it needs.
        """
        needs = self.needs[task.video]
        specs = list(dict.fromkeys(e.frame_spec() for e in needs))
        decoded = decode_video(task.path, specs, backend=self.opts.backend)
        views: dict[FrameSpec, tuple[torch.Tensor | FrameView, np.ndarray]] = {}
        failed: dict[FrameSpec, str] = {}
        for spec in specs:
            try:
                view = decoded.frame_view(spec)
                lazy = all(e.lazy_frames for e in needs if e.frame_spec() == spec) and view.nbytes > view.source_nbytes
                views[spec] = (view if lazy else view.frames(), decoded.timestamps[decoded.frame_indices(spec)])
            except VbenchPrefError as exc:
                failed[spec] = str(exc)
        return PreparedVideo(decoded.fps, views, failed)

    def _chunk_size(self) -> int:
        """chunk_videos, or under a budget as many videos as half of it holds (the next chunk is the other half)."""
        if self.budget is None:
            return self.opts.chunk_videos
        if self.video_bytes == 0:
            return 1  # nothing seen yet: one video tells the size
        return max(1, min(self.opts.chunk_videos, self.budget // (2 * self.video_bytes)))

    def _measure(self, chunk: list[tuple[VideoTask, Future[PreparedVideo]]]) -> None:
        """Wait for a chunk's decodes and learn the frame bytes of its videos (only under a budget)."""
        for _, future in chunk:
            try:
                self.video_bytes = max(self.video_bytes, future.result().nbytes)
            except VideoDecodeError:
                pass  # recorded when the chunk is scored

    def run(self) -> None:
        todo = deque(self.todo())

        def next_chunk() -> list[VideoTask]:
            size = min(self._chunk_size(), len(todo))
            if size:
                self.chunk_sizes.append(size)
            return [todo.popleft() for _ in range(size)]

        with ThreadPoolExecutor(max_workers=self.opts.workers, thread_name_prefix="decode") as pool:
            ahead: deque[list[tuple[VideoTask, Future[PreparedVideo]]]] = deque()

            def submit(chunk: list[VideoTask]) -> None:
                if chunk:
                    ahead.append([(task, pool.submit(self._prepare, task)) for task in chunk])

            try:
                submit(next_chunk())
                if ahead and not self.swap:
                    self._activate([e for group in self.groups for e in group])  # overlaps the first decodes
                while ahead:
                    current = ahead.popleft()
                    if self.budget is not None:
                        self._measure(current)  # the next chunk is sized from these videos
                    submit(next_chunk())  # the next chunk decodes while this one is scored
                    self._score_chunk(current)
                    del current  # its frames are freed before a third chunk is submitted
            except BaseException:
                for chunk in ahead:
                    for _, future in chunk:
                        future.cancel()
                if self.swap:
                    self._deactivate(quiet=True)
                raise

    def _score_chunk(self, chunk: list[tuple[VideoTask, Future[PreparedVideo]]]) -> None:
        # The chunk's first evaluator scores its batches as soon as their videos are decoded, so the
        # first chunk's decoding overlaps compute too; the others run once the whole chunk is decoded.
        needed = [e for group in self.groups for e in group if any(e in self.needs[t.video] for t, _ in chunk)]
        streaming = needed[0] if needed else None
        if streaming is not None and self.swap:
            self._activate(self.groups[self.group_index[streaming.name]])
        decoded: list[tuple[VideoTask, PreparedVideo]] = []
        stream: list[tuple[VideoTask, PreparedVideo]] = []
        for task, future in chunk:
            try:
                decoded.append((task, future.result()))
            except VideoDecodeError as exc:
                self._commit([Record(task.video, e.name, error=f"decode: {exc}") for e in self.needs[task.video]])
                continue
            if streaming in self.needs[task.video]:
                stream.append(decoded[-1])
                if len(stream) == self.opts.batch_size:
                    self._score_batches(streaming, stream)
                    stream = []
        if stream:
            assert streaming is not None
            self._score_batches(streaming, stream)
        for index, group in enumerate(self.groups):
            work = [(e, [(t, p) for t, p in decoded if e in self.needs[t.video]]) for e in group if e is not streaming]
            if not any(videos for _, videos in work) and streaming not in group:
                continue
            if self.swap and streaming not in group:
                self._activate(group)
            for evaluator, videos in work:
                self._score_batches(evaluator, videos)
            if self.swap:
                self._deactivate()
            self._drop_views(decoded, index)
        for evaluator in self.evaluators:
            evaluator.chunk_done()
        for _ in chunk:
            self.on_video()
        if time.monotonic() - self.last_materialized > MATERIALIZE_EVERY_S:
            self.materialize()

    def _score_batches(self, evaluator: Evaluator, videos: list[tuple[VideoTask, PreparedVideo]]) -> None:
        spec = evaluator.frame_spec()
        refused = [(t, p.failed_views[spec]) for t, p in videos if spec in p.failed_views]
        if refused:
            self._commit([Record(t.video, evaluator.name, error=f"frames: {reason}") for t, reason in refused])
            videos = [(t, p) for t, p in videos if spec not in p.failed_views]
        for start in range(0, len(videos), self.opts.batch_size):
            batch = [self._sample(evaluator, t, p) for t, p in videos[start : start + self.opts.batch_size]]
            if isinstance(evaluator, SetEvaluator):
                features, records = features_isolated(evaluator, batch)
                self.stores[evaluator.name].append(features)  # durable before the journal says done
                self._commit(records)
            else:
                self._commit(score_isolated(evaluator, batch))
            if time.monotonic() - self.last_materialized > MATERIALIZE_EVERY_S:
                self.materialize()

    def _sample(self, evaluator: Evaluator, task: VideoTask, prepared: PreparedVideo) -> VideoSample:
        frames, stamps = prepared.views[evaluator.frame_spec()]
        return VideoSample(
            video=task.video,
            frames=frames,
            timestamps=stamps,
            fps=prepared.fps,
            prompt=task.prompt,
            image=task.image,
            extras={"seed": video_seed(self.opts.seed, task.video)},
        )

    def _drop_views(self, decoded: list[tuple[VideoTask, PreparedVideo]], done_group: int) -> None:
        """Free the frame views that no later group of this chunk reads."""
        for task, prepared in decoded:
            keep = {e.frame_spec() for e in self.needs[task.video] if self.group_index[e.name] > done_group}
            for spec in [s for s in prepared.views if s not in keep]:
                del prepared.views[spec]

    def _activate(self, group: Sequence[Evaluator]) -> None:
        for evaluator in group:
            self.resident.append(evaluator)  # before: a half-done activate is undone too
            evaluator.activate()

    def _deactivate(self, quiet: bool = False) -> None:
        """Move the resident models off the device; ``quiet`` while another exception propagates."""
        resident, self.resident = self.resident, []
        errors: list[Exception] = []
        for evaluator in resident:
            try:
                evaluator.deactivate()
            except Exception as exc:  # noqa: BLE001 - the others still leave the device
                errors.append(exc)
        try:
            torch.cuda.empty_cache()  # a no-op unless CUDA was initialised
        except Exception as exc:  # noqa: BLE001 - reported below unless quiet
            errors.append(exc)
        if errors and not quiet:
            raise errors[0]

    def _commit(self, records: list[Record]) -> None:
        self.run_dir.append(records)
        self.records.extend(records)

    def materialize(self) -> dict[str, Any]:
        self.last_materialized = time.monotonic()
        if not self.materializes:
            return {}
        return self.run_dir.materialize(
            self.tasks, self.columns, self.records, self.random_columns, self.model_random_weights, self.distances
        )


def _check_output(evaluator: Evaluator, values: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    names = [s.name for s in evaluator.scores]
    if set(values) != set(names):
        raise RuntimeError(f"{evaluator.name}.score returned {sorted(values)}, its card declares {names}")
    arrays = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in values.items()}
    for key, array in arrays.items():
        if array.shape[0] != size:
            raise RuntimeError(f"{evaluator.name}.score returned {array.shape[0]} values of {key} for {size} videos")
    return arrays


def score_isolated(evaluator: Evaluator, batch: list[VideoSample]) -> list[Record]:
    """Score a batch; when it fails, score its videos one by one so one bad video costs only itself."""
    try:
        values = _check_output(evaluator, evaluator.score(batch), len(batch))
    except Exception as batch_error:  # noqa: BLE001 - any failure is recorded per video
        if len(batch) == 1:
            return [Record(batch[0].video, evaluator.name, error=_one_line(batch_error))]
        records: list[Record] = []
        for sample in batch:
            records.extend(score_isolated(evaluator, [sample]))
        return records
    return [
        Record(sample.video, evaluator.name, {k: float(v[i]) for k, v in values.items()})
        for i, sample in enumerate(batch)
    ]


def _check_features(evaluator: SetEvaluator, values: Sequence[Any], batch: Sequence[VideoSample]) -> list[np.ndarray]:
    if len(values) != len(batch):
        raise RuntimeError(f"{evaluator.name}.features returned {len(values)} items for {len(batch)} videos")
    checked = []
    for sample, value in zip(batch, values):
        array = value.detach().float().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value, dtype=np.float64)
        rows = array.reshape(1, -1) if array.ndim == 1 else array
        if rows.ndim != 2 or rows.shape[0] < 1 or rows.shape[1] != evaluator.feature_dim:
            raise RuntimeError(
                f"{evaluator.name}.features gave shape {tuple(array.shape)} for {sample.video}; its card declares "
                f"(k, {evaluator.feature_dim})"
            )
        if not np.isfinite(rows).all():
            raise VbenchPrefError(f"{evaluator.name}: the features of {sample.video} hold NaN or infinite values")
        checked.append(rows)
    return checked


def features_isolated(evaluator: SetEvaluator, batch: list[VideoSample]) -> tuple[list[tuple[str, np.ndarray]], list[Record]]:
    """Feature rows of a batch and its journal records; when it fails, video by video, as ``score_isolated``."""
    try:
        rows = _check_features(evaluator, evaluator.features(batch), batch)
    except Exception as batch_error:  # noqa: BLE001 - any failure is recorded per video
        if len(batch) == 1:
            return [], [Record(batch[0].video, evaluator.name, error=_one_line(batch_error))]
        features: list[tuple[str, np.ndarray]] = []
        records: list[Record] = []
        for sample in batch:
            one, record = features_isolated(evaluator, [sample])
            features += one
            records += record
        return features, records
    return [(s.video, r) for s, r in zip(batch, rows)], [Record(s.video, evaluator.name) for s in batch]


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    message = text[0] if text else ""
    return message if isinstance(error, VbenchPrefError) else f"{type(error).__name__}: {message}"


def suite_digest(tasks: Sequence[VideoTask]) -> tuple[str, int]:
    """sha256 of the distinct (prompt id, prompt) pairs of a run's videos, and how many there are.

    The id is the manifest's ``prompt_id``, else the id a prompt file gives a prompt without one
    (``p-`` + 10 hex digits of its sha256); a video without a prompt counts as (its video id, null).
    Each pair is written as the UTF-8 JSON ``[id, prompt]`` plus a newline, pairs sorted by that text,
    so the digest does not depend on video order, file names or the number of videos per prompt.
    """
    lines = sorted({
        json.dumps(
            [t.prompt_id or (t.video if t.prompt is None else prompt_id(t.prompt)), t.prompt], ensure_ascii=False
        ) + "\n"
        for t in tasks
    })
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest(), len(lines)


def suite_identity(opts: ScoreOptions, matching: Matching) -> dict[str, Any]:
    """What the leaderboard groups runs by: the suite's name and the digest of the prompts scored.

    The name is the one ``eval`` gives (a bundled suite's name, or the prompt file's name), else the
    ``--prompts`` file's name (prompt file or manifest), else the videos folder's name.
    """
    digest, n_prompts = suite_digest(matching.tasks)
    name = opts.suite or (opts.prompts.name if opts.prompts is not None else opts.videos.resolve().name)
    return {"name": name, "digest": digest, "prompts": n_prompts}


def _provenance(
    opts: ScoreOptions,
    evaluators: Sequence[Evaluator],
    matching: Matching,
    config: dict[str, Any],
    device: torch.device,
    created: str,
) -> dict[str, Any]:
    return {
        "run_id": f"{opts.out.resolve().name}-{hashlib.sha256(repr(sorted(config.items())).encode()).hexdigest()[:8]}",
        "model": opts.model,
        "method": opts.method if opts.method is not None else opts.videos.resolve().name,
        "created": created,
        "updated": now_iso(),
        "package": {"name": "vbench-pref", "version": vbench_pref.__version__, "git": git_revision()},
        "command": opts.command if opts.command is not None else sys.argv,
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "platform": platform.platform(),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        },
        "inputs": {
            "videos": str(opts.videos),
            "prompts": None if opts.prompts is None else str(opts.prompts),
            "matching": matching.mode,
            "matching_source": matching.source,
            "n_videos": len(matching.tasks),
            "decode_backend": opts.backend,
            "allow_outside_paths": opts.allow_outside_paths,
            "left_out": {"count": len(matching.left_out), "videos": matching.left_out[:LEFT_OUT_LISTED]},
        },
        "suite": suite_identity(opts, matching),
        "evaluators": [e.provenance() for e in evaluators],
        "random_weights": list(random_weight_columns(evaluators)),
        "model_random_weights": generation_random_weights(opts.videos),
        "device": str(device),
        "dtype": opts.dtype,
        "seed": opts.seed,
        "batch_size": opts.batch_size,
        "chunk_videos": opts.chunk_videos,
        "memory_budget": None if opts.memory_budget is None else parse_size(opts.memory_budget),
        "residency_groups": [[e.name for e in group] for group in residency_groups(evaluators)],
        "bootstrap": {"resamples": BOOTSTRAP_RESAMPLES, "seed": BOOTSTRAP_SEED, "level": 0.95, "method": "percentile"},
        "config": config,
    }


def run_scoring(
    opts: ScoreOptions,
    on_start: Callable[[int, int, dict[str, str], bool], None] | None = None,
    on_video: Callable[[], None] | None = None,
    procs: Processes = Processes(),
    on_note: Callable[[str], None] | None = None,
) -> ScoreResult:
    """Score a folder of videos into ``opts.out``; resumable. Raises VbenchPrefError on bad input.

    Under several processes (``procs``) every process calls this: each scores every ``world``-th video into
    its own journal, and the main process merges the journals into the run's files once all are done.
    """
    device = check_score_options(opts, procs)
    matching = match_videos(opts.videos, opts.prompts, opts.recursive, opts.allow_outside_paths)
    if matching.left_out and on_note is not None and procs.is_main:
        on_note(f"{matching.source} leaves out {len(matching.left_out)} video(s) of {opts.videos}, not scored: "
                f"{', '.join(matching.left_out[:5])}{' ...' if len(matching.left_out) > 5 else ''} (see inputs.left_out in run.json)")
    with_prompts = all(t.prompt is not None for t in matching.tasks)
    evaluators, skipped = check_evaluators(opts.evaluators, opts.evaluator_options, with_prompts)
    set_level = [e for e in evaluators if isinstance(e, SetEvaluator)]
    if not opts.features_only:
        check_set_level(opts.reference, set_level)
    check_output_folder(opts.out)
    config = _run_config(opts, evaluators, matching, device)
    run_dir = RunDir(opts.out, shard_journal(procs.rank) if procs.distributed else RECORDS)
    resumed = run_dir.bind(config)
    procs.barrier()  # every process checked the folder before the main one writes to it
    shared = SharedModels()  # models several evaluators use are built once per run
    for evaluator in evaluators:  # weights are read before anything is written
        log.info("loading evaluator %s", evaluator.name)
        load_evaluator(evaluator, device, DTYPES[opts.dtype], shared)
    if set_level and not opts.features_only:
        check_set_level(opts.reference, set_level, with_weights=True)  # weight digests are known once loaded
    previous = run_dir.read_run_json() or {}
    created = previous.get("created", now_iso())
    run_dir.path.mkdir(parents=True, exist_ok=True)
    procs.check_shared(run_dir.path)
    run_dir.repair_journal()
    records = run_dir.read_records()
    provenance = _provenance(opts, evaluators, matching, config, device, created)
    provenance["status"] = {"complete": False, "videos": len(matching.tasks)}
    provenance["processes"] = procs.world
    if set_level and not opts.features_only:
        provenance["reference"] = reference_provenance(str(opts.reference), set_level)
    if procs.is_main:
        run_dir.write_run_json(provenance)

    torch.manual_seed(opts.seed)
    shard = matching.tasks[procs.rank :: procs.world]
    engine = _Engine(
        opts, evaluators, shard, run_dir, records, on_video or (lambda: None), device, materializes=procs.is_main,
        model_random_weights=provenance["model_random_weights"], rank=procs.rank if procs.distributed else None,
    )
    if on_start is not None:
        on_start(len(shard), len(engine.todo()), skipped, resumed)
    interrupted = False
    error: BaseException | None = None
    try:
        engine.run()
    except KeyboardInterrupt:
        interrupted = True
    except BaseException as exc:  # noqa: BLE001 - re-raised below, once the other processes know
        error = exc
    everyone_ok = procs.all_ok(error is None and not interrupted)
    if procs.distributed:  # the views cover every process's journal
        engine.tasks, engine.records = matching.tasks, run_dir.read_records()
    if error is not None or not (everyone_ok or interrupted):
        # keep what finished visible before the error propagates; on a full or read-only disk this fails
        # too, and the first error is the one to report
        with contextlib.suppress(OSError):
            engine.materialize()
        if error is not None:
            raise error
        raise VbenchPrefError(f"another process failed while scoring; what finished is kept in {opts.out}: rerun")
    if set_level and not opts.features_only and not interrupted and procs.is_main:
        engine.distances = run_distances(opts.out, str(opts.reference), set_level, matching.tasks, on_note)
    summary = engine.materialize()
    latest = latest_records(engine.records)
    videos = {t.video for t in matching.tasks}
    failed = {video for (video, _), record in latest.items() if record.error is not None} & videos
    scored = {
        t.video for t in matching.tasks
        if all((r := latest.get((t.video, e.name))) is not None and r.error is None for e in evaluators)
    }
    provenance["updated"] = now_iso()
    provenance["status"] = {
        "complete": not interrupted,
        "videos": len(matching.tasks),
        "scored": len(scored),
        "failed": len(failed),
        "skipped_evaluators": skipped,
    }
    if procs.is_main:
        run_dir.write_run_json(provenance)
    procs.barrier()
    result = ScoreResult(run_dir.path, len(matching.tasks), len(failed), interrupted, skipped, summary, resumed)
    if interrupted:
        raise RunInterrupted(result)
    return result


def check_set_level(reference: str | None, evaluators: Sequence[SetEvaluator], with_weights: bool = False) -> None:
    """Set-level evaluators need a reference set made with their settings; one-line errors otherwise."""
    from vbench_pref.distribution.reference import check_references, require_reference

    require_reference(reference, evaluators)
    if evaluators:
        assert reference is not None
        check_references(reference, evaluators, with_weights)


def reference_provenance(reference: str, evaluators: Sequence[SetEvaluator]) -> dict[str, Any]:
    """What run.json records about the reference set: its name and, per evaluator, what identifies its statistics."""
    from vbench_pref.distribution.reference import read_info

    sets = {}
    for evaluator in evaluators:
        info = read_info(reference, evaluator.name)
        sets[evaluator.name] = {key: info.get(key) for key in ("created", "n_videos", "n_features", "stats_sha256")}
        sets[evaluator.name]["videos_digest"] = info.get("videos", {}).get("digest")
        sets[evaluator.name]["videos_folder"] = info.get("videos", {}).get("folder")
    return {"name": reference, "evaluators": sets}


def run_distances(
    out: Path,
    reference: str,
    evaluators: Sequence[SetEvaluator],
    tasks: Sequence[VideoTask],
    on_note: Callable[[str], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Each set-level evaluator's distances between the run's stored features and the reference set's."""
    from vbench_pref.distribution.aggregate import distance_entries
    from vbench_pref.distribution.reference import load_reference

    entries: dict[str, dict[str, Any]] = {}
    videos = [t.video for t in tasks]
    for evaluator in evaluators:
        log.info("computing the distances of %s to reference set %s", evaluator.name, reference)
        features = FeatureStore(out, evaluator.name).read(videos)
        found = distance_entries(evaluator, features, load_reference(reference, evaluator), len(videos) - features.n_videos)
        for entry in found.values():
            if entry["warning"] and on_note is not None:
                on_note(entry["warning"])
        entries.update(found)
    return entries


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run, after everything finished so far was saved."""

    def __init__(self, result: ScoreResult) -> None:
        super().__init__("interrupted")
        self.result = result

