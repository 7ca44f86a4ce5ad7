"""The training loop: accelerate, LoRA via peft (reference = adapters disabled), checkpoints that resume exactly.

Determinism is by construction rather than by restored RNG state: the pairs of every micro-step come from a
seeded permutation per epoch, and its timesteps and noise from a generator seeded with (seed, position in
that stream), whatever the number of processes. A resumed run therefore sees exactly the data, t and noise an uninterrupted run
would, and with the optimizer and scheduler state restored from the checkpoint it computes the same losses.

Run folder:

    OUT/train.json                  the config (top level) and what it ran on ("run")
    OUT/metrics.jsonl               one line per optimizer step (TRL names; see diagnostics.py)
    OUT/probe.jsonl                 the probe-set log-likelihood proxies every --probe-every steps
    OUT/checkpoints/step-000500/    resumable state + adapter/ (or denoiser/) + vbench_pref.json
    OUT/vbench_pref.json            points at the newest checkpoint: `eval --model OUT` loads it
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from vbench_pref.atomic import append_synced, atomic_write_text, cut_torn_line
from vbench_pref.distributed import processes
from vbench_pref.errors import VbenchPrefError
from vbench_pref.generate.models import load_model, model_identity, write_model_card
from vbench_pref.preflight import check_device, check_output_folder
from vbench_pref.train import diagnostics
from vbench_pref.train.checkpoint import (
    STATE_FORMAT, TRAINER_STATE, CheckpointError, error_line, load_training_state, save_training_state, trainer_state,
)
from vbench_pref.train.config import TrainConfig
from vbench_pref.train.data import (
    INDEX, FrameSettings, LatentCache, cache_key, default_cache_dir, file_sha256, precompute, read_pairs,
)
from vbench_pref.train.losses import LossOptions, PairErrors, compute_loss, concat_errors
from vbench_pref.train.models import training_spec

TRAIN_JSON = "train.json"
METRICS = "metrics.jsonl"
PROBE = "probe.jsonl"
CHECKPOINTS = "checkpoints"
# may differ between a run and its resumption: they change neither the data, the noise nor the updates
RESUMABLE_CHANGES = frozenset({"max_steps", "checkpoint_every", "keep_checkpoints", "probe_every", "max_bad_steps",
                               "device", "cache"})
# where the run and its inputs are, not what they are: a run folder may move and a path may be spelled
# relative or absolute; the inputs are compared through input_identity() instead
LOCATIONS = frozenset({"out", "model", "base_model", "pairs"})


class TrainingDiverged(VbenchPrefError):
    """The loss or gradient was not finite for --max-bad-steps steps in a row."""


@dataclass
class TrainResult:
    out: Path
    start_step: int
    steps: int
    skipped: int
    checkpoint: Path | None
    random_weights: bool


def mixed_precision_for(config: TrainConfig) -> str:
    if config.mixed_precision != "auto":
        return config.mixed_precision
    on_gpu = config.device != "cpu" and torch.cuda.is_available()
    return "bf16" if on_gpu and torch.cuda.is_bf16_supported() else "no"


def seed_for(*parts: int | str) -> int:
    """A 63-bit seed from the run seed and a position; independent streams for every (step, micro, rank)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def pair_indices(seed: int, n_pairs: int, first: int, count: int) -> list[int]:
    """Positions first..first+count of the endless stream of epochs, each a seeded permutation of the pairs."""
    indices: list[int] = []
    position = first
    while len(indices) < count:
        epoch, offset = divmod(position, n_pairs)
        order = torch.randperm(n_pairs, generator=torch.Generator().manual_seed(seed_for(seed, "epoch", epoch)))
        take = min(count - len(indices), n_pairs - offset)
        indices.extend(order[offset:offset + take].tolist())
        position += take
    return indices


