"""One dataclass configures a training run; the CLI options and ``--config FILE`` (YAML or TOML) mirror it.

Precedence: the dataclass defaults (the PG-DPO paper's hyper-parameters), then the config file, then the
options given on the command line. Every field carries its help text, which the CLI shows.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args, get_origin, get_type_hints

from vbench_pref.errors import VbenchPrefError
from vbench_pref.preflight import SEED_MAX, check_range
from vbench_pref.train.loss_names import IPR_MODES, LOSS_NAMES as LOSSES, SLIC_MARGINS

if TYPE_CHECKING:
    from vbench_pref.train.losses import LossOptions


_RANGE_KEYS = ("low", "high", "low_open", "high_open")


def _opt(default: Any, help: str, **extra: Any) -> Any:
    """A field with its help text and, optionally, ``choices`` or a range (``low``/``high``, inclusive unless
    ``low_open``/``high_open``) that ``__post_init__`` enforces: one place validates every option."""
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
class TrainConfig:
    # what to train, on what, where
    model: str = _opt("", "Model to fine-tune: builtin:NAME, a diffusers pipeline folder, a hub id or a checkpoint.")
    pairs: str = _opt("", "Preference pairs (pairs.jsonl or pairs.parquet from `vbench-pref pairs`, or your own).")
    out: str = _opt("", "Output folder: checkpoints, metrics.jsonl, probe.jsonl; loads with `eval --model`.")
    loss: str = _opt("pgdpo", f"Loss: {', '.join(LOSSES)}.")
    base_model: str | None = _opt(None, "Base model of an adapter given as --model, when its config names none.")
    cache: str | None = _opt(None, "Latent cache folder (default: PAIRS_DIR/cache/<model>-<key>).")
    num_frames: int | None = _opt(None, "Train on the first N frames of each video (default: all).", low=1)
    height: int | None = _opt(None, "Resize videos to this height before encoding (default: as they are).", low=1)
    width: int | None = _opt(None, "Resize videos to this width before encoding (default: as they are).", low=1)
    # loss hyper-parameters (the paper: beta 100, K1 = K2 = 10)
    beta: float = _opt(100.0, "KL strength beta of the DPO-family losses.", low=0, low_open=True)
    k1: float = _opt(10.0, "PG-DPO ARS sharpness K1 (Eq. 7).", low=0, low_open=True)
    k2: float = _opt(10.0, "PG-DPO IPR sharpness K2 (Eq. 8).", low=0, low_open=True)
    eps: float = _opt(1e-6, "PG-DPO denominator epsilon.", low=0, low_open=True)
    ipr: str = _opt("reward", "PG-DPO IPR form: reward (the paper's text) or anchor (its listing).", choices=IPR_MODES)
    detach_weights: bool = _opt(True, "Stop gradients through alpha, gamma and importance weights.")
    videodpo_exponent: float = _opt(0.0, "VideoDPO pair-weight exponent a in (0.72/p)^a (0 in its shipped config).",
                                    low=0)
    slic_delta: float = _opt(1.0, "SLiC hinge margin delta (on the DPO logit scale).", low=0)
    slic_sft_weight: float = _opt(0.0, "SLiC weight of the SFT term on the chosen video.", low=0)
    slic_margin: str = _opt("policy", "SLiC margin: policy (PG-DPO Eq. 32) or reference (TRL hinge).", choices=SLIC_MARGINS)
    dpop_lambda: float = _opt(50.0, "DPO-Positive penalty weight lambda.", low=0)
    cm_mask_below: float = _opt(0.1, "DPO-C&M: pairs whose importance weight is below this are masked.", low=0)
    cm_clip: float = _opt(1.0, "DPO-C&M: importance weights are clipped at this value.", low=0, low_open=True)
    sdpo_clip_min: float = _opt(0.0, "SDPO: lower clip of the importance weight.", low=0)
    sdpo_clip_max: float = _opt(1.0, "SDPO: upper clip of the importance weight.", low=0)
    timestep_sampling: str | None = _opt(None, "Flow-matching timestep sampling: logit_normal (default) or uniform.")
    # optimisation (the paper: lr 1e-6, batch 16, 3000 steps)
    learning_rate: float = _opt(1e-6, "AdamW learning rate.", low=0, low_open=True)
    lr_scheduler: str = _opt("constant", "Learning-rate schedule: constant, linear, cosine, constant_with_warmup.")
    lr_warmup_steps: int = _opt(0, "Warm-up steps of the schedule.", low=0)
    weight_decay: float = _opt(0.0, "AdamW weight decay.", low=0)
    adam_beta1: float = _opt(0.9, "AdamW beta1.", low=0, high=1, high_open=True)
    adam_beta2: float = _opt(0.999, "AdamW beta2.", low=0, high=1, high_open=True)
    adam_epsilon: float = _opt(1e-8, "AdamW epsilon.", low=0)
    max_grad_norm: float = _opt(1.0, "Clip the gradient norm to this (0: no clipping).", low=0)
    batch_size: int = _opt(1, "Pairs per device per micro-step.", low=1)
    effective_batch_size: int = _opt(16, "Pairs per optimizer step over all devices; sets gradient accumulation.",
                                     low=1)
    max_steps: int = _opt(3000, "Optimizer steps to train for.", low=1)
    seed: int = _opt(0, "Seed of the data order, timesteps, noise and LoRA initialisation.", low=0, high=SEED_MAX)
    mixed_precision: str = _opt("auto", "no, fp16, bf16 or auto (bf16 on a GPU, no on the CPU).",
                                choices=("auto", "no", "fp16", "bf16"))
    gradient_checkpointing: bool = _opt(False, "Recompute activations in the backward pass to save memory.")
    # what is trained
    finetune: str = _opt("lora", "lora (reference = the same model with adapters disabled) or full (frozen copy).",
                         choices=("lora", "full"))
    lora_rank: int = _opt(64, "LoRA rank.", low=1)
    lora_alpha: float | None = _opt(None, "LoRA alpha (default: the rank).", low=0, low_open=True)
    lora_dropout: float = _opt(0.0, "LoRA dropout.", low=0, high=1, high_open=True)
    lora_target_modules: str = _opt("to_q,to_k,to_v,to_out.0", "Comma-separated module names LoRA adapts.")
    # bookkeeping
    checkpoint_every: int = _opt(500, "Save a resumable checkpoint every N steps (and at the end).", low=1)
    keep_checkpoints: int | None = _opt(None, "Keep only the newest N checkpoints (default: all).", low=1)
    probe_every: int = _opt(50, "Measure the probe-set log-likelihood proxies every N steps.", low=1)
    probe_pairs: int = _opt(8, "Pairs in the fixed probe set.", low=1)
    max_bad_steps: int = _opt(5, "Stop after this many non-finite steps in a row.", low=1)
    device: str = _opt("auto", "cuda, cpu or auto (under accelerate launch: each process's own GPU).",
                       choices=("auto", "cpu", "cuda"))

    def __post_init__(self) -> None:
        for name in ("model", "pairs", "out"):
            if not getattr(self, name):
                raise VbenchPrefError(f"--{name.replace('_', '-')} is required")
        if self.loss not in LOSSES:
            raise VbenchPrefError(f"--loss must be one of {', '.join(LOSSES)}; got {self.loss!r}")
        for f in fields(self):  # every field's choices and range, declared beside it
            value = getattr(self, f.name)
            choices = f.metadata.get("choices")
            if choices and value is not None and value not in choices:
                raise VbenchPrefError(f"--{_flag(f.name)} must be one of {', '.join(choices)}; got {value!r}")
            bounds = {k: f.metadata[k] for k in _RANGE_KEYS if k in f.metadata}
            if bounds:
                check_range(f"--{_flag(f.name)}", value, **bounds)
        if self.sdpo_clip_min > self.sdpo_clip_max:
            raise VbenchPrefError(
                f"--sdpo-clip-min {self.sdpo_clip_min} is above --sdpo-clip-max {self.sdpo_clip_max}"
            )
        try:
            self.loss_options()
        except ValueError as exc:
            raise VbenchPrefError(str(exc)) from None

    def loss_options(self) -> LossOptions:
        from vbench_pref.train.losses import LossOptions  # torch: not needed to build the CLI

        names = {f.name for f in fields(LossOptions)}
        return LossOptions(**{k: v for k, v in dataclasses.asdict(self).items() if k in names})

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _flag(name: str) -> str:
    return name.replace("_", "-")


def field_types() -> dict[str, Any]:
    """Each field's type with ``X | None`` reduced to X (what the CLI option parses)."""
    hints = get_type_hints(TrainConfig)
    reduced = {}
    for name, hint in hints.items():
        args = [a for a in get_args(hint) if a is not type(None)]
        reduced[name] = args[0] if get_origin(hint) is not None and args else hint
    return reduced


