"""The preference-loss family for diffusion models, as pure tensor functions.

Every loss takes the per-sample errors of the policy and of the reference model on the chosen (w) and
rejected (l) video of each pair -- e = mean over every non-batch axis of (prediction - target)^2, chosen and
rejected noised with the same t and noise -- and returns a per-sample loss with per-sample diagnostics.
Nothing here touches a model or an optimizer.

Notation (REFERENCE.md §2): Dw = e_theta(w) - e_ref(w), Dl = e_theta(l) - e_ref(l); implicit rewards
r = -(beta/2) * D (Diffusion-DPO's logit, the constant T*omega(lambda_t) folded into beta); the log-ratio
proxy of a sample is -D, so h = -(Dw - Dl) is the margin in log-ratio units (IPO, SLiC).

Choices where the sources disagree or are silent (each an option; defaults stated):
- PG-DPO (Eq. 7-9) is computed per sample on the reduced errors; the appendix listing's elementwise alpha
  and gamma broadcast wrongly against the batch axis.
- PG-DPO's IPR: ``ipr="reward"`` (default, the paper's text: maximise the chosen implicit log-ratio, i.e.
  minimise Dw) or ``ipr="anchor"`` (the listing: mean((pred_theta(w) - pred_ref(w))^2)).
- alpha, gamma and importance weights are coefficients by default (``detach_weights=True``): the listing
  lets gradients flow through them, which is available with ``detach_weights=False``.
- The alpha/gamma denominator Dl + eps is moved away from zero on Dl's side (Dl - eps when Dl < 0), so it
  never vanishes; for Dl >= 0 it is exactly the paper's Dl + eps.
- SLiC (PG-DPO appendix Eq. 32) compares the policy's own errors (``slic_margin="policy"``, default); TRL's
  hinge loss uses the reference-adjusted margin h (``"reference"``). The hinge acts on the DPO logit scale
  (beta/2) so ``slic_delta`` means what a DPO logit of that size means.
- DPO-C&M and SDPO are published as an abstract only: both weight Diffusion-DPO per pair by the
  importance weight w_t = p_theta(x_{t-1}|x_t) / q(x_{t-1}|x_t, x0) of the sampled timestep (from the
  model's training spec), stop-gradient. DPO-C&M masks pairs with w_t below ``cm_mask_below`` and clips
  the rest at ``cm_clip``; SDPO clips w_t into [``sdpo_clip_min``, ``sdpo_clip_max``].
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Callable

import torch
import torch.nn.functional as F

# in a torch-free module, so the CLI builds its options without importing torch
from vbench_pref.train.loss_names import IPR_MODES, SLIC_MARGINS

Tensor = torch.Tensor

VIDEODPO_REFERENCE_PROBABILITY = 0.72  # VideoDPO's pair weight (0.72 / p) ** a (lvdm data loader)


@dataclass(frozen=True)
class PairErrors:
    """Per-sample errors (B,) of policy and reference on the chosen and rejected video of each pair."""

    policy_chosen: Tensor
    policy_rejected: Tensor
    reference_chosen: Tensor
    reference_rejected: Tensor
    chosen_anchor: Tensor | None = None  # mean((pred_theta(w) - pred_ref(w))^2): IPR "anchor"
    log_importance_chosen: Tensor | None = None  # log w_t of each sample (SDPO, DPO-C&M)
    log_importance_rejected: Tensor | None = None
    preference_probability: Tensor | None = None  # VideoDPO's p per pair; None means 1

    @classmethod
    def from_residuals(
        cls,
        policy_chosen: Tensor,
        policy_rejected: Tensor,
        reference_chosen: Tensor,
        reference_rejected: Tensor,
        *,
        log_importance_chosen: Tensor | None = None,
        log_importance_rejected: Tensor | None = None,
        preference_probability: Tensor | None = None,
    ) -> "PairErrors":
        """Errors from residuals (prediction - target) of any shape (B, ...), e.g. (B, C, F, H, W) videos."""
        return cls(
            policy_chosen=per_sample_mse(policy_chosen),
            policy_rejected=per_sample_mse(policy_rejected),
            reference_chosen=per_sample_mse(reference_chosen),
            reference_rejected=per_sample_mse(reference_rejected),
            # the target is common to both residuals, so their difference is pred_theta - pred_ref
            chosen_anchor=per_sample_mse(policy_chosen - reference_chosen),
            log_importance_chosen=log_importance_chosen,
            log_importance_rejected=log_importance_rejected,
            preference_probability=preference_probability,
        )

    @property
    def chosen_delta(self) -> Tensor:
        return self.policy_chosen - self.reference_chosen

    @property
    def rejected_delta(self) -> Tensor:
        return self.policy_rejected - self.reference_rejected


@dataclass(frozen=True)
class LossOptions:
    """Hyper-parameters of the loss family (defaults: the PG-DPO paper's, where it gives one)."""

    beta: float = 100.0
    k1: float = 10.0
    k2: float = 10.0
    eps: float = 1e-6
    ipr: str = "reward"
    detach_weights: bool = True
    videodpo_exponent: float = 0.0
    slic_delta: float = 1.0
    slic_sft_weight: float = 0.0
    slic_margin: str = "policy"
    dpop_lambda: float = 50.0
    cm_mask_below: float = 0.1
    cm_clip: float = 1.0
    sdpo_clip_min: float = 0.0
    sdpo_clip_max: float = 1.0

    def __post_init__(self) -> None:
        if self.beta <= 0:
            raise ValueError(f"beta must be positive, got {self.beta}")
        if self.eps <= 0:
            raise ValueError(f"eps must be positive, got {self.eps}")
        if self.ipr not in IPR_MODES:
            raise ValueError(f"ipr must be one of {', '.join(IPR_MODES)}, got {self.ipr!r}")
        if self.slic_margin not in SLIC_MARGINS:
            raise ValueError(f"slic_margin must be one of {', '.join(SLIC_MARGINS)}, got {self.slic_margin!r}")
        if self.cm_clip <= 0:
            raise ValueError(f"cm_clip must be positive, got {self.cm_clip}")
        if not 0 <= self.sdpo_clip_min <= self.sdpo_clip_max:
            raise ValueError(
                f"need 0 <= sdpo_clip_min <= sdpo_clip_max, got {self.sdpo_clip_min} and {self.sdpo_clip_max}"
            )

    def with_overrides(self, **overrides: object) -> "LossOptions":
        known = {f.name for f in fields(self)}
        return replace(self, **{k: v for k, v in overrides.items() if k in known and v is not None})


@dataclass(frozen=True)
class LossOutput:
    loss: Tensor  # (B,)
    metrics: dict[str, Tensor]  # each (B,)


LossFunction = Callable[[PairErrors, LossOptions], LossOutput]


def per_sample_mse(residual: Tensor) -> Tensor:
    """Mean of squares over every non-batch axis: (B, ...) -> (B,)."""
    return residual.pow(2).flatten(1).mean(dim=1)


def implicit_rewards(errors: PairErrors, beta: float) -> tuple[Tensor, Tensor]:
    """Diffusion-DPO's implicit rewards r = -(beta/2) * D of chosen and rejected."""
    return -0.5 * beta * errors.chosen_delta, -0.5 * beta * errors.rejected_delta


def preference_metrics(errors: PairErrors, beta: float) -> dict[str, Tensor]:
    """TRL-named diagnostics, detached: rewards, margins, strict accuracies, log-likelihood proxies -e."""
    with torch.no_grad():
        chosen, rejected = implicit_rewards(errors, beta)
        return {
            "rewards/chosen": chosen,
            "rewards/rejected": rejected,
            "rewards/margins": chosen - rejected,
            "rewards/accuracies": (chosen > rejected).to(chosen.dtype),
            "logps/chosen": -errors.policy_chosen.detach(),
            "logps/rejected": -errors.policy_rejected.detach(),
        }


def _dpo_per_sample(errors: PairErrors, beta: float, rejected_scale: Tensor | float = 1.0) -> Tensor:
    logit = -0.5 * beta * (errors.chosen_delta - rejected_scale * errors.rejected_delta)
    return -F.logsigmoid(logit)


def _output(errors: PairErrors, options: LossOptions, loss: Tensor, **extra: Tensor) -> LossOutput:
    metrics = preference_metrics(errors, options.beta)
    metrics.update({name: value.detach() for name, value in extra.items()})
    return LossOutput(loss, metrics)


def sft(errors: PairErrors, options: LossOptions) -> LossOutput:
    """Supervised fine-tuning on the chosen video only."""
    return _output(errors, options, errors.policy_chosen)


def dpo(errors: PairErrors, options: LossOptions) -> LossOutput:
    """Diffusion-DPO: -log s(-(beta/2)(Dw - Dl))."""
    return _output(errors, options, _dpo_per_sample(errors, options.beta))


def videodpo(errors: PairErrors, options: LossOptions) -> LossOutput:
    """VideoDPO: Diffusion-DPO weighted per pair by (0.72 / p) ** a (a = 0 in its shipped config)."""
    p = errors.preference_probability
    if p is None:
        p = torch.ones_like(errors.policy_chosen)
    weight = (VIDEODPO_REFERENCE_PROBABILITY / p.to(errors.policy_chosen.dtype)) ** options.videodpo_exponent
    return _output(errors, options, weight * _dpo_per_sample(errors, options.beta), pair_weight=weight)


def pgdpo_weights(errors: PairErrors, options: LossOptions) -> tuple[Tensor, Tensor]:
    """ARS alpha = s(K1 x) and IPR gamma = s(-K2 x), x = (Dw - Dl) / (Dl +- eps) per sample (Eq. 7-8)."""
    chosen, rejected = errors.chosen_delta, errors.rejected_delta
    if options.detach_weights:
        chosen, rejected = chosen.detach(), rejected.detach()
    denominator = torch.where(rejected >= 0, rejected + options.eps, rejected - options.eps)
    ratio = (chosen - rejected) / denominator
    return torch.sigmoid(options.k1 * ratio), torch.sigmoid(-options.k2 * ratio)


def ipr_term(errors: PairErrors, options: LossOptions) -> Tensor:
    """Implicit Preference Regularization on the chosen sample (see the module notes for the two forms)."""
    if options.ipr == "anchor":
        if errors.chosen_anchor is None:
            raise ValueError('ipr="anchor" needs chosen_anchor (build PairErrors with from_residuals)')
        return errors.chosen_anchor
    return errors.chosen_delta


def pgdpo_objective(errors: PairErrors, alpha: Tensor, gamma: Tensor, options: LossOptions) -> Tensor:
    """Eq. 9 per sample for given weights: gamma * DPO(rejected scaled by alpha) + (1 - gamma) * IPR."""
    return gamma * _dpo_per_sample(errors, options.beta, alpha) + (1 - gamma) * ipr_term(errors, options)


def _pgdpo(errors: PairErrors, options: LossOptions, use_ars: bool, use_ipr: bool) -> LossOutput:
    alpha, gamma = pgdpo_weights(errors, options)
    if not use_ars:
        alpha = torch.ones_like(alpha)
    if not use_ipr:
        gamma = torch.ones_like(gamma)
    loss = pgdpo_objective(errors, alpha, gamma, options)
    return _output(errors, options, loss, alpha=alpha, gamma=gamma)


def pgdpo(errors: PairErrors, options: LossOptions) -> LossOutput:
    """PG-DPO: Adaptive Rejection Scaling + Implicit Preference Regularization."""
    return _pgdpo(errors, options, use_ars=True, use_ipr=True)


def pgdpo_ars(errors: PairErrors, options: LossOptions) -> LossOutput:
    """PG-DPO ablation with ARS only (gamma = 1)."""
    return _pgdpo(errors, options, use_ars=True, use_ipr=False)


def pgdpo_ipr(errors: PairErrors, options: LossOptions) -> LossOutput:
    """PG-DPO ablation with IPR only (alpha = 1)."""
    return _pgdpo(errors, options, use_ars=False, use_ipr=True)


def ipo(errors: PairErrors, options: LossOptions) -> LossOutput:
    """IPO: (h - 1/(2 beta))^2 with h = -(Dw - Dl) in log-ratio units."""
    h = -(errors.chosen_delta - errors.rejected_delta)
    return _output(errors, options, (h - 1.0 / (2.0 * options.beta)) ** 2)


def slic(errors: PairErrors, options: LossOptions) -> LossOutput:
    """SLiC hinge relu(delta - (beta/2) m) plus an optional SFT term on the chosen video."""
    if options.slic_margin == "policy":
        margin = -(errors.policy_chosen - errors.policy_rejected)
    else:
        margin = -(errors.chosen_delta - errors.rejected_delta)
    loss = F.relu(options.slic_delta - 0.5 * options.beta * margin)
    if options.slic_sft_weight:
        loss = loss + options.slic_sft_weight * errors.policy_chosen
    return _output(errors, options, loss)


def dpo_positive(errors: PairErrors, options: LossOptions) -> LossOutput:
    """DPO-Positive (Smaug): the penalty lambda * max(0, Dw) inside the sigmoid."""
    penalty = options.dpop_lambda * F.relu(errors.chosen_delta)
    logit = -0.5 * options.beta * ((errors.chosen_delta - errors.rejected_delta) + penalty)
    return _output(errors, options, -F.logsigmoid(logit), penalty=penalty)


def importance_weight(errors: PairErrors, options: LossOptions) -> Tensor:
    """w_t of each pair: the geometric mean of its two samples' importance weights."""
    if errors.log_importance_chosen is None or errors.log_importance_rejected is None:
        raise ValueError("this loss needs log_importance_chosen and log_importance_rejected")
    weight = torch.exp(0.5 * (errors.log_importance_chosen + errors.log_importance_rejected))
    return weight.detach() if options.detach_weights else weight


def dpo_clip_mask(errors: PairErrors, options: LossOptions) -> LossOutput:
    """DPO-C&M: Diffusion-DPO on pairs whose w_t >= cm_mask_below, weighted by min(w_t, cm_clip)."""
    weight = importance_weight(errors, options)
    coefficient = (weight >= options.cm_mask_below).to(weight.dtype) * torch.clamp(weight, max=options.cm_clip)
    loss = coefficient * _dpo_per_sample(errors, options.beta)
    return _output(errors, options, loss, importance_weight=weight, coefficient=coefficient)


def sdpo(errors: PairErrors, options: LossOptions) -> LossOutput:
    """SDPO: Diffusion-DPO weighted by the clipped importance weight w_t."""
    weight = importance_weight(errors, options)
    coefficient = torch.clamp(weight, min=options.sdpo_clip_min, max=options.sdpo_clip_max)
    loss = coefficient * _dpo_per_sample(errors, options.beta)
    return _output(errors, options, loss, importance_weight=weight, coefficient=coefficient)


LOSSES: dict[str, LossFunction] = {
    "sft": sft,
    "dpo": dpo,
    "videodpo": videodpo,
    "pgdpo": pgdpo,
    "pgdpo-ars": pgdpo_ars,
    "pgdpo-ipr": pgdpo_ipr,
    "ipo": ipo,
    "slic": slic,
    "dpop": dpo_positive,
    "dpo-cm": dpo_clip_mask,
    "sdpo": sdpo,
}

NEEDS_IMPORTANCE = frozenset({"dpo-cm", "sdpo"})


def concat_errors(parts: list[PairErrors]) -> PairErrors:
    """Errors of several batches as one (fields absent in the first part stay absent)."""
    values = {}
    for f in fields(PairErrors):
        first = getattr(parts[0], f.name)
        values[f.name] = None if first is None else torch.cat([getattr(p, f.name) for p in parts])
    return PairErrors(**values)


def compute_loss(name: str, errors: PairErrors, options: LossOptions) -> LossOutput:
    try:
        function = LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r} (known: {', '.join(LOSSES)})") from None
    return function(errors, options)
