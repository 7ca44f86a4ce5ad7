"""Preference losses of the trainer (``vbench_pref.train.losses``) against hand-computed references.

Every expected value here is computed independently of ``losses.py``: plain ``math`` on Python floats
(``reference_loss``), literal numbers worked out by hand, or explicit per-sample loops. Notation as in the
spec: Dw = e_theta(w) - e_ref(w), Dl = e_theta(l) - e_ref(l), r = -(beta/2) * D, and
-logsig(-x) = softplus(x).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import pytest
import torch

from vbench_pref.train.losses import LOSSES, LossOptions, LossOutput, PairErrors, pgdpo_objective

ALL_LOSSES = ("sft", "dpo", "videodpo", "pgdpo", "pgdpo-ars", "pgdpo-ipr", "ipo", "slic", "dpop", "dpo-cm", "sdpo")
PGDPO_FAMILY = ("pgdpo", "pgdpo-ars", "pgdpo-ipr")
IMPORTANCE_LOSSES = ("dpo-cm", "sdpo")
REWARD_METRICS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
                  "logps/chosen", "logps/rejected")
EXTRA_METRICS = {"videodpo": ("pair_weight",), "pgdpo": ("alpha", "gamma"),
                 "dpo-cm": ("importance_weight",), "sdpo": ("importance_weight",)}


# --------------------------------------------------------------------------------------------------------
# The batch: B = 3 pairs, all values dyadic so that Dw, Dl and their differences are exact in float.
#   pair 0: Dw = -1/32 < Dl = +1/32   (policy moved toward the chosen video: accuracy 1)
#   pair 1: Dw = +1/16 > Dl = -1/32   (wrong way: accuracy 0; Dl < 0 exercises the negative denominator)
#   pair 2: Dw = Dl = +1/16           (tie: margin 0, accuracy 0, alpha = gamma = 1/2)
# Importance weights w = exp((log_c + log_r) / 2) = [0.5, 0.05, 2.0]; pair probabilities p = [0.72, 0.9, 0.5].
# --------------------------------------------------------------------------------------------------------
POLICY_CHOSEN = [0.25, 0.5, 0.4375]
REFERENCE_CHOSEN = [0.28125, 0.4375, 0.375]
POLICY_REJECTED = [0.5, 0.375, 0.3125]
REFERENCE_REJECTED = [0.46875, 0.40625, 0.25]
ANCHOR = [0.015625, 0.03125, 0.0078125]
LOG_IMPORTANCE_CHOSEN = [math.log(0.5), math.log(0.05), math.log(4.0)]
LOG_IMPORTANCE_REJECTED = [math.log(0.5), math.log(0.05), 0.0]
PREFERENCE_PROBABILITY = [0.72, 0.9, 0.5]
B = 3

DEFAULT = LossOptions()
CUSTOM = LossOptions(beta=20.0, k1=0.5, k2=2.0, eps=1e-3, ipr="anchor", videodpo_exponent=1.5, slic_delta=0.75,
                     slic_sft_weight=0.3, slic_margin="reference", dpop_lambda=5.0, cm_mask_below=0.2, cm_clip=1.5,
                     sdpo_clip_min=0.1, sdpo_clip_max=3.0)
# moderate slopes for finite differences; no pair sits on a kink (relu, max(0, Dw), Dl = 0, the C&M mask)
GRAD = LossOptions(beta=10.0, k1=2.0, k2=3.0, videodpo_exponent=1.5, slic_sft_weight=0.5, dpop_lambda=5.0)
GRAD_ANCHOR = replace(GRAD, ipr="anchor", slic_margin="reference")


@dataclass(frozen=True)
class Row:
    """One pair as Python floats."""

    pc: float
    rc: float
    pr: float
    rr: float
    anchor: float | None = None
    lic: float | None = None
    lir: float | None = None
    p: float | None = None


ROWS = [Row(*values) for values in zip(POLICY_CHOSEN, REFERENCE_CHOSEN, POLICY_REJECTED, REFERENCE_REJECTED, ANCHOR,
                                       LOG_IMPORTANCE_CHOSEN, LOG_IMPORTANCE_REJECTED, PREFERENCE_PROBABILITY)]


# ------------------------------------------------ reference math ------------------------------------------------
def softplus(x: float) -> float:
    """log(1 + e^x) = -logsig(-x), stable for large |x|."""
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def reference_weights(row: Row, o: LossOptions) -> tuple[float, float]:
    """PG-DPO's (alpha, gamma): ratio = (Dw - Dl) / (Dl +- eps), the sign of eps following Dl (>= 0 -> +)."""
    dw, dl = row.pc - row.rc, row.pr - row.rr
    den = dl + o.eps if dl >= 0 else dl - o.eps
    ratio = (dw - dl) / den
    return sigmoid(o.k1 * ratio), sigmoid(-o.k2 * ratio)


