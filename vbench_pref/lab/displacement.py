"""The likelihood-displacement lab: every loss trained from the same reference, data and noise, with the
training-dynamics measurements of the PG-DPO paper (Fig. 1a, 1b, 2, 8, 9 and the per-step advantage Gamma).

Updates are plain SGD with learning rate eta, the setting of the paper's updating-policy analysis, so Eq. 35
applies as written: Gamma = -eta * grad log p(x_w) . (grad L_run - grad L_DPO) is the first-order
difference between the chosen log-likelihood after a step with the run's loss and after a step with
Diffusion-DPO, from the same parameters; the lab records it beside the realised difference of the two trial
steps. log p(x_w) here is the proxy the losses use: -e at the step's t and noise, mean over the batch.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from torch.func import functional_call

from vbench_pref.atomic import atomic_path, atomic_write_text
from vbench_pref.errors import VbenchPrefError
from vbench_pref.lab.toy import Schedule, ToyConfig, elbo, pretrain, residual, reward, sample
from vbench_pref.preflight import check_output_folder, check_range
from vbench_pref.train.losses import LOSSES, LossOptions, PairErrors, compute_loss

Params = dict[str, torch.Tensor]


@dataclass(frozen=True)
class LabConfig:
    losses: tuple[str, ...] = ("sft", "dpo", "pgdpo", "pgdpo-ars", "pgdpo-ipr")
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 300
    batch_pairs: int = 16
    lr: float = 2e-3
    beta: float = 100.0
    k1: float = 10.0
    k2: float = 10.0
    k1_sweep: tuple[float, ...] = (2.0, 20.0)  # extra PG-DPO runs (seed 0) beside k1; empty to skip
    k2_sweep: tuple[float, ...] = (5.0,)
    candidates_per_prompt: int = 48
    train_pairs_per_prompt: int = 24
    probe_pairs: int = 48
    elbo_every: int = 10
    pair_every: int = 25
    pair_snapshots: int = 32
    toy: ToyConfig = field(default_factory=ToyConfig)

    def __post_init__(self) -> None:
        unknown = [name for name in self.losses if name not in LOSSES]
        if unknown:
            raise VbenchPrefError(f"unknown loss {', '.join(unknown)} (known: {', '.join(LOSSES)})")
        if "dpo" not in self.losses:
            raise VbenchPrefError("the lab compares every loss with Diffusion-DPO: include dpo in --losses")
        for name in ("steps", "batch_pairs", "elbo_every", "pair_every"):
            if getattr(self, name) < 1:
                raise VbenchPrefError(f"--{name.replace('_', '-')} must be at least 1")
        if not self.seeds:
            raise VbenchPrefError("give at least one seed")
        for option, value in (("--lr", self.lr), ("--beta", self.beta), ("--k1", self.k1), ("--k2", self.k2),
                              *(("--k1", k) for k in self.k1_sweep), *(("--k2", k) for k in self.k2_sweep)):
            check_range(option, value, 0, low_open=True)


@dataclass(frozen=True)
class Run:
    name: str
    loss: str
    seed: int
    k1: float
    k2: float


def plan_runs(config: LabConfig) -> list[Run]:
    runs = [Run(loss, loss, seed, config.k1, config.k2) for seed in config.seeds for loss in config.losses]
    if "pgdpo" in config.losses:
        first = config.seeds[0]
        runs += [Run(f"pgdpo k1={k:g}", "pgdpo", first, k, config.k2) for k in config.k1_sweep if k != config.k1]
        runs += [Run(f"pgdpo k2={k:g}", "pgdpo", first, config.k1, k) for k in config.k2_sweep if k != config.k2]
    return runs


@dataclass
class PairSet:
    """Preference pairs of one seed: chosen/rejected points, prompts, the reward gap and its kind."""

    chosen: torch.Tensor
    rejected: torch.Tensor
    prompt: torch.Tensor
    gap: torch.Tensor
    kind: list[str]

    def __len__(self) -> int:
        return len(self.prompt)

    def take(self, index: torch.Tensor) -> "PairSet":
        return PairSet(self.chosen[index], self.rejected[index], self.prompt[index], self.gap[index],
                       [self.kind[i] for i in index.tolist()])


def make_pairs(model: torch.nn.Module, config: LabConfig, per_prompt: int, generator: torch.Generator) -> PairSet:
    """Candidates sampled from the reference, paired at random within a prompt, chosen = higher reward.
    The lowest fifth of reward gaps are near-ties, the highest fifth clear-cut, the rest ordinary."""
    toy = config.toy
    prompts = torch.arange(toy.prompts).repeat_interleave(config.candidates_per_prompt)
    points = sample(model, toy, prompts, generator)
    rewards = reward(points, prompts, toy)
    chosen, rejected, prompt, gap = [], [], [], []
    for c in range(toy.prompts):
        members = (prompts == c).nonzero().flatten()
        for _ in range(per_prompt):
            a, b = members[torch.randperm(len(members), generator=generator)[:2]]
            if rewards[a] < rewards[b]:
                a, b = b, a
            chosen.append(points[a])
            rejected.append(points[b])
            prompt.append(c)
            gap.append(float(rewards[a] - rewards[b]))
    gaps = torch.tensor(gap)
    low, high = torch.quantile(gaps, 0.2), torch.quantile(gaps, 0.8)
    kind = ["near_tie" if g <= low else "clear_cut" if g >= high else "ordinary" for g in gap]
    return PairSet(torch.stack(chosen), torch.stack(rejected), torch.tensor(prompt), gaps, kind)


def pair_errors(params: Params, reference: Params, model: torch.nn.Module, schedule: Schedule, pairs: PairSet,
                t: torch.Tensor, noise: torch.Tensor) -> PairErrors:
    """Errors of policy ``params`` and the reference on chosen and rejected, which share t and noise."""

    def residuals(weights: Params) -> tuple[torch.Tensor, torch.Tensor]:
        def call(x: torch.Tensor, tt: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
            return functional_call(model, weights, (x, tt, c))

        wrapped = _Callable(call)
        return (residual(wrapped, schedule, pairs.chosen, pairs.prompt, t, noise),
                residual(wrapped, schedule, pairs.rejected, pairs.prompt, t, noise))

    policy_w, policy_l = residuals(params)
    with torch.no_grad():
        reference_w, reference_l = residuals(reference)
    errors = PairErrors.from_residuals(policy_w, policy_l, reference_w, reference_l)
    # SDPO and DPO-C&M weight pairs by w_t = exp(-lambda_t * e), the same Gaussian-step weight the trainer uses
    precision = schedule.elbo_weights()[t].to(errors.policy_chosen.dtype)
    return replace(errors, log_importance_chosen=-precision * errors.policy_chosen,
                   log_importance_rejected=-precision * errors.policy_rejected)


class _Callable(torch.nn.Module):
    def __init__(self, function: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.function = function

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.function(*args)


def _flat(grads: tuple[torch.Tensor, ...]) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in grads])


def _step(params: Params, grads: tuple[torch.Tensor, ...], lr: float) -> Params:
    return {name: (p - lr * g).detach().requires_grad_(True) for (name, p), g in zip(params.items(), grads)}


def chosen_logp(params: Params, reference: Params, model: torch.nn.Module, schedule: Schedule, pairs: PairSet,
                t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """log p(x_w) as the losses see it: -e of the chosen samples at (t, noise), mean over the batch."""
    return -pair_errors(params, reference, model, schedule, pairs, t, noise).policy_chosen.mean()


def gamma_first_order(grad_logp: torch.Tensor, grad_run: torch.Tensor, grad_dpo: torch.Tensor, lr: float) -> float:
    """Eq. 35: -eta * grad log p(x_w) . (grad L_run - grad L_DPO)."""
    return float(-lr * torch.dot(grad_logp, grad_run - grad_dpo))


def gamma_realised(params: Params, reference: Params, model: torch.nn.Module, schedule: Schedule, pairs: PairSet,
                   t: torch.Tensor, noise: torch.Tensor, grads_run: tuple[torch.Tensor, ...],
                   grads_dpo: tuple[torch.Tensor, ...], lr: float) -> float:
    """log p(x_w) after one SGD step with the run's loss minus after one with Diffusion-DPO, from ``params``."""
    with torch.no_grad():
        after_run = chosen_logp(_step(params, grads_run, lr), reference, model, schedule, pairs, t, noise)
        after_dpo = chosen_logp(_step(params, grads_dpo, lr), reference, model, schedule, pairs, t, noise)
    return float(after_run - after_dpo)


