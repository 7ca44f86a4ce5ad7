"""The lab report (``vbench_pref.lab.report``): verdict rules on tables whose answer is known, and the files.

Every table here is synthetic and built so the expected verdict (and the expected numbers: changes, shares,
correlations) can be worked out by hand; the rules themselves are the ones printed in the report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from vbench_pref.errors import VbenchPrefError
from vbench_pref.lab.report import (
    FIG1A,
    FIG1B,
    FIG2,
    FIG_GAMMA,
    FIG_LOSSES,
    FIG_SWEEP,
    NOT_REPRODUCED,
    NOT_TESTED,
    PARTLY,
    REPORT_FILE,
    REPRODUCED,
    Claim,
    claims,
    fmt,
    loss_summary,
    pearson,
    spearman,
    stat,
    sweep_values,
    write_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STEPS = 10
ELBO_EVERY = 4  # measured at 0, 4, 8 and the last step (10)
CONFIG = {"command": "vbench-pref lab --steps 10", "steps": STEPS, "seeds": [0, 1, 2],
          "losses": ["sft", "dpo", "pgdpo"], "lr": 0.05, "k1": 10.0, "k2": 10.0, "k1_sweep": [2.0, 20.0],
          "k2_sweep": [5.0], "toy": {"hidden": 64, "layers": 3}, "seconds": 12.34}


def run_rows(run: str, loss: str, seed: int, *, chosen: float = -0.1, rejected: float = -0.3, margin: float = 0.05,
             proxy: float | None = None, k1: float = 10.0, k2: float = 10.0,
             alpha: tuple[float, float] | None = None, gamma: tuple[float, float] | None = None,
             gamma_first: Sequence[float] | None = None, realised_scale: float = 1.1,
             steps: int = STEPS, elbo_every: int = ELBO_EVERY, elbo_last: bool = True) -> list[dict[str, Any]]:
    """One run and seed, steps 0..steps: linear trends per step (``chosen`` etc. are slopes).

    The ELBO is measured every ``elbo_every`` steps and at the last step (unless ``elbo_last`` is False);
    alpha/gamma spread linearly from the low end at step 0 to the high end (gamma: high to low) at the end.
    """
    rows = []
    for step in range(steps + 1):
        measured = step % elbo_every == 0 or (step == steps and elbo_last)
        frac = step / steps
        row: dict[str, Any] = {
            "run": run, "loss": loss, "k1": k1, "k2": k2, "seed": seed, "step": step,
            "train_loss": 0.69 - 0.01 * step, "margin": margin * step, "accuracy": 0.5 + 0.04 * step,
            "proxy_chosen": -1.0 + (chosen if proxy is None else proxy) * step,
            "proxy_rejected": -1.0 + rejected * step,
            "elbo_chosen": -2.0 + chosen * step if measured else math.nan,
            "elbo_rejected": -2.0 + rejected * step if measured else math.nan,
            "grad_norm": 1.0, "dpo_grad_norm": 1.0,
        }
        for name, span, rising in (("alpha", alpha, True), ("gamma", gamma, False)):
            if span is None:
                row.update({f"{name}_min": math.nan, f"{name}_mean": math.nan, f"{name}_max": math.nan})
            else:
                lo, hi = span
                edge = lo + (hi - lo) * frac if rising else hi - (hi - lo) * frac
                start = lo if rising else hi
                row.update({f"{name}_min": min(start, edge), f"{name}_max": max(start, edge),
                            f"{name}_mean": (start + edge) / 2})
        if step == 0 or loss == "dpo" or gamma_first is None:
            row["gamma_first_order"] = row["gamma_realised"] = math.nan
        else:
            value = gamma_first[(step - 1) % len(gamma_first)]
            row["gamma_first_order"] = value
            row["gamma_realised"] = value * realised_scale
        rows.append(row)
    return rows


def make_metrics(dpo_chosen: Sequence[float] = (-0.1, -0.1, -0.1), pgdpo_chosen: Sequence[float] = (0.1, 0.1, 0.1),
                 gamma_first: Sequence[float] = (1.0, 1.0, -1.0), sweep: bool = True, **dpo: Any) -> pd.DataFrame:
    """dpo, pgdpo and sft base runs over len(dpo_chosen) seeds, plus (optionally) the K sweep on seed 0."""
    rows: list[dict[str, Any]] = []
    for seed, (d, p) in enumerate(zip(dpo_chosen, pgdpo_chosen)):
        rows += run_rows("dpo", "dpo", seed, chosen=d, **dpo)
        rows += run_rows("pgdpo", "pgdpo", seed, chosen=p, alpha=(0.5, 0.8), gamma=(0.0, 0.5), gamma_first=gamma_first)
        rows += run_rows("sft", "sft", seed, chosen=0.2, rejected=0.1, gamma_first=(2.0,))
    if sweep:
        rows += run_rows("pgdpo k1=2", "pgdpo", 0, k1=2.0, alpha=(0.5, 0.6), gamma=(0.0, 0.5), gamma_first=gamma_first)
        rows += run_rows("pgdpo k1=20", "pgdpo", 0, k1=20.0, alpha=(0.5, 1.0), gamma=(0.0, 0.5),
                         gamma_first=gamma_first)
        rows += run_rows("pgdpo k2=5", "pgdpo", 0, k2=5.0, alpha=(0.5, 0.8), gamma=(0.2, 0.5), gamma_first=gamma_first)
    return pd.DataFrame(rows)


def make_pairs(seeds: int = 3, grad: str = "falling", similarity_slope: float = 0.5, noise: float = 0.0,
               loss: str = "dpo") -> pd.DataFrame:
    """Pair snapshots at steps 0, 5, 10: 8 pairs with margins spread over [-0.2, 1.2]."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(seeds):
        for step in (0, 5, 10):
            for pair in range(8):
                margin = -0.2 + 0.2 * pair + 0.01 * step
                norm = math.exp(-2.0 * margin) if grad == "falling" else 1.0 + margin
                rows.append({"run": loss, "loss": loss, "seed": seed, "step": step, "pair": pair,
                             "kind": "near_tie" if pair < 4 else "clear_cut", "margin": margin, "dpo_grad_norm": norm,
                             "similarity": similarity_slope * margin + noise * float(rng.standard_normal())})
    return pd.DataFrame(rows)