def reference_objective(row: Row, alpha: float, gamma: float, o: LossOptions) -> float:
    dw, dl = row.pc - row.rc, row.pr - row.rr
    ipr = dw if o.ipr == "reward" else row.anchor
    return gamma * softplus((o.beta / 2) * (dw - alpha * dl)) + (1 - gamma) * ipr


def reference_importance(row: Row) -> float:
    return math.exp((row.lic + row.lir) / 2)


def reference_loss(name: str, row: Row, o: LossOptions) -> tuple[float, dict[str, float]]:
    """(per-sample loss, loss-specific metrics) straight from the spec's formulas."""
    dw, dl = row.pc - row.rc, row.pr - row.rr
    dpo = softplus((o.beta / 2) * (dw - dl))  # -logsig(-(beta/2)(Dw - Dl))
    h = -(dw - dl)
    if name == "sft":
        return row.pc, {}
    if name == "dpo":
        return dpo, {}
    if name == "videodpo":
        p = 1.0 if row.p is None else row.p
        weight = (0.72 / p) ** o.videodpo_exponent
        return weight * dpo, {"pair_weight": weight}
    if name in PGDPO_FAMILY:
        alpha, gamma = reference_weights(row, o)
        if name == "pgdpo-ars":
            gamma = 1.0
        if name == "pgdpo-ipr":
            alpha = 1.0
        metrics = {"alpha": alpha, "gamma": gamma} if name == "pgdpo" else {}
        return reference_objective(row, alpha, gamma, o), metrics
    if name == "ipo":
        return (h - 1 / (2 * o.beta)) ** 2, {}
    if name == "slic":
        m = -(row.pc - row.pr) if o.slic_margin == "policy" else h
        return max(0.0, o.slic_delta - (o.beta / 2) * m) + o.slic_sft_weight * row.pc, {}
    if name == "dpop":
        return softplus((o.beta / 2) * ((dw - dl) + o.dpop_lambda * max(0.0, dw))), {}
    if name == "dpo-cm":
        w = reference_importance(row)
        return (min(w, o.cm_clip) if w >= o.cm_mask_below else 0.0) * dpo, {"importance_weight": w}
    if name == "sdpo":
        w = reference_importance(row)
        return min(max(w, o.sdpo_clip_min), o.sdpo_clip_max) * dpo, {"importance_weight": w}
    raise AssertionError(name)


def reference_rewards(row: Row, o: LossOptions) -> dict[str, float]:
    r_w = -(o.beta / 2) * (row.pc - row.rc)
    r_l = -(o.beta / 2) * (row.pr - row.rr)
    return {"rewards/chosen": r_w, "rewards/rejected": r_l, "rewards/margins": r_w - r_l,
            "rewards/accuracies": 1.0 if r_w > r_l else 0.0, "logps/chosen": -row.pc, "logps/rejected": -row.pr}


# ------------------------------------------------ helpers ------------------------------------------------
def t(values, dtype=torch.float64, grad=False) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype, requires_grad=grad)


def make_errors(rows: list[Row], dtype=torch.float64, grad=False, full=True) -> PairErrors:
    """PairErrors of ``rows``; ``full`` adds the anchor, log importances and pair probabilities."""
    def column(field):
        return t([getattr(r, field) for r in rows], dtype, grad)

    extras = {}
    if full:
        extras = dict(chosen_anchor=column("anchor"), log_importance_chosen=column("lic"),
                      log_importance_rejected=column("lir"), preference_probability=column("p"))
    return PairErrors(policy_chosen=column("pc"), policy_rejected=column("pr"), reference_chosen=column("rc"),
                      reference_rejected=column("rr"), **extras)


def assert_values(actual: torch.Tensor, expected: list[float], rtol=1e-7, atol=1e-10) -> None:
    assert actual.shape == (len(expected),), actual.shape
    torch.testing.assert_close(actual.detach().to(torch.float64), t(expected), rtol=rtol, atol=atol)


