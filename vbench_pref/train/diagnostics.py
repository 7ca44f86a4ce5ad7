"""What a training run logs: per-step preference diagnostics and the probe-set likelihood curve.

Per step (``metrics.jsonl``, TRL's names): the loss, rewards/chosen, rewards/rejected, rewards/margins,
rewards/accuracies (strict), logps/chosen and logps/rejected (the log-likelihood proxy -e at the sampled
t), alpha and gamma (PG-DPO) and importance weights (SDPO, DPO-C&M) as min/mean/max, the gradient norm and
the learning rate. Every N steps (``probe.jsonl``): the same proxies on a fixed probe set with fixed t and
noise, and their change since step 0 -- the chosen curve falling is likelihood displacement (PG-DPO Fig. 2).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from vbench_pref.train.losses import PairErrors, preference_metrics

SPREAD = ("alpha", "gamma", "importance_weight", "coefficient", "pair_weight", "penalty")


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def step_row(step: int, n_pairs: int, effective_batch: int, metrics: dict[str, torch.Tensor], grad_norm: float,
             lr: float, skipped: bool) -> dict[str, Any]:
    """One metrics.jsonl line from the per-sample metrics of every micro-step and process of a step."""
    row: dict[str, Any] = {"step": step, "epoch": ((step - 1) * effective_batch) // n_pairs}
    for name, values in metrics.items():
        values = values.float()
        if name in SPREAD:
            row[f"{name}/min"] = _number(values.min().item())
            row[f"{name}/mean"] = _number(values.mean().item())
            row[f"{name}/max"] = _number(values.max().item())
        else:
            row[name] = _number(values.mean().item())
    row.update({"grad_norm": _number(grad_norm), "lr": lr, "skipped": skipped})
    return row


def probe_row(step: int, errors: PairErrors, beta: float, baseline: dict[str, float] | None) -> dict[str, Any]:
    """The probe set's log-likelihood proxies (-e, means over the probe pairs) and their change since step 0."""
    metrics = preference_metrics(errors, beta)
    row: dict[str, Any] = {"step": step}
    for name in ("logps/chosen", "logps/rejected", "rewards/chosen", "rewards/rejected", "rewards/margins",
                 "rewards/accuracies"):
        row[name] = _number(metrics[name].float().mean().item())
    start = baseline or row
    for name in ("logps/chosen", "logps/rejected"):
        now, then = row[name], start[name]
        row[f"{name}_delta"] = None if now is None or then is None else now - then
    return row


def probe_baseline(file: Path) -> dict[str, float] | None:
    """The step-0 probe line of a run (what later probes are compared with)."""
    if not file.is_file():
        return None
    for line in file.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if row.get("step") == 0:
                return row
    return None


def jsonl_line(row: dict[str, Any]) -> str:
    return json.dumps(row, allow_nan=False) + "\n"


def tensorboard_writer(out: Path) -> Any:
    """A TensorBoard writer when tensorboard is installed; None otherwise (metrics.jsonl is the record)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(out / "tensorboard"))


def write_tensorboard(writer: Any, row: dict[str, Any]) -> None:
    for name, value in row.items():
        if name not in ("step", "skipped") and isinstance(value, (int, float)) and not isinstance(value, bool):
            writer.add_scalar(name, value, row["step"])