def by_key(judged: list[Claim]) -> dict[str, Claim]:
    return {claim.key: claim for claim in judged}


# ------------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------------


def test_stat_pearson_spearman_and_fmt() -> None:
    summary = stat([1.0, 2.0, math.nan, 3.0])
    assert summary == {"mean": 2.0, "std": 1.0, "min": 1.0, "max": 3.0, "n": 3}
    assert math.isnan(stat([5.0])["std"]) and stat([])["n"] == 0
    assert pearson([1, 2, 3, 4], [2, 4, 6, 8]) == pytest.approx(1.0)
    assert math.isnan(pearson([1, 2], [1, 2]))  # too few points
    assert math.isnan(pearson([1, 2, 3], [5, 5, 5]))  # constant side
    assert spearman([1, 2, 3, 4], [1, 8, 27, 64]) == pytest.approx(1.0)  # monotone, not linear
    assert spearman([1, 2, 3, math.nan], [3, 2, 1, 0]) == pytest.approx(-1.0)
    assert fmt(0.123456) == "0.1235" and fmt(math.nan) == "n/a" and fmt(12345.6) == "1.235e+04" and fmt(3) == "3"


# ------------------------------------------------------------------------------------------------------
# (a) DPO displacement
# ------------------------------------------------------------------------------------------------------


def test_dpo_chosen_falling_in_every_seed_is_reproduced() -> None:
    claim = by_key(claims(make_metrics(), make_pairs()))["a"]
    assert claim.verdict == REPRODUCED
    m = claim.measured
    assert m["run"] == "dpo" and m["n_seeds"] == 3 and m["seeds_displaced"] == 3
    # ELBO at steps 0, 4, 8, 10: last - step 0 = 10 * slope; margin 0 at step 0, 0.5 at step 10.
    assert m["delta_elbo_chosen"]["mean"] == pytest.approx(-1.0)
    assert m["delta_margin"]["mean"] == pytest.approx(0.5)
    assert m["delta_proxy_chosen"]["mean"] == pytest.approx(-1.0)
    assert m["delta_elbo_chosen"]["n"] == 3