def read_config_file(path: Path) -> dict[str, Any]:
    """A YAML or TOML file of TrainConfig fields (dashes or underscores), validated by name."""
    path = Path(path)
    if not path.is_file():
        raise VbenchPrefError(f"config file {path} not found")
    if path.suffix not in (".toml", ".yaml", ".yml", ".json"):
        raise VbenchPrefError(f"config file {path}: use .yaml, .yml, .toml or .json")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text) or {}
    except Exception as exc:  # TOML, JSON and YAML parse errors have no common base (yaml.YAMLError is yaml's own)
        raise VbenchPrefError(f"config file {path} does not parse: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise VbenchPrefError(f"config file {path} must hold a mapping of option names to values")
    known = {f.name for f in fields(TrainConfig)}
    values = {}
    types = field_types()
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in known:
            raise VbenchPrefError(f"config file {path}: unknown option {key!r}")
        if value is not None and types[name] is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if value is not None and not isinstance(value, types[name]):
            raise VbenchPrefError(f"config file {path}: {key} must be {types[name].__name__}, got {value!r}")
        values[name] = value
    return values


def build_config(file: Path | None, given: dict[str, Any]) -> TrainConfig:
    """Defaults < config file < options given on the command line (``given`` holds only those)."""
    values = read_config_file(file) if file else {}
    values.update({k: v for k, v in given.items() if v is not None})
    return TrainConfig(**values)