def run_training(
    config: TrainConfig,
    resume: bool = False,
    on_stage: Callable[[str], None] | None = None,
    on_step: Callable[[int, int, dict[str, Any]], None] | None = None,
    on_precompute: Callable[[int], Callable[[], None]] | None = None,
) -> TrainResult:
    from accelerate import Accelerator

    out = Path(config.out)
    stage = on_stage or (lambda _: None)
    check_training(config)
    _check_run_folder(out, config, resume)
    _forget_previous_run_settings()
    accelerator = Accelerator(mixed_precision=mixed_precision_for(config), cpu=config.device == "cpu")
    world = accelerator.num_processes
    per_step = config.batch_size * world
    if config.effective_batch_size % per_step:
        raise VbenchPrefError(
            f"--effective-batch-size {config.effective_batch_size} is not a multiple of --batch-size "
            f"{config.batch_size} x {world} process(es)"
        )
    accumulation = config.effective_batch_size // per_step
    checkpoint = _latest_checkpoint(out) if resume else None
    start = trainer_state(checkpoint)["step"] if checkpoint is not None else 0  # refused before the model loads

    stage("loading the model")
    weight_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(accelerator.mixed_precision, torch.float32)
    lora = config.finetune == "lora"
    loaded = load_model(config.model, accelerator.device, weight_dtype if lora else torch.float32, config.base_model)
    spec = training_spec(loaded)
    if config.timestep_sampling is not None:
        spec = _with_timestep_sampling(spec, config.timestep_sampling)
    pipeline = loaded.pipeline

    location = cache_location(config, loaded)
    with accelerator.main_process_first():
        if accelerator.is_main_process:
            fill_cache(config, loaded, spec, location, on_precompute, stage)
    cache_dir = location.folder
    procs = processes()  # the process group accelerate started
    procs.check_shared(cache_dir, "the latent cache")
    cache = LatentCache(cache_dir)
    if accelerator.is_main_process and config.effective_batch_size > len(cache):
        stage(oversized_batch_warning(config, accumulation, world, len(cache)))
    _release_encoders(pipeline)

    denoiser = getattr(pipeline, loaded.family.denoiser)
    model, reference = _trainable(denoiser, config, lora)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        parameters, lr=config.learning_rate, betas=(config.adam_beta1, config.adam_beta2),
        weight_decay=config.weight_decay, eps=config.adam_epsilon,
    )
    from diffusers.optimization import get_scheduler

    try:
        scheduler = get_scheduler(config.lr_scheduler, optimizer, num_warmup_steps=config.lr_warmup_steps,
                                  num_training_steps=config.max_steps)
    except ValueError as exc:
        raise VbenchPrefError(f"--lr-scheduler {config.lr_scheduler}: {exc}") from None
    # the schedule is stepped once per optimizer step, not through accelerate (which would step it per process)
    model, optimizer = accelerator.prepare(model, optimizer)

    options = config.loss_options()
    run = _Run(config, accelerator, spec, pipeline, model, reference, lora, cache, options, optimizer, scheduler)
    if checkpoint is not None:
        stage(f"resuming from {checkpoint}")
        _restore_checkpoint(run, checkpoint)
    if accelerator.is_main_process:
        _prepare_logs(out, start)
        _write_train_json(out, config, loaded, cache_dir, world, accumulation, start)
    accelerator.wait_for_everyone()
    procs.check_shared(out)

    writer = diagnostics.tensorboard_writer(out) if accelerator.is_main_process else None
    probe = run.probe_batch()
    if accelerator.is_main_process and start == 0:
        run.log_probe(out, 0, probe, baseline=None)
    baseline = diagnostics.probe_baseline(out / PROBE) if accelerator.is_main_process else None

    stage(f"training {config.loss} for {config.max_steps} steps ({accumulation} micro-steps of {config.batch_size} "
          f"pair(s) x {world} process(es) per step)")
    skipped = bad_streak = 0
    last_checkpoint = checkpoint
    for step in range(start + 1, config.max_steps + 1):
        row = run.train_step(step, accumulation)
        if row["skipped"]:
            skipped += 1
            bad_streak += 1
        else:
            bad_streak = 0
        if accelerator.is_main_process:
            append_synced(out / METRICS, diagnostics.jsonl_line(row))
            if writer is not None:
                diagnostics.write_tensorboard(writer, row)
        if on_step:
            on_step(step, config.max_steps, row)
        if bad_streak >= config.max_bad_steps:
            where = f"; the last checkpoint is {last_checkpoint}" if last_checkpoint else ""
            raise TrainingDiverged(
                f"the loss or gradient was NaN/inf for {bad_streak} steps in a row (up to step {step}): lower "
                f"--learning-rate or --beta, or check the pairs{where}"
            )
        if step % config.probe_every == 0 or step == config.max_steps:
            if accelerator.is_main_process:
                run.log_probe(out, step, probe, baseline)
            else:
                run.probe(probe)  # every process runs the same forwards, so sharded models stay in step
        if step % config.checkpoint_every == 0 or step == config.max_steps:
            last_checkpoint = _save_checkpoint(run, out, step, loaded)
    if writer is not None:
        writer.close()
    accelerator.wait_for_everyone()
    steps_done = max(config.max_steps - start, 0)
    return TrainResult(out, start, steps_done, skipped, last_checkpoint, loaded.random_weights)