def error_tensors(errors: PairErrors) -> list[torch.Tensor]:
    return [errors.policy_chosen, errors.policy_rejected, errors.reference_chosen, errors.reference_rejected]


def with_errors(errors: PairErrors, tensors: list[torch.Tensor], anchor: torch.Tensor | None = None) -> PairErrors:
    pc, pr, rc, rr = tensors
    return replace(errors, policy_chosen=pc, policy_rejected=pr, reference_chosen=rc, reference_rejected=rr,
                   chosen_anchor=errors.chosen_anchor if anchor is None else anchor)


def central_differences(fn, tensors: list[torch.Tensor], h: float = 1e-6) -> list[torch.Tensor]:
    """d fn / d tensors by central differences; ``fn`` maps a list of detached tensors to a float."""
    base = [x.detach().clone() for x in tensors]
    grads = []
    for i, x in enumerate(base):
        g = torch.zeros_like(x)
        for j in range(x.numel()):
            plus = [y.clone() for y in base]
            minus = [y.clone() for y in base]
            plus[i].view(-1)[j] += h
            minus[i].view(-1)[j] -= h
            g.view(-1)[j] = (fn(plus) - fn(minus)) / (2 * h)
        grads.append(g)
    return grads


def autograd(loss: torch.Tensor, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    grads = torch.autograd.grad(loss.sum(), tensors, allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for x, g in zip(tensors, grads)]


# ------------------------------------------------ registry ------------------------------------------------
def test_losses_registry_has_exactly_the_eleven_losses():
    assert set(LOSSES) == set(ALL_LOSSES)
    assert len(LOSSES) == 11


# ------------------------------------------------ values ------------------------------------------------
def test_hand_computed_values_at_default_options():
    """Literal numbers for the B=3 batch at beta=100 (so beta/2 * (Dw - Dl) = [-3.125, 4.6875, 0])."""
    errors = make_errors(ROWS)
    assert_values(LOSSES["sft"](errors, DEFAULT).loss, [0.25, 0.5, 0.4375])
    # softplus(-3.125) = log(1 + e^-3.125), softplus(4.6875), log 2
    assert_values(LOSSES["dpo"](errors, DEFAULT).loss, [0.04299907922908782, 4.696667531083942, math.log(2)])
    # a = 0: pair weight 1, videodpo == dpo
    assert_values(LOSSES["videodpo"](errors, DEFAULT).loss, [0.04299907922908782, 4.696667531083942, math.log(2)])
    # h = [1/16, -3/32, 0], 1/(2 beta) = 0.005
    assert_values(LOSSES["ipo"](errors, DEFAULT).loss, [0.0575 ** 2, 0.09875 ** 2, 0.005 ** 2])
    # policy margin m = e(l) - e(w) = [0.25, -0.125, -0.125]: relu(1 - 50 m) = [0, 7.25, 7.25]
    assert_values(LOSSES["slic"](errors, DEFAULT).loss, [0.0, 7.25, 7.25])
    # (Dw - Dl) + 50 max(0, Dw) = [-0.0625, 3.21875, 3.125] times 50 -> softplus(-3.125), ~160.9375, ~156.25
    assert_values(LOSSES["dpop"](errors, DEFAULT).loss, [0.04299907922908782, 160.9375, 156.25])
    # C&M weights 1[w >= 0.1] min(w, 1) = [0.5, 0, 1]; SDPO clamp(w, 0, 1) = [0.5, 0.05, 1]
    assert_values(LOSSES["dpo-cm"](errors, DEFAULT).loss, [0.5 * 0.04299907922908782, 0.0, math.log(2)])
    assert_values(LOSSES["sdpo"](errors, DEFAULT).loss,
                  [0.5 * 0.04299907922908782, 0.05 * 4.696667531083942, math.log(2)])
    # pair 2 (tie): alpha = gamma = 1/2 -> 0.5 softplus(50 (1/16 - 1/32)) + 0.5 * Dw
    pgdpo = LOSSES["pgdpo"](errors, DEFAULT)
    assert pgdpo.metrics["alpha"][2].item() == pytest.approx(0.5)
    assert pgdpo.metrics["gamma"][2].item() == pytest.approx(0.5)
    assert pgdpo.loss[2].item() == pytest.approx(0.5 * softplus(1.5625) + 0.5 * 0.0625, rel=1e-9)


@pytest.mark.parametrize("options", [DEFAULT, CUSTOM, replace(DEFAULT, detach_weights=False),
                                     replace(CUSTOM, ipr="reward", slic_margin="policy")],
                         ids=["default", "custom-anchor", "default-undetached", "custom-reward"])
@pytest.mark.parametrize("name", ALL_LOSSES)
def test_loss_and_metrics_match_the_reference_formulas(name, options):
    out = LOSSES[name](make_errors(ROWS), options)
    assert isinstance(out, LossOutput)
    expected = [reference_loss(name, row, options) for row in ROWS]
    assert_values(out.loss, [loss for loss, _ in expected])
    for key in EXTRA_METRICS.get(name, ()):
        assert_values(out.metrics[key], [metrics[key] for _, metrics in expected])
    for key in REWARD_METRICS:
        assert_values(out.metrics[key], [reference_rewards(row, options)[key] for row in ROWS])


def test_reward_metrics_at_default_options_by_hand():
    out = LOSSES["dpo"](make_errors(ROWS), DEFAULT)
    assert_values(out.metrics["rewards/chosen"], [1.5625, -3.125, -3.125])
    assert_values(out.metrics["rewards/rejected"], [-1.5625, 1.5625, -3.125])
    assert_values(out.metrics["rewards/margins"], [3.125, -4.6875, 0.0])
    assert_values(out.metrics["rewards/accuracies"], [1.0, 0.0, 0.0])  # the tie is not a hit
    assert_values(out.metrics["logps/chosen"], [-0.25, -0.5, -0.4375])
    assert_values(out.metrics["logps/rejected"], [-0.5, -0.375, -0.3125])


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_metrics_have_all_keys_with_shape_b(name):
    out = LOSSES[name](make_errors(ROWS), DEFAULT)
    assert out.loss.shape == (B,)
    for key in REWARD_METRICS + EXTRA_METRICS.get(name, ()):
        assert key in out.metrics, key
    for key, value in out.metrics.items():
        assert value.shape == (B,), (key, value.shape)


def test_videodpo_without_preference_probability_uses_p_equal_one():
    options = replace(DEFAULT, videodpo_exponent=2.0)
    out = LOSSES["videodpo"](make_errors(ROWS, full=False), options)
    dpo = [softplus(50 * (row.pc - row.rc - row.pr + row.rr)) for row in ROWS]
    assert_values(out.loss, [0.72 ** 2 * d for d in dpo])
    assert_values(torch.as_tensor(out.metrics["pair_weight"]).expand(B), [0.5184] * B)


def test_dpo_cm_keeps_a_weight_exactly_at_the_mask_threshold():
    """1[w >= cm_mask_below]: w = exp(0) = 1 with the threshold at 1 is kept, w = exp(-1e-3) is masked."""
    errors = replace(make_errors(ROWS), log_importance_chosen=t([0.0, -1e-3, 0.0]),
                     log_importance_rejected=t([0.0, -1e-3, 0.0]))
    out = LOSSES["dpo-cm"](errors, replace(DEFAULT, cm_mask_below=1.0, cm_clip=2.0))
    assert_values(out.loss, [0.04299907922908782, 0.0, math.log(2)])


@pytest.mark.parametrize("ipr", ["reward", "anchor"])
def test_pgdpo_objective_matches_reference_for_given_weights(ipr):
    options = replace(CUSTOM, ipr=ipr)
    alpha, gamma = [0.2, 0.5, 0.9], [0.3, 0.6, 1.0]
    actual = pgdpo_objective(make_errors(ROWS), t(alpha), t(gamma), options)
    assert_values(actual, [reference_objective(row, a, g, options) for row, a, g in zip(ROWS, alpha, gamma)])


@pytest.mark.parametrize("options", [DEFAULT, CUSTOM, replace(CUSTOM, ipr="reward")],
                         ids=["default", "custom-anchor", "custom-reward"])
def test_alpha_and_gamma_equal_one_turn_pgdpo_into_dpo(options):
    errors = make_errors(ROWS)
    ones = torch.ones(B, dtype=torch.float64)
    expected = [softplus((options.beta / 2) * (row.pc - row.rc - row.pr + row.rr)) for row in ROWS]
    assert_values(pgdpo_objective(errors, ones, ones, options), expected)
    torch.testing.assert_close(pgdpo_objective(errors, ones, ones, options), LOSSES["dpo"](errors, options).loss)


# ------------------------------------------------ chosen <-> rejected ------------------------------------------------
def swapped(errors: PairErrors) -> PairErrors:
    return PairErrors(policy_chosen=errors.policy_rejected, policy_rejected=errors.policy_chosen,
                      reference_chosen=errors.reference_rejected, reference_rejected=errors.reference_chosen)


def test_swapping_chosen_and_rejected_flips_dpo_margins_and_accuracies():
    errors = make_errors(ROWS, full=False)
    forward, backward = LOSSES["dpo"](errors, DEFAULT), LOSSES["dpo"](swapped(errors), DEFAULT)
    x = [50 * (row.pc - row.rc - row.pr + row.rr) for row in ROWS]  # (beta/2)(Dw - Dl) = [-3.125, 4.6875, 0]
    # dpo(l, w) = -logsig(+(beta/2)(Dw - Dl)) = softplus(-x)
    assert_values(backward.loss, [softplus(-v) for v in x])
    # softplus(x) - softplus(-x) = x
    assert_values(forward.loss - backward.loss, x)
    torch.testing.assert_close(backward.metrics["rewards/margins"], -forward.metrics["rewards/margins"])
    torch.testing.assert_close(backward.metrics["rewards/chosen"], forward.metrics["rewards/rejected"])
    assert_values(forward.metrics["rewards/accuracies"], [1.0, 0.0, 0.0])
    assert_values(backward.metrics["rewards/accuracies"], [0.0, 1.0, 0.0])  # ties stay 0 both ways


def test_swapping_chosen_and_rejected_in_sft_and_ipo_follows_their_formulas():
    errors = make_errors(ROWS, full=False)
    assert_values(LOSSES["sft"](swapped(errors), DEFAULT).loss, POLICY_REJECTED)  # e_theta(l)
    # swapped h = Dw - Dl = [-1/16, 3/32, 0]: (h - 0.005)^2
    assert_values(LOSSES["ipo"](swapped(errors), DEFAULT).loss, [0.0675 ** 2, 0.08875 ** 2, 0.005 ** 2])


# ------------------------------------------------ from_residuals ------------------------------------------------
@pytest.mark.parametrize("shape", [(3, 7), (3, 2, 5), (3, 4, 5, 6, 7)], ids=["2d", "3d", "5d-video"])
def test_from_residuals_reduces_every_non_batch_axis(shape):
    gen = torch.Generator().manual_seed(0)
    pc, pr, rc, rr = (torch.randn(shape, generator=gen, dtype=torch.float64) for _ in range(4))
    lic, lir, p = t([0.1, -0.2, 0.3]), t([0.0, 0.5, -1.0]), t([0.6, 0.8, 0.9])
    errors = PairErrors.from_residuals(pc, pr, rc, rr, log_importance_chosen=lic, log_importance_rejected=lir,
                                       preference_probability=p)

    def per_sample(x):  # explicit loop: mean of squares of one sample's residual
        return [float((x[b] ** 2).sum()) / x[b].numel() for b in range(x.shape[0])]

    assert_values(errors.policy_chosen, per_sample(pc), rtol=1e-12)
    assert_values(errors.policy_rejected, per_sample(pr), rtol=1e-12)
    assert_values(errors.reference_chosen, per_sample(rc), rtol=1e-12)
    assert_values(errors.reference_rejected, per_sample(rr), rtol=1e-12)
    assert_values(errors.chosen_anchor, per_sample(pc - rc), rtol=1e-12)  # the target cancels
    torch.testing.assert_close(errors.log_importance_chosen, lic)
    torch.testing.assert_close(errors.log_importance_rejected, lir)
    torch.testing.assert_close(errors.preference_probability, p)


def test_from_residuals_of_video_tensors_feeds_the_losses():
    gen = torch.Generator().manual_seed(1)
    target = torch.randn(2, 3, 4, 5, 6, generator=gen, dtype=torch.float64)
    preds = [torch.randn(2, 3, 4, 5, 6, generator=gen, dtype=torch.float64) for _ in range(4)]
    errors = PairErrors.from_residuals(*(x - target for x in preds))
    rows = [Row(*(float(((x[b] - target[b]) ** 2).mean()) for x in (preds[0], preds[2], preds[1], preds[3])))
            for b in range(2)]
    assert_values(LOSSES["dpo"](errors, DEFAULT).loss, [reference_loss("dpo", row, DEFAULT)[0] for row in rows])


# ------------------------------------------------ gradients ------------------------------------------------
@pytest.mark.parametrize("options", [GRAD, GRAD_ANCHOR], ids=["reward", "anchor"])
@pytest.mark.parametrize("name", ALL_LOSSES)
def test_gradient_matches_finite_differences_without_detached_weights(name, options):
    """detach_weights=False: autograd of the summed loss w.r.t. the four errors (+ anchor) is the full gradient."""
    options = replace(options, detach_weights=False)
    errors = make_errors(ROWS, grad=True)
    inputs = error_tensors(errors) + [errors.chosen_anchor]
    analytic = autograd(LOSSES[name](errors, options).loss, inputs)

    def total(values):
        return LOSSES[name](with_errors(errors, values[:4], values[4]), options).loss.sum().item()

    for a, n in zip(analytic, central_differences(total, inputs)):
        torch.testing.assert_close(a, n, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", [n for n in ALL_LOSSES if n not in PGDPO_FAMILY])
def test_gradient_of_non_pgdpo_losses_with_detached_weights_matches_finite_differences(name):
    """Detaching importance / pair weights leaves the error gradient of the other losses unchanged."""
    options = replace(GRAD, detach_weights=True)
    errors = make_errors(ROWS, grad=True)
    analytic = autograd(LOSSES[name](errors, options).loss, error_tensors(errors))

    def total(values):
        return LOSSES[name](with_errors(errors, values), options).loss.sum().item()

    for a, n in zip(analytic, central_differences(total, error_tensors(errors))):
        torch.testing.assert_close(a, n, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("options", [GRAD, GRAD_ANCHOR], ids=["reward", "anchor"])
@pytest.mark.parametrize("name", PGDPO_FAMILY)
def test_detached_pgdpo_gradient_holds_alpha_and_gamma_constant(name, options):
    """detach_weights=True: the gradient is that of pgdpo_objective with alpha, gamma frozen at their values."""
    options = replace(options, detach_weights=True)
    errors = make_errors(ROWS, grad=True)
    inputs = error_tensors(errors) + [errors.chosen_anchor]
    analytic = autograd(LOSSES[name](errors, options).loss, inputs)

    weights = [reference_weights(row, options) for row in ROWS]
    alpha = t([1.0 if name == "pgdpo-ipr" else a for a, _ in weights])
    gamma = t([1.0 if name == "pgdpo-ars" else g for _, g in weights])

    def total(values):
        return pgdpo_objective(with_errors(errors, values[:4], values[4]), alpha, gamma, options).sum().item()

    for a, n in zip(analytic, central_differences(total, inputs)):
        torch.testing.assert_close(a, n, rtol=1e-5, atol=1e-7)


def test_detaching_pgdpo_weights_changes_the_gradient_but_not_the_loss():
    errors = make_errors(ROWS, grad=True)
    detached = LOSSES["pgdpo"](errors, replace(GRAD, detach_weights=True))
    full = LOSSES["pgdpo"](errors, replace(GRAD, detach_weights=False))
    torch.testing.assert_close(detached.loss, full.loss)
    g_detached = autograd(detached.loss, error_tensors(errors))
    g_full = autograd(full.loss, error_tensors(errors))
    assert not all(torch.allclose(a, b) for a, b in zip(g_detached, g_full))


@pytest.mark.parametrize("name", IMPORTANCE_LOSSES)
def test_detached_importance_weights_get_no_gradient(name):
    errors = make_errors(ROWS, grad=True)
    out = LOSSES[name](errors, replace(DEFAULT, detach_weights=True))
    grads = torch.autograd.grad(out.loss.sum(), [errors.log_importance_chosen, errors.log_importance_rejected],
                                allow_unused=True)
    for g in grads:
        assert g is None or torch.count_nonzero(g) == 0


# ------------------------------------------------ degenerate denominators ------------------------------------------------
EPS = 1e-6
EDGE_ROWS = [
    Row(0.2, 0.1, 0.3, 0.3, 0.01, 0.0, 0.0, 0.7),          # Dl = 0, Dw > 0
    Row(0.1, 0.2, 0.3, 0.3, 0.01, 0.0, 0.0, 0.7),          # Dl = 0, Dw < 0
    Row(0.2, 0.1, 0.0, EPS, 0.01, 0.0, 0.0, 0.7),          # Dl = -eps exactly (Dl + eps == 0)
    Row(0.0, EPS, 0.0, EPS, 0.0, 0.0, 0.0, 0.7),           # Dw = Dl = -eps
    Row(0.2, 0.1, 0.1, 0.3, 0.01, 0.0, 0.0, 0.7),          # Dl negative
    Row(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.7),           # all-zero errors
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("options", [DEFAULT, replace(DEFAULT, detach_weights=False), replace(DEFAULT, ipr="anchor"),
                                     replace(DEFAULT, ipr="anchor", detach_weights=False)],
                         ids=["detached", "undetached", "anchor-detached", "anchor-undetached"])
@pytest.mark.parametrize("name", ALL_LOSSES)
def test_zero_and_negative_denominators_give_finite_losses_and_gradients(name, options, dtype):
    errors = make_errors(EDGE_ROWS, dtype=dtype, grad=True)
    out = LOSSES[name](errors, options)
    assert torch.isfinite(out.loss).all(), out.loss
    for key, value in out.metrics.items():
        assert torch.isfinite(value).all(), (key, value)
    inputs = error_tensors(errors) + [errors.chosen_anchor, errors.log_importance_chosen,
                                      errors.log_importance_rejected]
    for g in autograd(out.loss, inputs):
        assert torch.isfinite(g).all(), g


@pytest.mark.parametrize("detach", [True, False])
def test_pgdpo_weights_and_loss_at_degenerate_denominators_match_reference(detach):
    options = replace(DEFAULT, detach_weights=detach)
    out = LOSSES["pgdpo"](make_errors(EDGE_ROWS), options)
    expected = [reference_loss("pgdpo", row, options) for row in EDGE_ROWS]
    assert_values(out.loss, [loss for loss, _ in expected])
    assert_values(out.metrics["alpha"], [m["alpha"] for _, m in expected])
    assert_values(out.metrics["gamma"], [m["gamma"] for _, m in expected])


def test_all_zero_errors_give_half_weights_and_half_log_two():
    zeros = [Row(0.0, 0.0, 0.0, 0.0, 0.0)] * 2
    out = LOSSES["pgdpo"](make_errors(zeros, full=False), DEFAULT)
    assert_values(out.metrics["alpha"], [0.5, 0.5])
    assert_values(out.metrics["gamma"], [0.5, 0.5])
    assert_values(out.loss, [0.5 * math.log(2)] * 2)  # 0.5 * (-logsig(0)) + 0.5 * Dw with Dw = 0


# ------------------------------------------------ invalid options ------------------------------------------------
def _without(errors: PairErrors, **fields) -> PairErrors:
    return replace(errors, **fields)


INVALID = [
    ("unknown-ipr", "pgdpo", lambda: LossOptions(ipr="bogus"), {}),
    ("unknown-slic-margin", "slic", lambda: LossOptions(slic_margin="bogus"), {}),
    ("beta-zero", "dpo", lambda: LossOptions(beta=0.0), {}),
    ("beta-negative", "dpo", lambda: LossOptions(beta=-1.0), {}),
    ("beta-negative-pgdpo", "pgdpo", lambda: LossOptions(beta=-5.0), {}),
    ("anchor-missing-pgdpo", "pgdpo", lambda: LossOptions(ipr="anchor"), {"chosen_anchor": None}),
    ("anchor-missing-pgdpo-ipr", "pgdpo-ipr", lambda: LossOptions(ipr="anchor"), {"chosen_anchor": None}),
    ("importances-missing-sdpo", "sdpo", LossOptions,
     {"log_importance_chosen": None, "log_importance_rejected": None}),
    ("importance-rejected-missing-sdpo", "sdpo", LossOptions, {"log_importance_rejected": None}),
    ("importances-missing-dpo-cm", "dpo-cm", LossOptions,
     {"log_importance_chosen": None, "log_importance_rejected": None}),
    ("importance-chosen-missing-dpo-cm", "dpo-cm", LossOptions, {"log_importance_chosen": None}),
]


@pytest.mark.parametrize("name, make_options, missing", [case[1:] for case in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_options_raise_value_error(name, make_options, missing):
    errors = _without(make_errors(ROWS), **missing)
    with pytest.raises(ValueError):  # at construction of the options or at the call: either is fine
        LOSSES[name](errors, make_options())


def test_loss_names_without_torch_match_the_loss_table() -> None:
    from vbench_pref.train.loss_names import LOSS_NAMES

    assert LOSS_NAMES == tuple(LOSSES)