@pytest.mark.parametrize(("slopes", "expected", "count"), [
    ((-0.1, 0.1, 0.1), NOT_REPRODUCED, 1),  # 1 of 3 seeds: less than half
    ((-0.1, -0.1, 0.1), PARTLY, 2),  # 2 of 3: at least half
    ((0.1, 0.1, 0.1), NOT_REPRODUCED, 0),
])
def test_dpo_displacement_verdict_counts_seeds(slopes: tuple[float, ...], expected: str, count: int) -> None:
    claim = by_key(claims(make_metrics(dpo_chosen=slopes), make_pairs()))["a"]
    assert claim.verdict == expected
    assert claim.measured["seeds_displaced"] == count


def test_dpo_displacement_needs_the_margin_to_grow() -> None:
    claim = by_key(claims(make_metrics(margin=-0.05), make_pairs()))["a"]
    assert claim.verdict == NOT_REPRODUCED
    assert claim.measured["delta_margin"]["mean"] == pytest.approx(-0.5)


def test_elbo_change_uses_the_measured_steps_only() -> None:
    """ELBO missing at the last step: the change runs to the last step where it was measured (8)."""
    frame = make_metrics(elbo_last=False)
    assert frame.loc[(frame["run"] == "dpo") & (frame["step"] == STEPS), "elbo_chosen"].isna().all()
    claim = by_key(claims(frame, make_pairs()))["a"]
    assert claim.measured["delta_elbo_chosen"]["mean"] == pytest.approx(-0.8)
    assert claim.measured["delta_margin"]["mean"] == pytest.approx(0.5)  # the margin is logged every step
    assert claim.verdict == REPRODUCED


def test_proxy_disagreeing_with_elbo_is_reported_not_judged() -> None:
    claim = by_key(claims(make_metrics(proxy=0.05), make_pairs()))["a"]
    assert claim.verdict == REPRODUCED
    assert claim.measured["delta_proxy_chosen"]["mean"] == pytest.approx(0.5)
    assert claim.measured["proxy_agrees"] == 0


# ------------------------------------------------------------------------------------------------------
# (b), (c) pair snapshots
# ------------------------------------------------------------------------------------------------------


def test_grad_norm_falling_with_margin_is_reproduced() -> None:
    claim = by_key(claims(make_metrics(), make_pairs(grad="falling")))["b"]
    assert claim.verdict == REPRODUCED
    assert claim.measured["seeds_negative"] == 3
    assert claim.measured["spearman"]["mean"] == pytest.approx(-1.0)
    assert claim.measured["top_quintile_grad_norm"] < claim.measured["bottom_quintile_grad_norm"]
    # only margin > 0 counts: pairs 0 (margin < 0 at every step) and 1 (0 at step 0) are left out
    assert all(row["n_points"] == 3 * 8 - 4 for row in claim.measured["per_seed"])


def test_grad_norm_rising_with_margin_is_not_reproduced() -> None:
    claim = by_key(claims(make_metrics(), make_pairs(grad="rising")))["b"]
    assert claim.verdict == NOT_REPRODUCED
    assert claim.measured["seeds_negative"] == 0


@pytest.mark.parametrize(("slope", "noise", "expected"), [
    (0.5, 0.0, REPRODUCED),  # r = 1 in every seed
    (0.05, 0.08, PARTLY),  # weak but positive in every seed (checked below)
    (-0.5, 0.0, NOT_REPRODUCED),
])
def test_similarity_correlation_rules(slope: float, noise: float, expected: str) -> None:
    claim = by_key(claims(make_metrics(), make_pairs(similarity_slope=slope, noise=noise)))["c"]
    rs = [row["pearson"] for row in claim.measured["per_seed"]]
    if expected == PARTLY:  # the noisy case must really be in the Partly band for the test to mean anything
        assert all(r > 0 for r in rs) and min(rs) <= 0.3
    assert claim.verdict == expected
    assert claim.measured["by_kind"]["clear_cut"]["margin"] > claim.measured["by_kind"]["near_tie"]["margin"]


def test_no_pair_snapshots_is_not_tested() -> None:
    judged = by_key(claims(make_metrics(), pd.DataFrame()))
    assert judged["b"].verdict == NOT_TESTED and judged["c"].verdict == NOT_TESTED
    judged = by_key(claims(make_metrics(), make_pairs(loss="sft")))  # snapshots, but none of a dpo run
    assert judged["b"].verdict == NOT_TESTED