def oversized_batch_warning(config: TrainConfig, accumulation: int, world: int, n_pairs: int) -> str:
    # the epochs run on without a gap, so a step larger than the data holds some pairs twice
    return (
        f"warning: the effective batch ({config.batch_size} per device x {accumulation} accumulation x {world} "
        f"process(es) = {config.effective_batch_size}) exceeds the {n_pairs} pairs: each step sees some pairs "
        "more than once; lower --effective-batch-size"
    )


def check_training(config: TrainConfig, writes_run: bool = True) -> None:
    """What can be checked before the model loads: the device, the pairs and their videos, the schedule and
    that the run and cache folders can be written."""
    from diffusers.optimization import SchedulerType

    from vbench_pref.train.models.wan import TIMESTEP_SAMPLINGS

    check_device(config.device)
    schedules = [s.value for s in SchedulerType]
    if config.lr_scheduler not in schedules:
        raise VbenchPrefError(f"--lr-scheduler must be one of {', '.join(schedules)}; got {config.lr_scheduler!r}")
    if config.timestep_sampling is not None and config.timestep_sampling not in TIMESTEP_SAMPLINGS:
        raise VbenchPrefError(
            f"--timestep-sampling must be one of {', '.join(TIMESTEP_SAMPLINGS)}; got {config.timestep_sampling!r}"
        )
    pairs = read_pairs(Path(config.pairs))
    missing = sorted({str(v) for pair in pairs for v in (pair.chosen, pair.rejected) if not v.is_file()})
    if missing:
        raise VbenchPrefError(f"{config.pairs}: {len(missing)} video(s) of the pairs not found, e.g. {missing[0]}")
    if writes_run:
        check_output_folder(config.out)
    cache_root = Path(config.cache) if config.cache else Path(config.pairs).parent / "cache"
    if not any(cache_root.glob(f"{'' if config.cache else '*/'}{INDEX}")):  # a finished cache is only read
        check_output_folder(cache_root, "--cache" if config.cache else "--cache (default: beside --pairs)")


def _forget_previous_run_settings() -> None:
    """accelerate keeps one mixed-precision setting per process; a second run in the same process (a sweep,
    a notebook, the tests) may ask for another. The process group itself is kept."""
    from accelerate.state import AcceleratorState

    reset = getattr(AcceleratorState, "_reset_state", None)
    if reset is not None:
        reset(reset_partial_state=False)


@dataclass(frozen=True)
class CacheLocation:
    folder: Path
    key: dict[str, Any]
    frames: FrameSettings


def cache_location(config: TrainConfig, loaded: Any) -> CacheLocation:
    """Where the latent cache of (model, pairs, frame settings) lives, and the key it must carry."""
    pairs_file = Path(config.pairs)
    frames = FrameSettings(config.num_frames, config.height, config.width)
    if frames.num_frames is not None:
        loaded.family.check_frames(frames.num_frames, "--num-frames")
    loaded.family.check_size(frames.height, frames.width)
    key = cache_key(model_identity(config.model), loaded.family.name, pairs_file, frames)
    folder = Path(config.cache) if config.cache else default_cache_dir(pairs_file, key)
    return CacheLocation(folder, key, frames)


def fill_cache(
    config: TrainConfig, loaded: Any, spec: Any, location: CacheLocation,
    on_precompute: Callable[[int], Callable[[], None]] | None, stage: Callable[[str], None] | None,
) -> Path:
    """Encode whatever the cache at ``location`` still lacks (nothing when it is complete)."""
    pairs = read_pairs(Path(config.pairs))
    if stage:
        stage(f"latent cache {location.folder} ({len(pairs)} pairs)")
    tick = on_precompute(len(pairs)) if on_precompute else None
    return precompute(loaded.pipeline, spec, pairs, location.folder, location.key, location.frames, tick)