def _loss_options(config: LabConfig, run: Run) -> LossOptions:
    return LossOptions(beta=config.beta, k1=run.k1, k2=run.k2)


def _mean(metrics: dict[str, torch.Tensor], name: str) -> float:
    return float(metrics[name].float().mean()) if name in metrics else float("nan")


def _spread(metrics: dict[str, torch.Tensor], name: str) -> dict[str, float]:
    if name not in metrics:
        return {f"{name}_{s}": float("nan") for s in ("min", "mean", "max")}
    values = metrics[name].float()
    return {f"{name}_min": float(values.min()), f"{name}_mean": float(values.mean()), f"{name}_max": float(values.max())}


@dataclass
class SeedData:
    reference: torch.nn.Module
    train: PairSet
    probe: PairSet
    probe_t: torch.Tensor
    probe_noise: torch.Tensor
    elbo_noise: tuple[torch.Tensor, torch.Tensor]


def prepare_seed(config: LabConfig, seed: int) -> SeedData:
    reference = pretrain(config.toy, seed)
    generator = torch.Generator().manual_seed(1000 + seed)
    train = make_pairs(reference, config, config.train_pairs_per_prompt, generator)
    probe_all = make_pairs(reference, config, max(1, config.probe_pairs // config.toy.prompts), generator)
    probe = probe_all.take(torch.arange(min(config.probe_pairs, len(probe_all))))
    probe_t = torch.randint(0, config.toy.timesteps, (len(probe),), generator=generator)
    probe_noise = torch.randn(probe.chosen.shape, generator=generator)
    elbo_noise = (torch.randn(probe.chosen.shape, generator=generator), torch.randn(probe.chosen.shape, generator=generator))
    return SeedData(reference, train, probe, probe_t, probe_noise, elbo_noise)


def train_run(config: LabConfig, run: Run, data: SeedData) -> tuple[list[dict], list[dict]]:
    """One loss from the seed's reference: per-step metrics and per-pair snapshots (Diffusion-DPO runs)."""
    model = copy.deepcopy(data.reference)
    schedule = Schedule.linear(config.toy)
    reference = {k: v.detach().clone() for k, v in model.named_parameters()}
    params = {k: v.detach().clone().requires_grad_(True) for k, v in model.named_parameters()}
    options = _loss_options(config, run)
    dpo_options = LossOptions(beta=config.beta)
    rows: list[dict] = [_row(run, 0) | _probe_metrics(params, reference, model, schedule, data, config, elbo_too=True)]
    snapshots: list[dict] = []
    generator = torch.Generator().manual_seed(run.seed)  # the same data and noise for every loss of a seed
    order: list[int] = []
    for step in range(1, config.steps + 1):
        while len(order) < config.batch_pairs:
            order += torch.randperm(len(data.train), generator=generator).tolist()
        index, order = torch.tensor(order[:config.batch_pairs]), order[config.batch_pairs:]
        batch = data.train.take(index)
        t = torch.randint(0, config.toy.timesteps, (len(index),), generator=generator)
        noise = torch.randn(batch.chosen.shape, generator=generator)
        if run.loss == "dpo" and (step - 1) % config.pair_every == 0:
            snapshots += _pair_snapshots(params, reference, model, schedule, data, config, run, step - 1)

        errors = pair_errors(params, reference, model, schedule, batch, t, noise)
        output = compute_loss(run.loss, errors, options)
        loss = output.loss.mean()
        dpo_loss = compute_loss("dpo", errors, dpo_options).loss.mean()
        grads_run = torch.autograd.grad(loss, list(params.values()), retain_graph=True, allow_unused=True)
        grads_run = tuple(torch.zeros_like(p) if g is None else g for p, g in zip(params.values(), grads_run))
        grads_dpo = torch.autograd.grad(dpo_loss, list(params.values()), retain_graph=True)
        row = _row(run, step) | {
            "train_loss": float(loss.detach()), "margin": _mean(output.metrics, "rewards/margins"),
            "accuracy": _mean(output.metrics, "rewards/accuracies"),
            "grad_norm": float(_flat(grads_run).norm()), "dpo_grad_norm": float(_flat(grads_dpo).norm()),
            **_spread(output.metrics, "alpha"), **_spread(output.metrics, "gamma"),
        }
        if run.loss != "dpo":
            grad_logp = torch.autograd.grad(-errors.policy_chosen.mean(), list(params.values()))
            row["gamma_first_order"] = gamma_first_order(_flat(grad_logp), _flat(grads_run), _flat(grads_dpo), config.lr)
            row["gamma_realised"] = gamma_realised(params, reference, model, schedule, batch, t, noise, grads_run,
                                                   grads_dpo, config.lr)
        params = _step(params, grads_run, config.lr)
        measure_elbo = step % config.elbo_every == 0 or step == config.steps
        row |= _probe_metrics(params, reference, model, schedule, data, config, elbo_too=measure_elbo)
        rows.append(row)
    if run.loss == "dpo":
        snapshots += _pair_snapshots(params, reference, model, schedule, data, config, run, config.steps)
    return rows, snapshots


def _row(run: Run, step: int) -> dict:
    return {"run": run.name, "loss": run.loss, "k1": run.k1, "k2": run.k2, "seed": run.seed, "step": step}


def _probe_metrics(params: Params, reference: Params, model: torch.nn.Module, schedule: Schedule, data: SeedData,
                   config: LabConfig, elbo_too: bool) -> dict:
    with torch.no_grad():
        errors = pair_errors(params, reference, model, schedule, data.probe, data.probe_t, data.probe_noise)
        row = {"proxy_chosen": float(-errors.policy_chosen.mean()), "proxy_rejected": float(-errors.policy_rejected.mean())}
        if elbo_too:
            policy = _Callable(lambda x, t, c: functional_call(model, params, (x, t, c)))
            row["elbo_chosen"] = float(elbo(policy, schedule, data.probe.chosen, data.probe.prompt, data.elbo_noise[0]).mean())
            row["elbo_rejected"] = float(elbo(policy, schedule, data.probe.rejected, data.probe.prompt, data.elbo_noise[1]).mean())
    return row


def _pair_snapshots(params: Params, reference: Params, model: torch.nn.Module, schedule: Schedule, data: SeedData,
                    config: LabConfig, run: Run, step: int) -> list[dict]:
    """Per probe pair: its margin, its own DPO gradient norm (Fig. 1a) and the similarity factor (Fig. 1b),
    the first-order change of log p(x_w) minus that of log p(x_l) after one SGD step on this pair alone."""
    snapshots = []
    dpo_options = LossOptions(beta=config.beta)
    values = list(params.values())
    for i in range(min(config.pair_snapshots, len(data.probe))):
        one = data.probe.take(torch.tensor([i]))
        t, noise = data.probe_t[i:i + 1], data.probe_noise[i:i + 1]
        errors = pair_errors(params, reference, model, schedule, one, t, noise)
        output = compute_loss("dpo", errors, dpo_options)
        grad_loss = _flat(torch.autograd.grad(output.loss.sum(), values, retain_graph=True))
        grad_w = _flat(torch.autograd.grad(-errors.policy_chosen.sum(), values, retain_graph=True))
        grad_l = _flat(torch.autograd.grad(-errors.policy_rejected.sum(), values))
        similarity = -config.lr * float(torch.dot(grad_w - grad_l, grad_loss))
        snapshots.append({
            "run": run.name, "loss": run.loss, "seed": run.seed, "step": step, "pair": i, "kind": one.kind[0],
            "margin": float(output.metrics["rewards/margins"][0]), "dpo_grad_norm": float(grad_loss.norm()),
            "similarity": similarity, "gradient_distance": float((grad_w - grad_l).pow(2).sum()),
        })
    return snapshots


COMMITTED_REPORT = "results/lab/displacement"  # made with the LabConfig defaults


def comparability_note(config: LabConfig) -> str | None:
    """Why this run's verdicts cannot be set beside the committed report's (fewer steps or seeds), or None."""
    committed = LabConfig()
    if config.steps >= committed.steps and len(config.seeds) >= len(committed.seeds):
        return None
    return (
        f"this run ({config.steps} steps, {len(config.seeds)} seed(s)) is shorter than the committed one in "
        f"{COMMITTED_REPORT} ({committed.steps} steps, {len(committed.seeds)} seeds): its verdicts are not "
        "comparable with the committed run's"
    )


@dataclass
class LabResult:
    out: Path
    report: Path
    metrics: pd.DataFrame
    pairs: pd.DataFrame
    seconds: float


def run_lab(config: LabConfig, out: Path, command: list[str] | None = None,
            on_run: Callable[[Run, int, int], None] | None = None) -> LabResult:
    """Every planned run, then metrics.csv, pairs.csv, config.json, the figures and report.md in ``out``."""
    from vbench_pref.lab.report import write_report

    torch.set_num_threads(min(torch.get_num_threads(), 2))  # small matrices: more threads only add overhead
    started = time.perf_counter()
    check_output_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = plan_runs(config)
    rows: list[dict] = []
    snapshots: list[dict] = []
    seeds: dict[int, SeedData] = {}
    for number, run in enumerate(runs, start=1):
        if on_run:
            on_run(run, number, len(runs))
        if run.seed not in seeds:
            seeds[run.seed] = prepare_seed(config, run.seed)
        run_rows, run_snapshots = train_run(config, run, seeds[run.seed])
        rows += run_rows
        snapshots += run_snapshots
    metrics, pairs = pd.DataFrame(rows), pd.DataFrame(snapshots)
    seconds = time.perf_counter() - started
    for name, table in (("metrics.csv", metrics), ("pairs.csv", pairs)):
        with atomic_path(out / name) as tmp:
            table.to_csv(tmp, index=False, float_format="%.9g")
    record = {**_config_record(config), "seconds": round(seconds, 1), "command": " ".join(command or []),
              "not_comparable": comparability_note(config)}
    atomic_write_text(out / "config.json", json.dumps(record, indent=2) + "\n")
    report = write_report(out, metrics, pairs, record)
    return LabResult(out, report, metrics, pairs, seconds)


def _config_record(config: LabConfig) -> dict:
    record = asdict(config)
    record["losses"], record["seeds"] = list(config.losses), list(config.seeds)
    return record