# ------------------------------------------------------------------------------------------------------
# (d) PG-DPO and Gamma
# ------------------------------------------------------------------------------------------------------


def test_gamma_positive_share_and_first_order_accuracy() -> None:
    # steps 1..10 cycle (1, 1, -1): + + - + + - + + - +  -> 7 of 10 positive; step 0 is NaN and not counted
    claim = by_key(claims(make_metrics(gamma_first=(1.0, 1.0, -1.0)), make_pairs()))["d"]
    m = claim.measured
    assert [row["gamma_positive_share"] for row in m["per_seed"]] == pytest.approx([0.7, 0.7, 0.7])
    assert [row["gamma_steps"] for row in m["per_seed"]] == [10, 10, 10]
    assert claim.verdict == REPRODUCED
    assert m["gamma_first_vs_realised_pearson"] == pytest.approx(1.0)
    assert m["gamma_median_relative_error"] == pytest.approx(0.1 / 1.1)
    assert m["seeds_above_dpo"] == 3 and m["seeds_compared_with_dpo"] == 3
    assert m["gamma_share_by_run"]["sft"]["mean"] == pytest.approx(1.0)
    assert "dpo" not in m["gamma_share_by_run"]  # Gamma of dpo against itself is not defined


def test_gamma_share_ignores_unmeasured_steps() -> None:
    frame = make_metrics(gamma_first=(1.0, -1.0))
    mask = (frame["run"] == "pgdpo") & frame["step"].isin([1, 3, 5])  # three of the positive steps lost
    frame.loc[mask, ["gamma_first_order", "gamma_realised"]] = math.nan
    claim = by_key(claims(frame, make_pairs()))["d"]
    # positives at odd steps 1,3,5,7,9 -> 7 and 9 remain; negatives at 2,4,6,8,10 -> 2 of 7 measured steps
    assert claim.measured["per_seed"][0]["gamma_positive_share"] == pytest.approx(2 / 7)
    assert claim.measured["per_seed"][0]["gamma_steps"] == 7


@pytest.mark.parametrize(("chosen", "gamma_first", "expected"), [
    ((0.1, 0.1, 0.1), (1.0, 1.0, -1.0), REPRODUCED),
    ((0.1, 0.1, 0.1), (1.0, -1.0, -1.0), PARTLY),  # rising, but Gamma > 0 in 4 of 10 steps only
    ((-0.1, 0.1, 0.1), (1.0, 1.0, -1.0), PARTLY),  # Gamma mostly positive, but one seed falls
    ((-0.1, -0.1, -0.1), (-1.0,), NOT_REPRODUCED),
])
def test_pgdpo_verdict(chosen: tuple[float, ...], gamma_first: tuple[float, ...], expected: str) -> None:
    claim = by_key(claims(make_metrics(pgdpo_chosen=chosen, gamma_first=gamma_first), make_pairs()))["d"]
    assert claim.verdict == expected


def test_pgdpo_compared_with_dpo_per_seed() -> None:
    claim = by_key(claims(make_metrics(dpo_chosen=(-0.1, 0.3, -0.1)), make_pairs()))["d"]
    assert [row["above_dpo"] for row in claim.measured["per_seed"]] == [True, False, True]
    assert claim.measured["seeds_above_dpo"] == 2


# ------------------------------------------------------------------------------------------------------
# (e) the K sweep
# ------------------------------------------------------------------------------------------------------


def test_k_sweep_monotone_ranges_are_reproduced_and_match_the_paper() -> None:
    frame = make_metrics()
    assert list(sweep_values(frame, "k1")) == [2.0, 10.0, 20.0]  # the base pgdpo run joins at K1 = 10
    assert sweep_values(frame, "k2") == {5.0: ["pgdpo k2=5"], 10.0: ["pgdpo"]}
    claim = by_key(claims(frame, make_pairs()))["e"]
    m = claim.measured
    assert claim.verdict == REPRODUCED
    assert m["alpha_widens"] is True and m["gamma_widens"] is True
    alpha = {row["k"]: row for row in m["alpha"]}
    assert (alpha[2.0]["min"], alpha[2.0]["max"]) == pytest.approx((0.5, 0.6))
    assert (alpha[20.0]["min"], alpha[20.0]["max"]) == pytest.approx((0.5, 1.0))
    assert all(row["matches_paper"] for row in m["alpha"] + m["gamma"])
    assert alpha[10.0]["seeds"] == [0]  # the base run is compared on the sweep's seed only
    assert alpha[2.0]["mean_q05"] >= 0.5 and alpha[2.0]["mean_q95"] <= 0.6