def run_precompute(config: TrainConfig, on_precompute: Callable[[int], Callable[[], None]] | None = None) -> Path:
    """``vbench-pref precompute``: load the model and fill the latent cache, nothing else."""
    check_training(config, writes_run=False)
    device = check_device(config.device)
    logging.getLogger(__name__).info("loading the model %s on %s", config.model, device)
    loaded = load_model(config.model, device, torch.float32, config.base_model)
    return fill_cache(config, loaded, training_spec(loaded), cache_location(config, loaded), on_precompute, None)


def pair_errors(
    spec: Any, pipeline: Any, policy: Any, reference_predict: Callable[..., torch.Tensor], inputs: dict[str, Any],
    grad: bool = True, autocast: Callable[[], Any] = nullcontext,
) -> PairErrors:
    """Policy and reference errors of chosen and rejected, which share t and noise; one batched forward each.

    ``reference_predict(noisy, timesteps, conditions)`` is the reference model's prediction (for LoRA: the
    policy with its adapters disabled). The reference runs first, without gradients, so its activations are
    gone before the policy's are kept for the backward pass.
    """
    n = inputs["chosen"].shape[0]
    latents = torch.cat([inputs["chosen"], inputs["rejected"]])
    noise = torch.cat([inputs["noise"], inputs["noise"]])
    timesteps = torch.cat([inputs["timesteps"], inputs["timesteps"]])
    conditions = {k: torch.cat([v, v]) for k, v in inputs["conditions"].items()}
    noised = spec.add_noise(pipeline, latents, noise, timesteps)
    with torch.no_grad(), autocast():
        reference_prediction = reference_predict(noised.noisy, timesteps, conditions)
    with (nullcontext() if grad else torch.no_grad()), autocast():
        prediction = spec.predict(policy, pipeline, noised.noisy, timesteps, conditions)
    target = noised.target.float()
    residual = prediction.float() - target
    reference_residual = reference_prediction.float() - target
    errors = PairErrors.from_residuals(
        residual[:n], residual[n:], reference_residual[:n], reference_residual[n:],
        preference_probability=inputs.get("probability"),
    )
    precision = spec.step_precision(pipeline, inputs["timesteps"]).to(residual.device, torch.float32)
    return dataclasses.replace(
        errors,
        log_importance_chosen=-precision * errors.policy_chosen,
        log_importance_rejected=-precision * errors.policy_rejected,
    )


