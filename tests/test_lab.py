"""The likelihood-displacement lab: Gamma (Eq. 35) against the realised change, ELBO, determinism, outputs."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from vbench_pref.errors import VbenchPrefError
from vbench_pref.lab import displacement as lab
from vbench_pref.lab.toy import Schedule, ToyConfig, elbo, per_sample_error, pretrain
from vbench_pref.train.losses import LossOptions, compute_loss

TOY = ToyConfig(hidden=32, layers=2, timesteps=20, pretrain_steps=60, pretrain_batch=128)
SMALL = lab.LabConfig(seeds=(0,), steps=4, batch_pairs=4, candidates_per_prompt=6, train_pairs_per_prompt=3,
                      probe_pairs=8, pair_snapshots=4, elbo_every=2, pair_every=2, toy=TOY)


@pytest.fixture(scope="module")
def seed_data() -> lab.SeedData:
    return lab.prepare_seed(SMALL, 0)


def _float64(data: lab.SeedData) -> tuple[torch.nn.Module, dict, dict, lab.PairSet]:
    model = data.reference.double()
    params = {k: v.detach().clone().requires_grad_(True) for k, v in model.named_parameters()}
    reference = {k: v.detach().clone() for k, v in model.named_parameters()}
    pairs = data.train.take(torch.arange(4))
    pairs = lab.PairSet(pairs.chosen.double(), pairs.rejected.double(), pairs.prompt, pairs.gap, pairs.kind)
    return model, params, reference, pairs


def test_gamma_is_the_first_order_term_of_the_realised_change(seed_data: lab.SeedData) -> None:
    model, params, reference, pairs = _float64(seed_data)
    schedule = Schedule.linear(TOY)
    generator = torch.Generator().manual_seed(3)
    t = torch.randint(0, TOY.timesteps, (4,), generator=generator)
    noise = torch.randn(pairs.chosen.shape, generator=generator, dtype=torch.float64)
    # one SGD step away from the reference, so the DPO and PG-DPO gradients differ
    errors = lab.pair_errors(params, reference, model, schedule, pairs, t, noise)
    warm = torch.autograd.grad(errors.policy_chosen.mean() - errors.policy_rejected.mean(), list(params.values()))
    params = lab._step(params, warm, 0.05)

    errors = lab.pair_errors(params, reference, model, schedule, pairs, t, noise)
    options = LossOptions(beta=100.0)
    values = list(params.values())
    grads_run = torch.autograd.grad(compute_loss("pgdpo", errors, options).loss.mean(), values, retain_graph=True)
    grads_dpo = torch.autograd.grad(compute_loss("dpo", errors, options).loss.mean(), values, retain_graph=True)
    grad_logp = torch.autograd.grad(-errors.policy_chosen.mean(), values)
    gaps = []
    for lr in (1e-5, 1e-6, 1e-7):
        predicted = lab.gamma_first_order(lab._flat(grad_logp), lab._flat(grads_run), lab._flat(grads_dpo), lr)
        realised = lab.gamma_realised(params, reference, model, schedule, pairs, t, noise, grads_run, grads_dpo, lr)
        assert predicted != 0.0 and realised == pytest.approx(predicted, rel=0.05)
        gaps.append(abs(realised - predicted))
    # the remainder is second order: a tenth of the step leaves about a hundredth of it
    assert gaps[1] < gaps[0] / 30 and gaps[2] < gaps[1] / 30


def test_pair_errors_are_the_per_sample_errors(seed_data: lab.SeedData) -> None:
    model = seed_data.reference.float()
    params = {k: v.detach() for k, v in model.named_parameters()}
    schedule = Schedule.linear(TOY)
    pairs = seed_data.probe
    t, noise = seed_data.probe_t, seed_data.probe_noise
    errors = lab.pair_errors(params, params, model, schedule, pairs, t, noise)
    direct = per_sample_error(model, schedule, pairs.rejected, pairs.prompt, t, noise)
    torch.testing.assert_close(errors.policy_rejected, direct)
    torch.testing.assert_close(errors.reference_rejected, direct)


def test_elbo_sums_weighted_errors_over_every_step(seed_data: lab.SeedData) -> None:
    model = seed_data.reference.float()
    schedule = Schedule.linear(TOY)
    x, c, noise = seed_data.probe.chosen[:3], seed_data.probe.prompt[:3], seed_data.probe_noise[:3]
    weights = schedule.elbo_weights()
    expected = torch.zeros(3)
    for step in range(TOY.timesteps):
        t = torch.full((3,), step)
        expected -= weights[step] * per_sample_error(model, schedule, x, c, t, noise).detach()
    torch.testing.assert_close(elbo(model, schedule, x, c, noise), expected)
    # the first step's weight is 1 / (2 (1 - beta_1)) for epsilon prediction (hand value)
    assert float(weights[0]) == pytest.approx(1 / (2 * (1 - TOY.beta_start)), rel=1e-6)


def test_runs_are_deterministic_for_a_seed(seed_data: lab.SeedData) -> None:
    run = lab.Run("pgdpo", "pgdpo", 0, 10.0, 10.0)
    first, _ = lab.train_run(SMALL, run, seed_data)
    second, _ = lab.train_run(SMALL, run, seed_data)
    assert first == second
    assert lab.train_run(SMALL, lab.Run("dpo", "dpo", 0, 10.0, 10.0), seed_data)[0] != first


def test_every_loss_starts_from_the_reference(seed_data: lab.SeedData) -> None:
    rows, snapshots = lab.train_run(SMALL, lab.Run("dpo", "dpo", 0, 10.0, 10.0), seed_data)
    assert rows[0]["step"] == 0 and rows[1]["margin"] == 0.0  # the policy is the reference at the first step
    assert [r["step"] for r in rows] == list(range(SMALL.steps + 1))
    assert {s["step"] for s in snapshots} == {0, 2, 4} and all("similarity" in s for s in snapshots)
    assert all(r.get("elbo_chosen") is not None for r in rows if r["step"] in (0, 2, 4))


def test_plan_and_bad_configs() -> None:
    names = [r.name for r in lab.plan_runs(replace(SMALL, seeds=(0, 1)))]
    assert names.count("dpo") == 2 and "pgdpo k1=2" in names and "pgdpo k2=5" in names
    with pytest.raises(VbenchPrefError, match="include dpo"):
        lab.LabConfig(losses=("pgdpo",))
    with pytest.raises(VbenchPrefError, match="unknown loss ppo"):
        lab.LabConfig(losses=("dpo", "ppo"))


def test_lab_writes_tables_figures_and_report(tmp_path: Path) -> None:
    config = replace(SMALL, losses=("dpo", "pgdpo", "sft"))
    result = lab.run_lab(config, tmp_path / "lab", command=["vbench-pref", "lab", "displacement"])
    for name in ("metrics.csv", "pairs.csv", "config.json", "report.md", "fig2_likelihood.png"):
        assert (tmp_path / "lab" / name).stat().st_size > 0, name
    assert set(result.metrics["run"]) == {"dpo", "pgdpo", "sft", "pgdpo k1=2", "pgdpo k1=20", "pgdpo k2=5"}
    recorded = json.loads((tmp_path / "lab" / "config.json").read_text())
    assert recorded["steps"] == 4 and recorded["command"] == "vbench-pref lab displacement"
    assert result.pairs["run"].unique().tolist() == ["dpo"]
    report = (tmp_path / "lab" / "report.md").read_text()
    assert "**Not comparable:** this run (4 steps, 1 seed(s)) is shorter than the committed one" in report
    assert lab.comparability_note(lab.LabConfig()) is None
    assert lab.comparability_note(replace(lab.LabConfig(), seeds=(0, 1))) is not None


def test_cli_writes_outside_the_committed_report_and_flags_short_runs(tmp_path: Path, monkeypatch) -> None:
    from types import SimpleNamespace

    from typer.testing import CliRunner

    from vbench_pref.cli import app

    calls = []

    def fake_run_lab(config, out, command=None, on_run=None):
        calls.append((config, out))
        return SimpleNamespace(report=out / "report.md", seconds=0.0)

    monkeypatch.setattr(lab, "run_lab", fake_run_lab)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["lab", "displacement"])
    assert result.exit_code == 0 and "not comparable" not in result.output, result.output
    assert calls[-1][1] == Path("runs/lab/displacement") and calls[-1][0] == lab.LabConfig()
    result = runner.invoke(app, ["lab", "displacement", "--steps", "30", "--out", "results/lab/displacement"])
    assert result.exit_code == 0 and calls[-1][1] == Path("results/lab/displacement")
    assert "not comparable with the committed run's" in result.output


def test_pretraining_learns_the_data() -> None:
    model = pretrain(replace(TOY, pretrain_steps=300), 0)
    schedule = Schedule.linear(TOY)
    generator = torch.Generator().manual_seed(0)
    from vbench_pref.lab.toy import sample_data

    x, c = sample_data(TOY, 256, generator)
    t = torch.randint(0, TOY.timesteps, (256,), generator=generator)
    noise = torch.randn(x.shape, generator=generator)
    untrained = per_sample_error(pretrain(replace(TOY, pretrain_steps=0), 0), schedule, x, c, t, noise)
    trained = per_sample_error(model, schedule, x, c, t, noise)
    assert trained.mean() < 0.7 * untrained.mean()


def test_cli_refuses_bad_options_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vbench_pref.cli import app

    runner = CliRunner()
    for args, message in [(["--losses", "pgdpo"], "include dpo"), (["--k1", "ten"], "comma-separated numbers"),
                          (["--seeds", "0"], "at least 1")]:
        result = runner.invoke(app, ["lab", "displacement", "--out", str(tmp_path / "x"), *args])
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    assert not (tmp_path / "x").exists()


def test_similarity_factor_is_the_first_order_identity(seed_data: lab.SeedData) -> None:
    """To first order, one DPO step on a pair changes log p_w - log p_l by
    eta * (beta/2) * (1 - sigmoid(margin)) * ||grad log p_w - grad log p_l||^2 (PG-DPO appendix, Eq. 29)."""
    import math

    _, snapshots = lab.train_run(SMALL, lab.Run("dpo", "dpo", 0, 10.0, 10.0), seed_data)
    for s in snapshots:
        expected = SMALL.lr * SMALL.beta / 2 * (1 - 1 / (1 + math.exp(-s["margin"]))) * s["gradient_distance"]
        assert s["similarity"] == pytest.approx(expected, rel=1e-4, abs=1e-9)
        assert s["similarity"] >= 0


@pytest.mark.parametrize("loss", ["sdpo", "dpo-cm", "ipo", "slic", "dpop", "videodpo"])
def test_the_other_losses_run_in_the_lab(seed_data: lab.SeedData, loss: str) -> None:
    rows, _ = lab.train_run(replace(SMALL, steps=1), lab.Run(loss, loss, 0, 10.0, 10.0), seed_data)
    # the first step starts at the reference, where every preference loss is at its neutral point
    assert math.isfinite(rows[1]["train_loss"]) and rows[1]["gamma_first_order"] is not None
    assert math.isfinite(rows[1]["gamma_first_order"]) and rows[1]["margin"] == 0.0