def test_k_sweep_not_monotone() -> None:
    frame = make_metrics()
    k20 = frame["run"] == "pgdpo k1=20"
    frame.loc[k20, "alpha_max"] = 0.55  # K1 = 20 now narrower than K1 = 10
    frame.loc[k20, "alpha_mean"] = 0.52
    claim = by_key(claims(frame, make_pairs()))["e"]
    assert claim.measured["alpha_widens"] is False and claim.measured["gamma_widens"] is True
    assert claim.verdict == PARTLY
    assert "differ from the paper" in claim.detail and "alpha(K=20)" in claim.detail

    k5 = frame["run"] == "pgdpo k2=5"
    frame.loc[k5, "gamma_mean"] = frame.loc[k5, "step"] / STEPS  # K2 = 5 now wider than K2 = 10
    claim = by_key(claims(frame, make_pairs()))["e"]
    assert claim.verdict == NOT_REPRODUCED


def test_k_sweep_base_seeds_outside_the_sweep_do_not_widen_its_range() -> None:
    frame = make_metrics()
    wide = (frame["run"] == "pgdpo") & (frame["seed"] == 1)
    frame.loc[wide, "alpha_mean"] = frame.loc[wide, "step"] / STEPS  # would break monotonicity if pooled in
    claim = by_key(claims(frame, make_pairs()))["e"]
    assert claim.measured["alpha_widens"] is True


def test_k_sweep_judges_the_batch_means_not_the_saturated_extremes() -> None:
    """One pair with r_l + eps near 0 saturates alpha's min/max at 0 and 1 for every K: not the judged width."""
    frame = make_metrics()
    pgdpo = frame["loss"] == "pgdpo"
    frame.loc[pgdpo, ["alpha_min", "gamma_min"]] = 0.0
    frame.loc[pgdpo, ["alpha_max", "gamma_max"]] = 1.0
    claim = by_key(claims(frame, make_pairs()))["e"]
    assert claim.verdict == REPRODUCED
    assert all(row["saturated"] and row["full_width"] == 1.0 for row in claim.measured["alpha"])
    assert all(row["matches_paper"] is False for row in claim.measured["alpha"] if row["k"] != 20.0)
    assert "Absolute ranges differ from the paper's" in claim.detail


def test_missing_sweep_is_not_tested() -> None:
    claim = by_key(claims(make_metrics(sweep=False), make_pairs()))["e"]
    assert claim.verdict == NOT_TESTED
    assert claim.measured["sweep_run"] is False
    assert "not run" in claim.detail


# ------------------------------------------------------------------------------------------------------
# The files
# ------------------------------------------------------------------------------------------------------


def assert_png(path: Path) -> None:
    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_write_report_writes_figures_and_every_section(tmp_path: Path) -> None:
    out = tmp_path / "lab"
    report = write_report(out, make_metrics(), make_pairs(), CONFIG)
    assert report == out / REPORT_FILE
    for name in (FIG1A, FIG1B, FIG2, FIG_LOSSES, FIG_SWEEP, FIG_GAMMA):
        assert_png(out / name)
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary files
    text = report.read_text(encoding="utf-8")
    for key in "abcde":
        assert f"## ({key}) " in text
    for claim in claims(make_metrics(), make_pairs()):
        assert f"Verdict: **{claim.verdict}** — {claim.detail}" in text
        assert f"**Rule.** {claim.rule}" in text
    assert "## Per-loss summary" in text and "## Verdicts" in text
    assert "`vbench-pref lab --steps 10`" in text and "12.3 s" in text
    assert "81.7%" in text and "76.9%" in text
    for name in (FIG1A, FIG1B, FIG2, FIG_LOSSES, FIG_SWEEP, FIG_GAMMA):
        assert f"]({name})" in text
    assert "nan" not in text.replace("n/a", "")  # gaps are written n/a, never a raw nan