class _Run:
    """One training run's moving parts: the forward passes, the step, the probe."""

    def __init__(self, config: TrainConfig, accelerator: Any, spec: Any, pipeline: Any, model: Any,
                 reference: Any, lora: bool, cache: LatentCache, options: LossOptions, optimizer: Any,
                 scheduler: Any) -> None:
        self.config, self.accelerator, self.spec, self.pipeline = config, accelerator, spec, pipeline
        self.model, self.reference, self.lora, self.cache, self.options = model, reference, lora, cache, options
        self.optimizer, self.scheduler = optimizer, scheduler
        self.latent_shape = tuple(cache.index["latent_shape"])

    def _inputs(self, indices: list[int], generator: torch.Generator) -> dict[str, Any]:
        data = self.cache.batch(indices)
        n = len(indices)
        timesteps = self.spec.sample_timesteps(self.pipeline, n, generator)
        noise = torch.randn((n, *self.latent_shape), generator=generator)
        device = self.accelerator.device
        return {
            "chosen": data["chosen"].to(device), "rejected": data["rejected"].to(device),
            "conditions": {k: v.to(device) for k, v in data["conditions"].items()},
            "probability": data["preference_probability"].to(device),
            "timesteps": timesteps.to(device), "noise": noise.to(device),
        }

    def errors(self, inputs: dict[str, Any], grad: bool) -> PairErrors:
        return pair_errors(self.spec, self.pipeline, self.model, self._reference_predict, inputs, grad,
                           self.accelerator.autocast)

    def _reference_predict(self, noisy: torch.Tensor, timesteps: torch.Tensor, conditions: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.lora:
            peft_model = self.accelerator.unwrap_model(self.model)
            with peft_model.disable_adapter():
                return self.spec.predict(peft_model, self.pipeline, noisy, timesteps, conditions)
        return self.spec.predict(self.reference, self.pipeline, noisy, timesteps, conditions)

    def train_step(self, step: int, accumulation: int) -> dict[str, Any]:
        accelerator, config = self.accelerator, self.config
        rank, world = accelerator.process_index, accelerator.num_processes
        collected: list[dict[str, torch.Tensor]] = []
        finite = True
        for micro in range(accumulation):
            # this process's slot in the global stream of pairs: steps, then micro-steps, then processes
            first = (((step - 1) * accumulation + micro) * world + rank) * config.batch_size
            indices = pair_indices(config.seed, len(self.cache), first, config.batch_size)
            # seeded by the stream position, so t and noise do not depend on how steps are split over processes
            generator = torch.Generator().manual_seed(seed_for(config.seed, "noise", first))
            inputs = self._inputs(indices, generator)
            last = micro == accumulation - 1
            with nullcontext() if last else accelerator.no_sync(self.model):
                errors = self.errors(inputs, grad=True)
                output = compute_loss(config.loss, errors, self.options)
                loss = output.loss.mean()
                finite = finite and _all_finite(accelerator, loss)
                if finite:
                    accelerator.backward(loss / accumulation)
            collected.append({"loss": output.loss.detach(), **output.metrics})
        grad_norm = float("nan")
        if finite:
            grad_norm = _clip(accelerator, self.model, config.max_grad_norm)
            finite = math.isfinite(grad_norm)
        if finite:
            self.optimizer.step()
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        metrics = {k: accelerator.gather(torch.cat([c[k] for c in collected]).float()) for k in collected[0]}
        return diagnostics.step_row(step, len(self.cache), config.effective_batch_size, metrics, grad_norm,
                                    self.scheduler.get_last_lr()[0], skipped=not finite)

    def probe_batch(self) -> dict[str, Any]:
        """The fixed probe set: the first pairs of the cache with their own fixed timesteps and noise."""
        count = min(self.config.probe_pairs, len(self.cache))
        generator = torch.Generator().manual_seed(seed_for(self.config.seed, "probe"))
        return self._inputs(list(range(count)), generator)

    def probe(self, inputs: dict[str, Any]) -> PairErrors:
        chunks: list[PairErrors] = []
        size = self.config.batch_size
        n = inputs["chosen"].shape[0]
        for start in range(0, n, size):
            part = {k: _slice(v, start, start + size) for k, v in inputs.items()}
            chunks.append(self.errors(part, grad=False))
        return concat_errors(chunks)

    def log_probe(self, out: Path, step: int, inputs: dict[str, Any], baseline: dict[str, float] | None) -> None:
        row = diagnostics.probe_row(step, self.probe(inputs), self.options.beta, baseline)
        append_synced(out / PROBE, diagnostics.jsonl_line(row))


def _slice(value: Any, start: int, stop: int) -> Any:
    if isinstance(value, dict):
        return {k: v[start:stop] for k, v in value.items()}
    return value[start:stop]


def _all_finite(accelerator: Any, loss: torch.Tensor) -> bool:
    """Whether the loss is finite on every process (they must agree on skipping a backward)."""
    flag = torch.tensor([1.0 if torch.isfinite(loss).item() else 0.0], device=accelerator.device)
    return bool(accelerator.gather(flag).min().item() > 0)


def _clip(accelerator: Any, model: Any, max_norm: float) -> float:
    parameters = [p for p in model.parameters() if p.requires_grad]
    if max_norm > 0:
        return float(accelerator.clip_grad_norm_(parameters, max_norm))
    norms = [p.grad.detach().float().norm() for p in parameters if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0


def _trainable(denoiser: Any, config: TrainConfig, lora: bool) -> tuple[Any, Any]:
    denoiser.requires_grad_(False)
    if config.gradient_checkpointing:
        if not getattr(denoiser, "_supports_gradient_checkpointing", False):
            raise VbenchPrefError(f"{type(denoiser).__name__} does not support gradient checkpointing")
        denoiser.enable_gradient_checkpointing()
    if not lora:
        reference = copy.deepcopy(denoiser).eval()
        denoiser.requires_grad_(True)
        denoiser.train()
        return denoiser, reference
    from peft import LoraConfig, get_peft_model

    targets = [m.strip() for m in config.lora_target_modules.split(",") if m.strip()]
    adapter = LoraConfig(
        r=config.lora_rank, lora_alpha=config.lora_alpha or config.lora_rank, lora_dropout=config.lora_dropout,
        target_modules=targets, init_lora_weights=True,
    )
    torch.manual_seed(seed_for(config.seed, "lora"))  # LoRA A is random: same seed, same start
    try:
        model = get_peft_model(denoiser, adapter)
    except ValueError as exc:
        raise VbenchPrefError(f"--lora-target-modules {config.lora_target_modules}: {str(exc).splitlines()[0]}") from None
    model.train()
    return model, None


def _with_timestep_sampling(spec: Any, sampling: str) -> Any:
    if not any(f.name == "timestep_sampling" for f in dataclasses.fields(spec)):
        raise VbenchPrefError(f"--timestep-sampling applies to flow-matching families, not {spec.family}")
    try:
        return dataclasses.replace(spec, timestep_sampling=sampling)
    except ValueError as exc:
        raise VbenchPrefError(f"--timestep-sampling: {exc}") from None


def _release_encoders(pipeline: Any) -> None:
    """The VAE and text encoders are only needed for the cache: off the accelerator while training."""
    for name in ("vae", "text_encoder", "text_encoder_2", "image_encoder"):
        module = getattr(pipeline, name, None)
        if isinstance(module, torch.nn.Module):
            module.to("cpu")
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def input_identity(model: str, base_model: str | None, pairs: str) -> dict[str, Any]:
    """What a run trains from, whatever the spelling of its paths: models by identity, pairs by content."""
    pairs_file = Path(pairs).expanduser()
    return {
        "model": model_identity(model), "base_model": model_identity(base_model) if base_model else None,
        "pairs": f"sha256:{file_sha256(pairs_file)}" if pairs_file.is_file() else str(pairs_file.resolve()),
    }


def _check_run_folder(out: Path, config: TrainConfig, resume: bool) -> None:
    existing = out / TRAIN_JSON
    if not existing.is_file():
        return
    if not resume:
        raise VbenchPrefError(f"{out} already holds a training run; pass --resume to continue it or choose another --out")
    try:
        previous = json.loads(existing.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise VbenchPrefError(f"{existing} is not valid JSON") from None
    current = config.as_dict()
    changed = sorted(k for k, v in current.items()
                     if k not in RESUMABLE_CHANGES | LOCATIONS and previous.get(k) != v)
    details = [f"{k}: {previous.get(k)!r} -> {current[k]!r}" for k in changed]
    # runs recorded before the identities were kept: their paths are taken from where this command runs
    before = (previous.get("run") or {}).get("inputs") or input_identity(
        str(previous.get("model", "")), previous.get("base_model"), str(previous.get("pairs", "")))
    now = input_identity(config.model, config.base_model, config.pairs)
    for key in sorted(now):
        if before.get(key) != now[key]:
            details.append(f"{key}: other content than before" if key == "pairs" else
                           f"{key}: {before.get(key)!r} -> {now[key]!r}")
    if details:
        raise VbenchPrefError(f"--resume with other settings than the run in {out} ({', '.join(details)}); use another --out")


def _write_train_json(out: Path, config: TrainConfig, loaded: Any, cache: Path, world: int, accumulation: int,
                      start: int) -> None:
    """The run's config as last started (a resumption may change --max-steps and the like) and provenance."""
    from vbench_pref import __version__

    record = {
        **config.as_dict(),
        "run": {
            "version": __version__, "model_label": loaded.label, "family": loaded.family.name,
            "random_weights": loaded.random_weights, "cache": str(cache), "processes": world,
            "inputs": input_identity(config.model, config.base_model, config.pairs),
            "gradient_accumulation_steps": accumulation, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "started_at_step": start,
            "notes": "alpha, gamma and importance weights are stop-gradient" if config.detach_weights else
                     "gradients flow through alpha, gamma and importance weights",
        },
    }
    atomic_write_text(out / TRAIN_JSON, json.dumps(record, indent=2, ensure_ascii=False) + "\n")


def _prepare_logs(out: Path, start: int) -> None:
    """Keep the log lines up to the step the run (re)starts from: a resumed run rewrites what came after."""
    out.mkdir(parents=True, exist_ok=True)
    for name in (METRICS, PROBE):
        file = out / name
        cut_torn_line(file)
        if not file.is_file():
            continue
        kept = [line for line in file.read_text(encoding="utf-8").splitlines(keepends=True)
                if line.strip() and json.loads(line)["step"] <= start]
        atomic_write_text(file, "".join(kept) if start else "")


def _latest_checkpoint(out: Path) -> Path | None:
    folder = out / CHECKPOINTS
    if not folder.is_dir():
        return None
    done = sorted(p for p in folder.glob("step-*") if p.is_dir() and (p / TRAINER_STATE).is_file()
                  and not p.name.endswith(".partial"))
    return done[-1] if done else None


def _save_weights(run: "_Run", folder: Path) -> None:
    """The trained weights in the formats `eval --model` loads (a peft adapter or a diffusers denoiser folder,
    safetensors): for LoRA the base stays where it is."""
    unwrapped = run.accelerator.unwrap_model(run.model)
    target = str(folder / ("adapter" if run.lora else "denoiser"))
    # LoRA never touches the embeddings; without this peft looks the base model up on the hub
    unwrapped.save_pretrained(target, **({"save_embedding_layers": False} if run.lora else {}))


def _load_weights(run: "_Run", folder: Path) -> None:
    """Put a checkpoint's weights on the model, from safetensors only."""
    unwrapped = run.accelerator.unwrap_model(run.model)
    if run.lora:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        file = folder / "adapter" / "adapter_model.safetensors"
        try:
            state = load_file(str(file))
            result = set_peft_model_state_dict(unwrapped, state)
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with the file, one line naming it
            raise CheckpointError(f"{file} cannot be loaded: {error_line(exc)}") from None
        missing = [k for k in result.missing_keys if "lora_" in k]
        if missing or result.unexpected_keys:
            raise CheckpointError(f"{file} does not fit this run's LoRA ({len(missing)} missing, "
                                  f"{len(result.unexpected_keys)} unexpected tensors)")
        return
    try:
        saved = type(unwrapped).from_pretrained(str(folder / "denoiser"), use_safetensors=True)
        unwrapped.load_state_dict(saved.state_dict())
    except Exception as exc:  # noqa: BLE001 - as above
        raise CheckpointError(f"{folder / 'denoiser'} cannot be loaded: {error_line(exc)}") from None


def _restore_checkpoint(run: "_Run", folder: Path) -> None:
    _load_weights(run, folder)
    accelerator = run.accelerator
    load_training_state(folder, run.optimizer, run.scheduler, accelerator.scaler, accelerator.process_index)


def _save_checkpoint(run: "_Run", out: Path, step: int, loaded: Any) -> Path:
    accelerator, config = run.accelerator, run.config
    folder = out / CHECKPOINTS
    target = folder / f"step-{step:06d}"
    staging = folder / f"{target.name}.partial"
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _save_weights(run, staging)
    save_training_state(staging, run.optimizer, run.scheduler, accelerator.scaler, accelerator.process_index,
                        accelerator.is_main_process)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        weights = "adapter" if config.finetune == "lora" else "denoiser"
        card = {
            "base_model": model_identity(config.model), weights: weights, "method": config.loss,
            "step": step, "random_weights": loaded.random_weights,
        }
        write_model_card(staging, card)
        atomic_write_text(staging / TRAINER_STATE, json.dumps({"step": step, "loss": config.loss, "state_format": STATE_FORMAT}) + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
        write_model_card(out, {**card, weights: f"{CHECKPOINTS}/{target.name}/{weights}"})
        _prune(folder, config.keep_checkpoints)
    accelerator.wait_for_everyone()
    return target


def _prune(folder: Path, keep: int | None) -> None:
    if not keep:
        return
    done = sorted(p for p in folder.glob("step-*") if p.is_dir() and not p.name.endswith(".partial"))
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)