def test_report_is_deterministic(tmp_path: Path) -> None:
    first = write_report(tmp_path / "one", make_metrics(), make_pairs(), CONFIG).read_bytes()
    shuffled_metrics = make_metrics().sample(frac=1.0, random_state=3)
    shuffled_pairs = make_pairs().sample(frac=1.0, random_state=4)
    second = write_report(tmp_path / "two", shuffled_metrics, shuffled_pairs, CONFIG).read_bytes()
    assert first == second


def test_missing_sweep_writes_no_sweep_figure_and_says_so(tmp_path: Path) -> None:
    out = tmp_path / "lab"
    write_report(out, make_metrics(), make_pairs(), CONFIG)
    assert (out / FIG_SWEEP).is_file()
    report = write_report(out, make_metrics(sweep=False), make_pairs(), CONFIG)  # rerun without the sweep
    assert not (out / FIG_SWEEP).exists()  # the earlier run's figure is not left behind
    text = report.read_text(encoding="utf-8")
    assert "The K sweep was not run" in text
    assert f"Verdict: **{NOT_TESTED}**" in text
    assert f"]({FIG_SWEEP})" not in text


def test_no_pairs_skips_the_scatter_figures(tmp_path: Path) -> None:
    report = write_report(tmp_path, make_metrics(), pd.DataFrame(), CONFIG)
    assert not (tmp_path / FIG1A).exists() and not (tmp_path / FIG1B).exists()
    assert f"figure {FIG1A} not drawn" in report.read_text(encoding="utf-8")
    assert_png(tmp_path / FIG2)


def test_round_trip_through_csv(tmp_path: Path) -> None:
    """The lab writes CSV; read back (seed and step as ints, NaN as empty cells) gives the same verdicts."""
    metrics, pairs = make_metrics(dpo_chosen=(-0.1, 0.1, -0.1)), make_pairs()
    metrics.to_csv(tmp_path / "metrics.csv", index=False, float_format="%.9g")
    pairs.to_csv(tmp_path / "pairs.csv", index=False, float_format="%.9g")
    read = [c.verdict for c in claims(pd.read_csv(tmp_path / "metrics.csv"), pd.read_csv(tmp_path / "pairs.csv"))]
    assert read == [c.verdict for c in claims(metrics, pairs)]
    write_report(tmp_path / "out", pd.read_csv(tmp_path / "metrics.csv"), pd.read_csv(tmp_path / "pairs.csv"), {})


def test_only_dpo_and_no_optional_columns(tmp_path: Path) -> None:
    """A lab without pgdpo and without the Gamma/alpha columns: (d), (e) are not tested, the rest still works."""
    frame = make_metrics().query("run == 'dpo'").drop(columns=["gamma_first_order", "gamma_realised", "alpha_min"])
    judged = by_key(claims(frame, make_pairs()))
    assert judged["a"].verdict == REPRODUCED
    assert judged["d"].verdict == NOT_TESTED and judged["e"].verdict == NOT_TESTED
    write_report(tmp_path, frame, make_pairs(), CONFIG)
    assert not (tmp_path / FIG_GAMMA).exists()
    assert_png(tmp_path / FIG2)


def test_loss_summary_per_base_run() -> None:
    table = {row["run"]: row for row in loss_summary(make_metrics())}
    assert sorted(table) == ["dpo", "pgdpo", "sft"]  # sweep runs are not base runs
    assert table["dpo"]["delta_elbo_chosen"]["mean"] == pytest.approx(-1.0)
    assert table["sft"]["delta_elbo_rejected"]["mean"] == pytest.approx(1.0)
    assert table["pgdpo"]["final_margin"]["mean"] == pytest.approx(0.5)
    assert table["pgdpo"]["final_accuracy"]["mean"] == pytest.approx(0.9)
    assert table["pgdpo"]["n_seeds"] == 3


def test_missing_key_columns_are_an_error() -> None:
    with pytest.raises(VbenchPrefError, match="seed"):
        claims(make_metrics().drop(columns=["seed"]), make_pairs())
    with pytest.raises(VbenchPrefError, match="empty"):
        claims(make_metrics().iloc[0:0], make_pairs())
