"""Figures and an honest Markdown report from the likelihood-displacement lab's measured tables.

The lab trains a tiny conditional diffusion model with several preference losses from one reference and
records its training dynamics (``metrics``: one row per run, seed and step; ``pairs``: per-pair snapshots).
This module turns those tables into the figures of the PG-DPO paper it tests (Fig. 1a/1b, 2, 8/9 and the
Gamma statistic of Sec. 4 / App. A.4) and into ``report.md``, one section per claim.

Each verdict comes from an explicit rule written next to it in the report, applied to per-seed numbers, so a
reader can check it and a rerun with other seeds can overturn it; the rules never look at the figures.
``claims`` is a pure function so the lab and the tests read the verdicts without parsing Markdown.

Figures follow ``vbench_pref.train.plots``: ``matplotlib.figure.Figure`` on the Agg canvas (no pyplot, so a
caller's backend is never switched and no figure is left open), imported lazily, written atomically.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from vbench_pref.atomic import atomic_path, atomic_write_text
from vbench_pref.errors import VbenchPrefError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

REPORT_FILE = "report.md"
FIG1A = "fig1a_gradnorm_vs_margin.png"
FIG1B = "fig1b_similarity_vs_margin.png"
FIG2 = "fig2_likelihood.png"
FIG_LOSSES = "fig_losses_likelihood.png"
FIG_SWEEP = "fig8_9_k_sweep.png"
FIG_GAMMA = "fig_gamma.png"
FIGURES = (FIG1A, FIG1B, FIG2, FIG_LOSSES, FIG_SWEEP, FIG_GAMMA)

REPRODUCED = "Reproduced"
PARTLY = "Partly"
NOT_REPRODUCED = "Not reproduced"
NOT_TESTED = "Not tested"  # the data the rule needs is absent (e.g. the K sweep was not run)

# The paper's ranges (App. A.5.3, captions of Fig. 8 and Fig. 9), keyed by the K value.
PAPER_ALPHA_RANGE: dict[float, tuple[float, float]] = {2.0: (0.5, 0.6), 10.0: (0.5, 0.8), 20.0: (0.5, 1.0)}
PAPER_GAMMA_RANGE: dict[float, tuple[float, float]] = {10.0: (0.0, 0.5), 5.0: (0.2, 0.5)}
# A measured range "matches" the paper's when both endpoints are within this distance of the paper's.
RANGE_TOLERANCE = 0.05
# Claim (c): r above this in every seed is a reproduction of the paper's "strong positive correlation".
SIMILARITY_R = 0.3

METRIC_KEYS = ("run", "loss", "seed", "step")
METRIC_VALUES = (
    "k1", "k2", "train_loss", "margin", "accuracy", "proxy_chosen", "proxy_rejected", "elbo_chosen",
    "elbo_rejected", "grad_norm", "dpo_grad_norm", "alpha_min", "alpha_mean", "alpha_max", "gamma_min",
    "gamma_mean", "gamma_max", "gamma_first_order", "gamma_realised",
)
PAIR_COLUMNS = ("run", "loss", "seed", "step", "pair", "kind", "margin", "dpo_grad_norm", "similarity")

_DPI = 110
_SWEEP_NAME = re.compile(r"\b(k[12])=([-+0-9.eE]+)")


@dataclass
class Claim:
    """One of the paper's claims as tested here: what the paper says, what was measured, the verdict.

    ``measured`` holds plain Python values (numbers, lists, dicts; NaN where a number could not be
    computed) so it can be dumped as JSON; ``detail`` is one or two sentences saying why the verdict
    is what it is; ``rule`` is the decision rule in words, printed in the report next to the verdict.
    """

    key: str
    title: str
    paper: str
    measured: dict[str, Any]
    verdict: str
    detail: str
    rule: str = ""
    figures: tuple[str, ...] = field(default_factory=tuple)


# ----------------------------------------------------------------------------------------------------------
# Small numeric helpers: everything NaN-aware, because the ELBO is only measured on some steps.
# ----------------------------------------------------------------------------------------------------------


def _finite(values: Iterable[Any]) -> np.ndarray:
    array = np.asarray(list(values), dtype=float)
    return array[np.isfinite(array)]


def stat(values: Iterable[Any]) -> dict[str, float | int]:
    """Mean, sample std, min, max and n of the finite values (NaN for what n cannot support)."""
    array = _finite(values)
    n = int(array.size)
    return {
        "mean": float(array.mean()) if n else math.nan,
        "std": float(array.std(ddof=1)) if n > 1 else math.nan,
        "min": float(array.min()) if n else math.nan,
        "max": float(array.max()) if n else math.nan,
        "n": n,
    }


def pearson(x: Iterable[Any], y: Iterable[Any]) -> float:
    """Pearson r over the pairs where both are finite; NaN with fewer than 3 pairs or a constant side."""
    a = np.asarray(list(x), dtype=float)
    b = np.asarray(list(y), dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if a.size < 3:
        return math.nan
    a = a - a.mean()
    b = b - b.mean()
    denominator = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    if denominator == 0.0 or not math.isfinite(denominator):
        return math.nan
    return float((a * b).sum() / denominator)


def spearman(x: Iterable[Any], y: Iterable[Any]) -> float:
    """Spearman rho (Pearson r of average ranks), NaN-aware; no scipy needed."""
    a = np.asarray(list(x), dtype=float)
    b = np.asarray(list(y), dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    ranks_a = pd.Series(a[keep]).rank(method="average").to_numpy()
    ranks_b = pd.Series(b[keep]).rank(method="average").to_numpy()
    return pearson(ranks_a, ranks_b)


def fmt(value: Any) -> str:
    """A number with 4 significant digits; NaN/None as n/a (never a misleading 0)."""
    if value is None:
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    number = float(value)
    if not math.isfinite(number):
        return "n/a"
    text = f"{number:.4g}"
    return "0" if text in ("-0", "0") else text


def fmt_stat(summary: dict[str, float | int]) -> str:
    """``mean ± std (min … max, n = k)`` for a per-seed summary."""
    if not summary["n"]:
        return "n/a (n = 0)"
    return (f"{fmt(summary['mean'])} ± {fmt(summary['std'])} "
            f"(min {fmt(summary['min'])}, max {fmt(summary['max'])}; n = {summary['n']})")


def fmt_cell(summary: dict[str, float | int]) -> str:
    """A table cell over seeds: ``mean ± std``, or the single value with ``(n = 1)``, or n/a."""
    if not summary["n"]:
        return "n/a"
    if summary["n"] == 1:
        return f"{fmt(summary['mean'])} (n = 1)"
    return f"{fmt(summary['mean'])} ± {fmt(summary['std'])}"


def _pct(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{100.0 * value:.1f}%"


# ----------------------------------------------------------------------------------------------------------
# Reading the tables
# ----------------------------------------------------------------------------------------------------------


def is_sweep_run(run: str) -> bool:
    """A K-sweep run (``"pgdpo k1=2"``): its name carries a ``k1=`` or ``k2=`` suffix."""
    return "k1=" in run or "k2=" in run


def normalise_metrics(metrics: pd.DataFrame) -> pd.DataFrame:
    """The metrics table with the key columns typed and every value column present (NaN if absent).

    A column the lab did not write (an older lab, a loss without alpha) is a gap, not an error: the claims
    that need it say "Not tested". Only the keys that identify a row are required.
    """
    missing = [column for column in METRIC_KEYS if column not in metrics.columns]
    if missing:
        raise VbenchPrefError(f"lab metrics lack the column(s) {', '.join(missing)}")
    if metrics.empty:
        raise VbenchPrefError("lab metrics are empty: no run has logged a step")
    frame = metrics.copy()
    frame["run"] = frame["run"].astype(str)
    frame["loss"] = frame["loss"].astype(str)
    frame["seed"] = pd.to_numeric(frame["seed"], errors="raise").astype(int)
    frame["step"] = pd.to_numeric(frame["step"], errors="raise").astype(int)
    for column in METRIC_VALUES:
        if column in frame.columns:
            values = pd.to_numeric(frame[column], errors="coerce").astype(float)
            frame[column] = values.where(np.isfinite(values))
        else:
            frame[column] = math.nan
    return frame.sort_values(["run", "seed", "step"], kind="mergesort").reset_index(drop=True)


def normalise_pairs(pairs: pd.DataFrame | None) -> pd.DataFrame:
    """The pair snapshots typed like the metrics; an absent or column-less table is an empty frame."""
    if pairs is None or pairs.empty or any(c not in pairs.columns for c in ("run", "loss", "seed", "step", "margin")):
        return pd.DataFrame({column: pd.Series(dtype=object if column in ("run", "loss", "kind") else float)
                             for column in PAIR_COLUMNS})
    frame = pairs.copy()
    frame["run"] = frame["run"].astype(str)
    frame["loss"] = frame["loss"].astype(str)
    frame["seed"] = pd.to_numeric(frame["seed"], errors="raise").astype(int)
    frame["step"] = pd.to_numeric(frame["step"], errors="raise").astype(int)
    frame["kind"] = frame["kind"].astype(str) if "kind" in frame.columns else "n/a"
    for column in ("pair", "margin", "dpo_grad_norm", "similarity"):
        if column in frame.columns:
            values = pd.to_numeric(frame[column], errors="coerce").astype(float)
            frame[column] = values.where(np.isfinite(values))
        else:
            frame[column] = math.nan
    return frame.sort_values(["run", "seed", "step", "pair"], kind="mergesort").reset_index(drop=True)


def base_runs(metrics: pd.DataFrame) -> list[str]:
    """The runs of the loss comparison (no K-sweep suffix), sorted by name."""
    return sorted(run for run in metrics["run"].unique() if not is_sweep_run(run))


def base_run(metrics: pd.DataFrame, loss: str) -> str | None:
    """The base run of a loss: the one named like the loss, else the first such run by name; None if none."""
    runs = set(metrics.loc[metrics["loss"] == loss, "run"])
    candidates = sorted(run for run in runs if not is_sweep_run(run))
    if not candidates:
        return None
    return loss if loss in candidates else candidates[0]


def _run_rows(metrics: pd.DataFrame, run: str | None) -> pd.DataFrame:
    if run is None:
        return metrics.iloc[0:0]
    return metrics[metrics["run"] == run]


def _seed_change(rows: pd.DataFrame, column: str) -> float:
    """Last finite value minus the first (step 0 when measured there) for one seed's rows, sorted by step."""
    values = rows[["step", column]].dropna()
    if len(values) < 2:
        return math.nan
    values = values.sort_values("step", kind="mergesort")
    return float(values[column].iloc[-1] - values[column].iloc[0])


def _seed_last(rows: pd.DataFrame, column: str) -> float:
    values = rows[["step", column]].dropna().sort_values("step", kind="mergesort")
    return float(values[column].iloc[-1]) if len(values) else math.nan


def per_seed_changes(metrics: pd.DataFrame, run: str | None, columns: Sequence[str]) -> dict[int, dict[str, float]]:
    """For each seed of a run: the change (last finite − first finite) of each column."""
    rows = _run_rows(metrics, run)
    return {int(seed): {column: _seed_change(group, column) for column in columns}
            for seed, group in rows.groupby("seed", sort=True)}


def curves(metrics: pd.DataFrame, run: str | None, column: str) -> pd.DataFrame:
    """Change since the first measured step, per seed, aggregated over seeds: index step, mean/min/max/n.

    Only steps where the column was measured in at least one seed are kept, so an ELBO measured every
    k steps is drawn at those steps rather than as a line through gaps.
    """
    rows = _run_rows(metrics, run)
    per_seed = []
    for seed, group in rows.groupby("seed", sort=True):
        values = group[["step", column]].dropna().sort_values("step", kind="mergesort")
        if values.empty:
            continue
        series = pd.Series(values[column].to_numpy() - values[column].iloc[0], index=values["step"].to_numpy(),
                           name=int(seed))
        per_seed.append(series[~series.index.duplicated(keep="last")])
    if not per_seed:
        return pd.DataFrame(columns=["mean", "min", "max", "n"], dtype=float)
    table = pd.concat(per_seed, axis=1).sort_index()
    return pd.DataFrame({"mean": table.mean(axis=1), "min": table.min(axis=1), "max": table.max(axis=1),
                         "n": table.notna().sum(axis=1)})


def _run_k(metrics: pd.DataFrame, run: str, which: str) -> float | None:
    """A run's K value: its own ``k1``/``k2`` column where finite, else the number after ``k1=`` in its name."""
    column = metrics.loc[metrics["run"] == run, which].dropna()
    if len(column):
        return float(column.iloc[0])
    for name, text in _SWEEP_NAME.findall(run):
        if name == which:
            try:
                value = float(text)
            except ValueError:
                return None
            return value if math.isfinite(value) else None
    return None


def sweep_values(metrics: pd.DataFrame, which: str) -> dict[float, list[str]]:
    """The K sweep of ``which`` ("k1" or "k2"): runs grouped by K value, sorted by K then name; {} if not run.

    The sweep runs are those named with ``k1=`` (``k2=``); the lab leaves out the sweep value equal to the
    base setting, so the base run of the same loss joins the sweep at its own K (the middle point of Fig. 8,
    K1 = 10, is normally the base pgdpo run). Without any named sweep run the sweep was not run: {}.
    """
    named = sorted(run for run in metrics["run"].unique() if f"{which}=" in run)
    groups: dict[float, list[str]] = {}
    for run in named:
        value = _run_k(metrics, run, which)
        if value is not None:
            groups.setdefault(value, []).append(run)
    if not groups:
        return {}
    for loss in sorted(set(metrics.loc[metrics["run"].isin(named), "loss"])):
        base = base_run(metrics, loss)
        value = _run_k(metrics, base, which) if base is not None else None
        if base is not None and value is not None and value not in groups:
            groups[value] = [base]
    return dict(sorted(groups.items()))


def sweep_frames(metrics: pd.DataFrame, which: str) -> dict[float, pd.DataFrame]:
    """The rows of each K value of a sweep, restricted to the seeds the named sweep runs have.

    The lab runs the sweep on one seed; pooling the base run's other seeds into its range would make it
    look wider only because it has more data, so the base run is compared on the sweep's seeds (all its
    seeds if it shares none).
    """
    groups = sweep_values(metrics, which)
    named = metrics["run"].map(lambda run: f"{which}=" in run).astype(bool)
    seeds = set(metrics.loc[named, "seed"])
    frames = {}
    for value, runs in groups.items():
        rows = metrics[metrics["run"].isin(runs)]
        shared = rows[rows["seed"].isin(seeds)]
        frames[value] = shared if len(shared) else rows
    return frames


# ----------------------------------------------------------------------------------------------------------
# The claims
# ----------------------------------------------------------------------------------------------------------

_QUOTE_A = ("Fig. 2(a): \"VideoDPO suffers from likelihood displacement\"; App. A.5.2: \"the solid blue line "
            "(Chosen) also degrades over time, or at best, stagnates ... While the difference (lower subplot) may "
            "slowly increase, this comes at the cost of the model's absolute ability to generate the preferred "
            "sample.\"")
_QUOTE_B = ("Fig. 1(a): \"Suboptimal Maximization: The gradient norm of DPO vanishes for large reward margins, "
            "stifling further optimization of chosen samples as the learning signal for 'easy' pairs disappears.\"")
_QUOTE_C = ("Fig. 1(b): \"Optimization Conflict: A strong positive correlation between reward margin and "
            "similarity factor (defined as Δ log p(x^w_{t-1}|x^w_t) − Δ log p(x^l_{t-1}|x^l_t)). "
            "Here, a low factor "
            "leads to nearly identical updates for chosen and rejected samples.\"")
_QUOTE_D = ("Fig. 2(b): \"Our PG-DPO maintains a consistent upward trend for chosen samples\"; Sec. 4 / Eq. 10 "
            "and App. A.4 Eq. 35: Γ(θ, τ+1) = −η ∇ log p(x^w) · (∇L_ours − ∇L_VideoDPO) "
            "\"is positive in the "
            "majority of training steps: 81.7% for the Wanx2.1-14B model ... and 76.9% for VideoCrafter-v2.\"")
_QUOTE_E = ("App. A.5.3, Fig. 8: \"(a) K_1 = 2, α ∈ [0.5, 0.6]. (b) K_1 = 10, α ∈ [0.5, 0.8]. (c) K_1 = 20, "
            "α ∈ [0.5, 1]\"; Fig. 9: \"(a) K_2 = 10, γ ∈ (0, 0.5). (b) K_2 = 5, γ ∈ [0.2, 0.5].\" (Eq. 7: "
            "α = σ[K_1 (r^w − r^l)/(r^l + ε)]; Eq. 8: γ = σ[−K_2 (r^w − r^l)/(r^l + ε)].)")

RULE_A = ("Per seed of the dpo run, Δelbo_chosen = last − step 0 and Δmargin = last − first step. "
          f"**{REPRODUCED}** if Δelbo_chosen < 0 and Δmargin > 0 in every seed; **{PARTLY}** if in at least half "
          f"of the seeds; else **{NOT_REPRODUCED}**.")
RULE_B = ("Over the dpo run's pair snapshots with margin > 0: Spearman ρ(margin, dpo_grad_norm) per seed, and the "
          "mean dpo_grad_norm of the top vs the bottom margin quintile (all seeds pooled). "
          f"**{REPRODUCED}** if ρ < 0 in every seed and top-quintile mean < bottom-quintile mean; **{PARTLY}** if "
          f"exactly one of the two holds; else **{NOT_REPRODUCED}**.")
RULE_C = (f"Pearson r(margin, similarity) per seed over the dpo run's pair snapshots. **{REPRODUCED}** if "
          f"r > {SIMILARITY_R} in every seed; **{PARTLY}** if r > 0 in every seed; else **{NOT_REPRODUCED}**.")
RULE_D = ("Per seed of the pgdpo run: Δelbo_chosen = last − step 0, and the share of training steps with "
          f"gamma_first_order > 0 (steps where it is measured). **{REPRODUCED}** if Δelbo_chosen > 0 in every seed "
          f"and the share is > 50% in every seed; **{PARTLY}** if exactly one of the two holds; else "
          f"**{NOT_REPRODUCED}**. The comparison with dpo and the first-order vs realised Γ are reported, not judged.")
RULE_E = ("The K1 (K2) sweep is the runs named with `k1=` (`k2=`) plus the base run of the same loss at its own K, "
          "on the sweep runs' seeds. Per K value (those seeds and all steps pooled), the width of the range = "
          "95% − 5% "
          "quantile of the per-step batch means (robust: in Eq. 7/8 a single pair with r^l + ε near 0 sends the "
          "sigmoid to 0 or 1, so the per-step min and max saturate whatever K is). The range *widens* with K when, "
          "ordered by K, the widths never decrease and the largest K's width is at least 1.1 times the smallest K's. "
          f"**{REPRODUCED}** if the alpha range widens with K1 and the gamma range widens with K2; **{PARTLY}** "
          f"if only one does (or only one sweep was run and it does); **{NOT_REPRODUCED}** if neither does; "
          f"**{NOT_TESTED}** if "
          "no sweep has two K values. The min–max ranges are compared with the paper's (match = both endpoints "
          f"within {RANGE_TOLERANCE}) but do not enter the verdict.")


def _ratio_verdict(ok: int, n: int) -> str:
    if n == 0:
        return NOT_TESTED
    if ok == n:
        return REPRODUCED
    if 2 * ok >= n:
        return PARTLY
    return NOT_REPRODUCED


def _two_part_verdict(first: bool, second: bool) -> str:
    if first and second:
        return REPRODUCED
    if first or second:
        return PARTLY
    return NOT_REPRODUCED


def claim_dpo_displacement(metrics: pd.DataFrame) -> Claim:
    """(a) Fig. 2a: under DPO the chosen ELBO falls while the margin grows, seed by seed."""
    run = base_run(metrics, "dpo")
    changes = per_seed_changes(metrics, run, ("elbo_chosen", "elbo_rejected", "margin", "proxy_chosen"))
    per_seed = []
    for seed, change in changes.items():
        displaced = bool(change["elbo_chosen"] < 0 and change["margin"] > 0)  # NaN compares False: not counted
        per_seed.append({"seed": seed, "delta_elbo_chosen": change["elbo_chosen"],
                         "delta_elbo_rejected": change["elbo_rejected"], "delta_margin": change["margin"],
                         "delta_proxy_chosen": change["proxy_chosen"], "displaced": displaced})
    n = len(per_seed)
    ok = sum(row["displaced"] for row in per_seed)
    measured = {
        "run": run, "n_seeds": n, "seeds_displaced": ok, "per_seed": per_seed,
        "delta_elbo_chosen": stat(r["delta_elbo_chosen"] for r in per_seed),
        "delta_elbo_rejected": stat(r["delta_elbo_rejected"] for r in per_seed),
        "delta_margin": stat(r["delta_margin"] for r in per_seed),
        "delta_proxy_chosen": stat(r["delta_proxy_chosen"] for r in per_seed),
        "proxy_agrees": sum(bool(r["delta_proxy_chosen"] < 0) == bool(r["delta_elbo_chosen"] < 0) for r in per_seed),
    }
    verdict = _ratio_verdict(ok, n)
    if run is None:
        detail = "No dpo run in the metrics, so the claim could not be tested."
    else:
        detail = (f"Chosen ELBO fell while the margin grew in {ok} of {n} seed(s); the one-timestep proxy moved in the "
                  f"same direction as the ELBO in {measured['proxy_agrees']} of {n}.")
    return Claim("a", "DPO displaces the chosen likelihood while the margin grows", _QUOTE_A, measured, verdict,
                 detail, RULE_A, (FIG2, FIG_LOSSES))


def _dpo_pairs(pairs: pd.DataFrame) -> pd.DataFrame:
    return pairs[(pairs["loss"] == "dpo") & ~pairs["run"].map(is_sweep_run).astype(bool)]


def claim_grad_vanishes(pairs: pd.DataFrame) -> Claim:
    """(b) Fig. 1a: the per-pair DPO gradient norm falls as the pair's margin grows."""
    rows = _dpo_pairs(pairs)
    rows = rows[rows["margin"] > 0]
    rows = rows[rows["dpo_grad_norm"].notna()]
    per_seed = []
    for seed, group in rows.groupby("seed", sort=True):
        per_seed.append({"seed": int(seed), "n_points": len(group),
                         "spearman": spearman(group["margin"], group["dpo_grad_norm"])})
    top = bottom = math.nan
    if len(rows) >= 5:
        low, high = rows["margin"].quantile(0.2), rows["margin"].quantile(0.8)
        bottom = float(rows.loc[rows["margin"] <= low, "dpo_grad_norm"].mean())
        top = float(rows.loc[rows["margin"] >= high, "dpo_grad_norm"].mean())
    n = len(per_seed)
    negative = sum(bool(r["spearman"] < 0) for r in per_seed)
    all_negative = n > 0 and negative == n
    quintile = bool(top < bottom)
    measured = {"n_seeds": n, "n_points": len(rows), "per_seed": per_seed,
                "spearman": stat(r["spearman"] for r in per_seed), "seeds_negative": negative,
                "top_quintile_grad_norm": top, "bottom_quintile_grad_norm": bottom, "top_below_bottom": quintile}
    if n == 0:
        verdict, detail = NOT_TESTED, "No dpo pair snapshots with margin > 0, so the claim could not be tested."
    else:
        verdict = _two_part_verdict(all_negative, quintile)
        detail = (f"ρ(margin, grad norm) < 0 in {negative} of {n} seed(s); top-quintile mean grad norm {fmt(top)} "
                  f"vs bottom-quintile {fmt(bottom)} ({'lower' if quintile else 'not lower'}).")
    return Claim("b", "The DPO gradient norm vanishes as the margin grows", _QUOTE_B, measured, verdict, detail,
                 RULE_B, (FIG1A,))


def claim_similarity(pairs: pd.DataFrame) -> Claim:
    """(c) Fig. 1b: the similarity factor correlates positively with the margin."""
    rows = _dpo_pairs(pairs)
    rows = rows[rows["similarity"].notna() & rows["margin"].notna()]
    per_seed = [{"seed": int(seed), "n_points": len(group), "pearson": pearson(group["margin"], group["similarity"]),
                 "spearman": spearman(group["margin"], group["similarity"])}
                for seed, group in rows.groupby("seed", sort=True)]
    by_kind = {str(kind): {"margin": float(group["margin"].mean()), "similarity": float(group["similarity"].mean()),
                           "n_points": len(group)}
               for kind, group in rows.groupby("kind", sort=True)}
    n = len(per_seed)
    strong = sum(bool(r["pearson"] > SIMILARITY_R) for r in per_seed)
    positive = sum(bool(r["pearson"] > 0) for r in per_seed)
    measured = {"n_seeds": n, "n_points": len(rows), "per_seed": per_seed,
                "pearson": stat(r["pearson"] for r in per_seed),
                "pearson_pooled": pearson(rows["margin"], rows["similarity"]),
                "seeds_above_threshold": strong, "seeds_positive": positive, "by_kind": by_kind}
    if "gradient_distance" in rows:
        # the factor is eta * (beta/2) * (1 - a) * ||grad log p_w - grad log p_l||^2 to first order: the kernel
        # term alone is what the paper's "similar updates for similar samples" is about
        measured["kernel_pearson"] = stat(pearson(group["margin"], group["gradient_distance"])
                                          for _, group in rows.groupby("seed", sort=True))
    if n == 0:
        verdict = NOT_TESTED
        detail = "No dpo pair snapshots with a similarity factor, so the claim could not be tested."
    else:
        verdict = REPRODUCED if strong == n else PARTLY if positive == n else NOT_REPRODUCED
        detail = f"r > {SIMILARITY_R} in {strong} of {n} seed(s), r > 0 in {positive} of {n}."
    return Claim("c", "The similarity factor grows with the margin", _QUOTE_C, measured, verdict, detail, RULE_C,
                 (FIG1B,))


def _gamma_share(rows: pd.DataFrame) -> float:
    values = _finite(rows.loc[rows["step"] > 0, "gamma_first_order"])
    return float((values > 0).mean()) if values.size else math.nan


def claim_pgdpo(metrics: pd.DataFrame) -> Claim:
    """(d) Fig. 2b and Eq. 10/35: PG-DPO raises the chosen likelihood and its Γ is mostly positive."""
    run = base_run(metrics, "pgdpo")
    dpo = base_run(metrics, "dpo")
    changes = per_seed_changes(metrics, run, ("elbo_chosen", "elbo_rejected", "margin"))
    dpo_changes = per_seed_changes(metrics, dpo, ("elbo_chosen",))
    rows = _run_rows(metrics, run)
    per_seed = []
    for seed, group in rows.groupby("seed", sort=True):
        seed = int(seed)
        delta = changes[seed]["elbo_chosen"]
        dpo_delta = dpo_changes.get(seed, {}).get("elbo_chosen", math.nan)
        steps = _finite(group.loc[group["step"] > 0, "gamma_first_order"])
        compared = math.isfinite(delta) and math.isfinite(dpo_delta)
        per_seed.append({"seed": seed, "delta_elbo_chosen": delta,
                         "delta_elbo_rejected": changes[seed]["elbo_rejected"],
                         "gamma_positive_share": _gamma_share(group), "gamma_steps": int(steps.size),
                         "dpo_delta_elbo_chosen": dpo_delta,
                         "above_dpo": bool(delta > dpo_delta) if compared else None})
    n = len(per_seed)
    rising = sum(bool(r["delta_elbo_chosen"] > 0) for r in per_seed)
    mostly_positive = sum(bool(r["gamma_positive_share"] > 0.5) for r in per_seed)
    compared = [r for r in per_seed if r["above_dpo"] is not None]
    pairs_of_gamma = rows.loc[rows["step"] > 0, ["gamma_first_order", "gamma_realised"]].dropna()
    realised = pairs_of_gamma["gamma_realised"].to_numpy()
    first = pairs_of_gamma["gamma_first_order"].to_numpy()
    nonzero = realised != 0
    relative = np.abs(first[nonzero] - realised[nonzero]) / np.abs(realised[nonzero])
    others = {}
    for other in base_runs(metrics):
        shares = stat(_gamma_share(group) for _, group in _run_rows(metrics, other).groupby("seed", sort=True))
        if shares["n"]:
            others[other] = shares
    measured = {
        "run": run, "dpo_run": dpo, "n_seeds": n, "per_seed": per_seed,
        "delta_elbo_chosen": stat(r["delta_elbo_chosen"] for r in per_seed),
        "gamma_positive_share": stat(r["gamma_positive_share"] for r in per_seed),
        "seeds_rising": rising, "seeds_gamma_mostly_positive": mostly_positive,
        "seeds_above_dpo": sum(bool(r["above_dpo"]) for r in compared), "seeds_compared_with_dpo": len(compared),
        "gamma_first_vs_realised_pearson": pearson(first, realised),
        "gamma_median_relative_error": float(np.median(relative)) if relative.size else math.nan,
        "gamma_pairs": len(pairs_of_gamma),
        "gamma_share_by_run": others,
        "paper_gamma_positive_share": {"Wan2.1-14B": 0.817, "VideoCrafter2": 0.769},
    }
    if run is None:
        verdict, detail = NOT_TESTED, "No pgdpo run in the metrics, so the claim could not be tested."
    else:
        verdict = _two_part_verdict(n > 0 and rising == n, n > 0 and mostly_positive == n)
        detail = (f"Chosen ELBO rose in {rising} of {n} seed(s); Γ > 0 in more than half the steps in "
                  f"{mostly_positive} of {n} seed(s) (mean share {_pct(measured['gamma_positive_share']['mean'])}); "
                  "pgdpo's Δelbo_chosen "
                  f"was above dpo's in {measured['seeds_above_dpo']} of {len(compared)} matched seed(s).")
    return Claim("d", "PG-DPO keeps the chosen likelihood rising and Γ is mostly positive", _QUOTE_D, measured,
                 verdict, detail, RULE_D, (FIG2, FIG_GAMMA))


def _range_rows(metrics: pd.DataFrame, which: str, name: str,
                paper: dict[float, tuple[float, float]]) -> list[dict[str, Any]]:
    rows = []
    for value, frame in sweep_frames(metrics, which).items():
        low = _finite(frame[f"{name}_min"])
        high = _finite(frame[f"{name}_max"])
        means = _finite(frame[f"{name}_mean"])
        lo = float(low.min()) if low.size else math.nan
        hi = float(high.max()) if high.size else math.nan
        reference = paper.get(value)
        matches = None
        if reference is not None and math.isfinite(lo) and math.isfinite(hi):
            matches = bool(abs(lo - reference[0]) <= RANGE_TOLERANCE and abs(hi - reference[1]) <= RANGE_TOLERANCE)
        runs = sorted(frame["run"].unique())
        deltas = [change["elbo_chosen"] for run in runs
                  for change in per_seed_changes(frame, run, ("elbo_chosen",)).values()]
        q05 = float(np.quantile(means, 0.05)) if means.size else math.nan
        q95 = float(np.quantile(means, 0.95)) if means.size else math.nan
        rows.append({
            "k": value, "runs": runs, "seeds": sorted(int(seed) for seed in frame["seed"].unique()),
            "min": lo, "max": hi, "full_width": hi - lo, "saturated": bool(lo <= 1e-3 and hi >= 1.0 - 1e-3),
            "mean_q05": q05, "mean_q95": q95, "width": q95 - q05,
            "paper": list(reference) if reference is not None else None, "matches_paper": matches,
            "delta_elbo_chosen": stat(deltas),
        })
    return rows


MEANINGFUL_WIDENING = 1.10  # a few percent is within what one seed's noise moves the quantiles


def widens(rows: Sequence[dict[str, Any]]) -> bool | None:
    """Whether the (5–95%) width never decreases with K and ends at least 10% wider; None if < 2 K values."""
    widths = [row["width"] for row in sorted(rows, key=lambda r: r["k"]) if math.isfinite(row["width"])]
    if len(widths) < 2:
        return None
    return (all(b >= a - 1e-12 for a, b in itertools.pairwise(widths))
            and widths[-1] >= MEANINGFUL_WIDENING * widths[0])


def claim_k_sweep(metrics: pd.DataFrame) -> Claim:
    """(e) Fig. 8/9: K1 sets the range of alpha, K2 the range of gamma."""
    alpha = _range_rows(metrics, "k1", "alpha", PAPER_ALPHA_RANGE)
    gamma = _range_rows(metrics, "k2", "gamma", PAPER_GAMMA_RANGE)
    alpha_widens, gamma_widens = widens(alpha), widens(gamma)
    measured = {"alpha": alpha, "gamma": gamma, "alpha_widens": alpha_widens, "gamma_widens": gamma_widens,
                "sweep_run": bool(alpha or gamma)}
    tested = [flag for flag in (alpha_widens, gamma_widens) if flag is not None]
    if not alpha and not gamma:
        verdict, detail = NOT_TESTED, "The K sweep was not run (no run named with k1= or k2=)."
    elif not tested:
        verdict = NOT_TESTED
        detail = "The K sweep has fewer than two K values with a measured range, so widening cannot be judged."
    else:
        if alpha_widens and gamma_widens:
            verdict = REPRODUCED
        elif any(tested):
            verdict = PARTLY
        else:
            verdict = NOT_REPRODUCED
        words = {True: "widens", False: "does not widen", None: "not tested"}
        def widths(rows: list[dict[str, Any]]) -> str:
            shown = ", ".join(f"{fmt(r['width'])} (K={fmt(r['k'])})" for r in rows)
            return f" [5–95% widths {shown}]" if rows else ""

        detail = (f"alpha range vs K1: {words[alpha_widens]}{widths(alpha)}; gamma range vs K2: "
                  f"{words[gamma_widens]}{widths(gamma)}.")
        differ = [f"{sym}(K={fmt(r['k'])}) measured [{fmt(r['min'])}, {fmt(r['max'])}] vs paper "
                  f"[{fmt(r['paper'][0])}, {fmt(r['paper'][1])}]"
                  for sym, table in (("alpha", alpha), ("gamma", gamma)) for r in table if r["matches_paper"] is False]
        if differ:
            detail += " Absolute ranges differ from the paper's: " + "; ".join(differ) + "."
    return Claim("e", "K1 and K2 set the ranges of alpha and gamma", _QUOTE_E, measured, verdict, detail, RULE_E,
                 (FIG_SWEEP,))


def claims(metrics: pd.DataFrame, pairs: pd.DataFrame | None) -> list[Claim]:
    """The five claims (a)-(e), judged by the rules in this module; a pure function of the two tables."""
    metrics = normalise_metrics(metrics)
    pairs = normalise_pairs(pairs)
    return [claim_dpo_displacement(metrics), claim_grad_vanishes(pairs), claim_similarity(pairs),
            claim_pgdpo(metrics), claim_k_sweep(metrics)]


def loss_summary(metrics: pd.DataFrame) -> list[dict[str, Any]]:
    """Per base run: Δelbo_chosen, Δelbo_rejected, final margin and final accuracy over seeds."""
    metrics = normalise_metrics(metrics)
    table = []
    for run in base_runs(metrics):
        rows = _run_rows(metrics, run)
        changes = per_seed_changes(metrics, run, ("elbo_chosen", "elbo_rejected"))
        seeds = [group for _, group in rows.groupby("seed", sort=True)]
        table.append({
            "run": run, "loss": str(rows["loss"].iloc[0]), "n_seeds": len(seeds),
            "delta_elbo_chosen": stat(c["elbo_chosen"] for c in changes.values()),
            "delta_elbo_rejected": stat(c["elbo_rejected"] for c in changes.values()),
            "final_margin": stat(_seed_last(g, "margin") for g in seeds),
            "final_accuracy": stat(_seed_last(g, "accuracy") for g in seeds),
        })
    return table


# ----------------------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------------------


def _save(figure: Figure, path: Path) -> Path:
    """Write the PNG atomically: a reader (or a crash) never sees a half-written image."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=_DPI, metadata={"Software": None})
    return path


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _band(ax: Axes, table: pd.DataFrame, colour: str, style: str = "-", label: str | None = None,
          width: float = 1.5, band_alpha: float = 0.18) -> None:
    """Mean over seeds as a line (markers when sparse) with the min-max band over seeds."""
    if table.empty:
        return
    steps = table.index.to_numpy(dtype=float)
    if len(steps) > 1:
        ax.fill_between(steps, table["min"].to_numpy(dtype=float), table["max"].to_numpy(dtype=float),
                        color=colour, alpha=band_alpha, linewidth=0)
    marker = "o" if len(steps) <= 40 else None
    ax.plot(steps, table["mean"].to_numpy(dtype=float), color=colour, linestyle=style, linewidth=width,
            marker=marker, markersize=3, label=label)


def _scatter_by_step(ax: Axes, figure: Figure, rows: pd.DataFrame, y: str) -> None:
    markers = {"near_tie": "o", "clear_cut": "^"}
    vmin, vmax = float(rows["step"].min()), float(rows["step"].max())
    mappable = None
    for kind, group in rows.groupby("kind", sort=True):
        mappable = ax.scatter(group["margin"], group[y], c=group["step"], cmap="viridis", vmin=vmin,
                              vmax=max(vmax, vmin + 1),
                              s=10, alpha=0.7, marker=markers.get(str(kind), "s"), linewidths=0, label=str(kind))
    if mappable is not None:
        figure.colorbar(mappable, ax=ax, label="step")
    if rows["kind"].nunique() > 1:
        ax.legend(fontsize="small", loc="best", title="pair kind")
    ax.set_xlabel("implicit reward margin of the pair")
    ax.grid(True, alpha=0.3)


def plot_fig1a(pairs: pd.DataFrame, out: Path) -> Path | None:
    """Fig. 1a: per-pair DPO gradient norm against the pair's margin (dpo runs, all seeds, colour = step)."""
    rows = _dpo_pairs(pairs)
    rows = rows[rows["margin"].notna() & rows["dpo_grad_norm"].notna()]
    if rows.empty:
        return None
    figure = _new_figure(6.5, 4.6)
    ax = figure.subplots()
    _scatter_by_step(ax, figure, rows, "dpo_grad_norm")
    ax.set_ylabel("‖∇ DPO loss of the pair‖")
    ax.set_title(f"DPO gradient norm vs margin (cf. paper Fig. 1a); n = {len(rows)}", fontsize="medium")
    return _save(figure, out / FIG1A)


def plot_fig1b(pairs: pd.DataFrame, out: Path) -> Path | None:
    """Fig. 1b: per-pair similarity factor against the margin, Pearson r (pooled) in the title."""
    rows = _dpo_pairs(pairs)
    rows = rows[rows["margin"].notna() & rows["similarity"].notna()]
    if rows.empty:
        return None
    figure = _new_figure(6.5, 4.6)
    ax = figure.subplots()
    _scatter_by_step(ax, figure, rows, "similarity")
    ax.axhline(0.0, color="0.5", linewidth=0.8, zorder=0)
    ax.set_ylabel("similarity factor Δlog p(x_w) − Δlog p(x_l)")
    ax.set_title(f"similarity vs margin (cf. Fig. 1b): Pearson r = {fmt(pearson(rows['margin'], rows['similarity']))}, "
                 f"n = {len(rows)}", fontsize="medium")
    return _save(figure, out / FIG1B)


def plot_fig2(metrics: pd.DataFrame, out: Path) -> Path:
    """Fig. 2: chosen/rejected likelihood change for dpo and pgdpo; ELBO on top, one-timestep proxy below."""
    from matplotlib.lines import Line2D

    figure = _new_figure(11.0, 7.5)
    axes = figure.subplots(2, 2, squeeze=False)
    for column, (letter, loss) in enumerate((("a", "dpo"), ("b", "pgdpo"))):
        run = base_run(metrics, loss)
        measures = (("elbo", "ELBO (many timesteps)"), ("proxy", "proxy −MSE (one t, ε)"))
        for row, (prefix, what) in enumerate(measures):
            ax = axes[row][column]
            tables = {which: curves(metrics, run, f"{prefix}_{which}") for which in ("chosen", "rejected")}
            if run is None or all(t.empty for t in tables.values()):
                _empty(ax, f"no {loss} run" if run is None else f"no {prefix} measured")
            else:
                ax.axhline(0.0, color="0.5", linewidth=0.8, zorder=0)
                _band(ax, tables["chosen"], "C0", "-", width=1.6 if prefix == "elbo" else 1.0)
                _band(ax, tables["rejected"], "C1", "--", width=1.6 if prefix == "elbo" else 1.0)
                ax.set_xlabel("step")
                ax.set_ylabel(f"Δ {prefix} since step 0")
                ax.grid(True, alpha=0.3)
            ax.set_title(f"({letter}) {run or loss}: {what}", fontsize="medium")
    handles = [Line2D([], [], color="C0", linestyle="-", label="chosen"),
               Line2D([], [], color="C1", linestyle="--", label="rejected")]
    figure.legend(handles=handles, loc="outside lower center", ncols=2, fontsize="small")
    figure.suptitle("probe-set log-likelihood change (mean over seeds, min–max band) — cf. paper Fig. 2")
    return _save(figure, out / FIG2)


def plot_losses(metrics: pd.DataFrame, out: Path) -> Path:
    """Every base run's chosen (and rejected) ELBO change vs step, one colour per run."""
    figure = _new_figure(11.0, 4.6)
    axes = figure.subplots(1, 2, squeeze=False)[0]
    for ax, which in zip(axes, ("chosen", "rejected")):
        ax.axhline(0.0, color="0.5", linewidth=0.8, zorder=0)
        for index, run in enumerate(base_runs(metrics)):
            _band(ax, curves(metrics, run, f"elbo_{which}"), f"C{index % 10}", label=run, band_alpha=0.1)
        ax.set_title(f"Δ ELBO {which} since step 0 (mean over seeds, min–max band)", fontsize="medium")
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small", loc="best")
    return _save(figure, out / FIG_LOSSES)


def _parameter_curves(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """Per step over the given rows: mean of the batch means, min of the mins, max of the maxes."""
    grouped = frame.groupby("step", sort=True)
    table = pd.DataFrame({"mean": grouped[f"{name}_mean"].mean(), "min": grouped[f"{name}_min"].min(),
                          "max": grouped[f"{name}_max"].max()})
    return table.dropna(how="all")


def plot_sweep(metrics: pd.DataFrame, out: Path) -> Path | None:
    """Fig. 8/9: alpha (per K1) and gamma (per K2) ranges vs step, and the ELBO change per K value."""
    sweeps = [(which, name, sweep_frames(metrics, which)) for which, name in (("k1", "alpha"), ("k2", "gamma"))]
    sweeps = [sweep for sweep in sweeps if sweep[2]]
    if not sweeps:
        return None
    from matplotlib.lines import Line2D

    figure = _new_figure(11.0, 4.0 * len(sweeps) + 0.5)
    axes = figure.subplots(len(sweeps), 2, squeeze=False)
    for row, (which, name, groups) in enumerate(sweeps):
        letter = {"k1": "K1", "k2": "K2"}[which]
        paper = PAPER_ALPHA_RANGE if name == "alpha" else PAPER_GAMMA_RANGE
        left, right = axes[row]
        for index, (value, frame) in enumerate(groups.items()):
            colour = f"C{index % 10}"
            reference = paper.get(value)
            label = f"{letter}={fmt(value)}"
            if reference:
                label += f" (paper [{fmt(reference[0])}, {fmt(reference[1])}])"
            _band(left, _parameter_curves(frame, name), colour, label=label, band_alpha=0.12)
            means = _finite(frame[f"{name}_mean"])
            if means.size:  # the judged 5–95% range of the batch means (claim e), as dotted lines
                for level in np.quantile(means, [0.05, 0.95]):
                    left.axhline(float(level), color=colour, linestyle=":", linewidth=1.0)
            for which_sample, style in (("chosen", "-"), ("rejected", "--")):
                deltas = [curves(frame, run, f"elbo_{which_sample}") for run in sorted(frame["run"].unique())]
                deltas = [d for d in deltas if not d.empty]
                if deltas:
                    merged = pd.concat(deltas).groupby(level=0).agg({"mean": "mean", "min": "min", "max": "max"})
                    _band(right, merged, colour, style, band_alpha=0.08)
        left.set_title(f"{name}: mean of batch means, min–max band, dotted 5–95% of means "
                       f"(cf. Fig. {8 if which == 'k1' else 9})", fontsize="medium")
        left.set_xlabel("step")
        left.set_ylabel(name)
        left.grid(True, alpha=0.3)
        left.legend(fontsize="small", loc="best")
        right.axhline(0.0, color="0.5", linewidth=0.8, zorder=0)
        right.set_title(f"Δ ELBO since step 0 per {letter} (solid chosen, dashed rejected)", fontsize="medium")
        right.set_xlabel("step")
        right.grid(True, alpha=0.3)
        right.legend(handles=[Line2D([], [], color=f"C{i % 10}", label=f"{letter}={fmt(v)}")
                              for i, v in enumerate(groups)]
                     + [Line2D([], [], color="0.3", linestyle="-", label="chosen"),
                        Line2D([], [], color="0.3", linestyle="--", label="rejected")], fontsize="small", loc="best")
    return _save(figure, out / FIG_SWEEP)


def plot_gamma(metrics: pd.DataFrame, out: Path) -> Path | None:
    """Γ (Eq. 35) of the pgdpo run: its histogram, and first-order vs realised with the y = x line."""
    run = base_run(metrics, "pgdpo")
    rows = _run_rows(metrics, run)
    rows = rows[rows["step"] > 0]
    first = _finite(rows["gamma_first_order"])
    if run is None or first.size == 0:
        return None
    figure = _new_figure(11.0, 4.4)
    left, right = figure.subplots(1, 2, squeeze=False)[0]
    left.hist(first, bins=min(50, max(10, int(math.sqrt(first.size)))), color="C2", alpha=0.8)
    left.axvline(0.0, color="0.2", linewidth=1.0)
    left.set_title(f"Γ first order (Eq. 35), {run}: {_pct(float((first > 0).mean()))} of {first.size} steps "
                   "(all seeds) > 0 "
                   "(paper 81.7% / 76.9%)", fontsize="medium")
    left.set_xlabel("Γ first order")
    left.set_ylabel("steps")
    left.grid(True, alpha=0.3)
    both = rows[["gamma_first_order", "gamma_realised", "seed"]].dropna()
    if both.empty:
        _empty(right, "Γ realised not measured")
    else:
        for index, (seed, group) in enumerate(both.groupby("seed", sort=True)):
            right.scatter(group["gamma_first_order"], group["gamma_realised"], s=10, alpha=0.7, color=f"C{index % 10}",
                          linewidths=0, label=f"seed {seed}")
        lo = float(min(both["gamma_first_order"].min(), both["gamma_realised"].min()))
        hi = float(max(both["gamma_first_order"].max(), both["gamma_realised"].max()))
        right.plot([lo, hi], [lo, hi], color="0.3", linewidth=1.0, linestyle=":", label="y = x")
        right.axhline(0.0, color="0.7", linewidth=0.6, zorder=0)
        right.axvline(0.0, color="0.7", linewidth=0.6, zorder=0)
        r = pearson(both["gamma_first_order"], both["gamma_realised"])
        right.set_title(f"first order vs realised: Pearson r = {fmt(r)}",
                        fontsize="medium")
        right.set_xlabel("Γ first order (Eq. 35)")
        right.set_ylabel("Γ realised (one SGD step each)")
        right.grid(True, alpha=0.3)
        right.legend(fontsize="small", loc="best")
    return _save(figure, out / FIG_GAMMA)


# ----------------------------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------------------------


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def _config_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_config_value(v) for v in value)
    if isinstance(value, float):
        return fmt(value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def _how_made(config: dict[str, Any], metrics: pd.DataFrame, pairs: pd.DataFrame) -> list[str]:
    lines = ["## How this was made", ""]
    if config.get("not_comparable"):
        lines += [f"**Not comparable:** {config['not_comparable']}.", ""]
    command = config.get("command")
    if command:
        shown = " ".join(command) if isinstance(command, (list, tuple)) else str(command)
        lines += [f"- Command: `{shown}`"]
    for key, label in (("steps", "Steps"), ("seeds", "Seeds"), ("losses", "Losses"), ("k1", "K1 (base)"),
                       ("k2", "K2 (base)"), ("k1_sweep", "K1 sweep"), ("k2_sweep", "K2 sweep"),
                       ("lr", "Learning rate")):
        if key in config:
            lines.append(f"- {label}: {_config_value(config[key])}")
    seconds = config.get("seconds")
    if isinstance(seconds, (int, float)) and math.isfinite(float(seconds)):
        lines.append(f"- Wall time: {float(seconds):.1f} s ({float(seconds) / 60.0:.2f} min)")
    shown_keys = {"command", "steps", "seeds", "losses", "k1", "k2", "k1_sweep", "k2_sweep", "lr", "seconds",
                  "not_comparable"}
    others = sorted(key for key in config if key not in shown_keys)
    if others:
        lines.append("- Other settings (model sizes etc.): "
                     + "; ".join(f"{key} = {_config_value(config[key])}" for key in others))
    runs = sorted(metrics["run"].unique())
    lines += [
        (f"- Data: {len(metrics)} metric rows over {len(runs)} run(s) ({', '.join(runs)}); "
        f"{metrics['seed'].nunique()} seed(s); {len(pairs)} per-pair snapshot rows."),
        "",
        ("Numbers over seeds are written `mean ± sample std (min, max; n = seeds)`; a change Δ is the last "
        "measured value minus the first (step 0 where it was measured). The ELBO is a many-timestep estimate of "
        "log p on a fixed probe set; the proxy is −MSE at one fixed (t, noise) per pair. Verdicts come only from "
        "the rules stated in each section; a claim whose data is missing is marked "
        f"**{NOT_TESTED}**."),
        "",
    ]
    return lines


def _section_a(claim: Claim) -> list[str]:
    m = claim.measured
    rows = [(str(r["seed"]), fmt(r["delta_elbo_chosen"]), fmt(r["delta_elbo_rejected"]), fmt(r["delta_margin"]),
             fmt(r["delta_proxy_chosen"]), fmt(r["displaced"])) for r in m["per_seed"]]
    lines = [f"Run: `{m['run']}`.", ""]
    header = ("seed", "Δelbo_chosen", "Δelbo_rejected", "Δmargin", "Δproxy_chosen", "chosen ↓ and margin ↑")
    lines += _table(header, rows)
    lines += ["", f"- Δelbo_chosen: {fmt_stat(m['delta_elbo_chosen'])}",
              f"- Δelbo_rejected: {fmt_stat(m['delta_elbo_rejected'])}",
              f"- Δmargin: {fmt_stat(m['delta_margin'])}",
              f"- Δproxy_chosen: {fmt_stat(m['delta_proxy_chosen'])}"]
    return lines


def _section_b(claim: Claim) -> list[str]:
    m = claim.measured
    lines = _table(("seed", "pair snapshots (margin > 0)", "Spearman ρ(margin, grad norm)"),
                   [(str(r["seed"]), str(r["n_points"]), fmt(r["spearman"])) for r in m["per_seed"]])
    lines += ["", f"- Spearman ρ over seeds: {fmt_stat(m['spearman'])}",
              (f"- Mean DPO grad norm, top margin quintile: {fmt(m['top_quintile_grad_norm'])}; bottom quintile: "
              f"{fmt(m['bottom_quintile_grad_norm'])} ({m['n_points']} snapshots pooled over seeds)")]
    return lines


def _section_c(claim: Claim) -> list[str]:
    m = claim.measured
    lines = _table(("seed", "pair snapshots", "Pearson r(margin, similarity)", "Spearman ρ (not judged)"),
                   [(str(r["seed"]), str(r["n_points"]), fmt(r["pearson"]), fmt(r["spearman"]))
                    for r in m["per_seed"]])
    lines += ["", f"- Pearson r over seeds: {fmt_stat(m['pearson'])}; pooled: {fmt(m['pearson_pooled'])}"]
    if m["by_kind"]:
        lines.append("- By pair kind (mean over snapshots): " + "; ".join(
            f"{kind}: margin {fmt(v['margin'])}, similarity {fmt(v['similarity'])} (n = {v['n_points']})"
            for kind, v in m["by_kind"].items()))
    if "kernel_pearson" in m:
        lines.append(
            "- To first order the factor is η·(β/2)·(1 − σ(margin logit))·‖∇log p(x_w) − ∇log p(x_l)‖²: the sigmoid "
            "term falls as the margin grows, the kernel term ‖∇log p(x_w) − ∇log p(x_l)‖² is the gradient "
            f"dissimilarity of the pair. Pearson r(margin, kernel term) over seeds (not judged): "
            f"{fmt_stat(m['kernel_pearson'])}")
    return lines


def _section_d(claim: Claim) -> list[str]:
    m = claim.measured
    rows = [(str(r["seed"]), fmt(r["delta_elbo_chosen"]), fmt(r["delta_elbo_rejected"]),
             _pct(r["gamma_positive_share"]),
             str(r["gamma_steps"]), fmt(r["dpo_delta_elbo_chosen"]),
             "n/a" if r["above_dpo"] is None else fmt(r["above_dpo"])) for r in m["per_seed"]]
    lines = [f"Run: `{m['run']}` (compared with `{m['dpo_run']}`).", ""]
    lines += _table(("seed", "Δelbo_chosen", "Δelbo_rejected", "steps with Γ > 0", "steps measured",
                     "dpo Δelbo_chosen", "pgdpo above dpo"), rows)
    share = m["gamma_positive_share"]
    lines += ["", f"- Δelbo_chosen: {fmt_stat(m['delta_elbo_chosen'])}",
              (f"- Share of steps with Γ > 0: {_pct(share['mean'])} ± {_pct(share['std'])} "
              f"(min {_pct(share['min'])}, max {_pct(share['max'])}; n = {share['n']}); paper: 81.7% (Wan2.1-14B), "
              "76.9% (VideoCrafter2)"),
              (f"- pgdpo's Δelbo_chosen above dpo's in {m['seeds_above_dpo']} of {m['seeds_compared_with_dpo']} "
               "matched seed(s)"),
              (f"- First-order Γ vs realised Γ (one SGD step each, same parameters): Pearson r = "
              f"{fmt(m['gamma_first_vs_realised_pearson'])}, median relative error "
              f"{fmt(m['gamma_median_relative_error'])} over {m['gamma_pairs']} step(s)")]
    if m["gamma_share_by_run"]:
        lines += ["", ("For context, the share of steps with Γ > 0 for every base run that has it (Γ is always "
                  "measured against the DPO update on the same batch):"), ""]
        lines += _table(("run", "steps with Γ > 0 (over seeds)"),
                        [(run, (f"{_pct(s['mean'])} ± {_pct(s['std'])} (min {_pct(s['min'])}, max {_pct(s['max'])}; "
                               f"n = {s['n']})")) for run, s in m["gamma_share_by_run"].items()])
    return lines


def _range_table(rows: Sequence[dict[str, Any]], symbol: str, letter: str) -> list[str]:
    def paper(row: dict[str, Any]) -> str:
        return "—" if row["paper"] is None else f"[{fmt(row['paper'][0])}, {fmt(row['paper'][1])}]"

    def verdict(row: dict[str, Any]) -> str:
        return {None: "no paper value", True: "matches", False: "differs"}[row["matches_paper"]]

    return _table((letter, "runs", "seeds", f"{symbol} min–max", "paper", f"min–max vs paper (±{RANGE_TOLERANCE})",
                   "5–95% of batch means", "5–95% width (judged)", "Δelbo_chosen"),
                  [(fmt(r["k"]), ", ".join(r["runs"]), ", ".join(str(seed) for seed in r["seeds"]),
                    f"[{fmt(r['min'])}, {fmt(r['max'])}]" + (" (saturated)" if r["saturated"] else ""), paper(r),
                    verdict(r), f"[{fmt(r['mean_q05'])}, {fmt(r['mean_q95'])}]", fmt(r["width"]),
                    fmt_cell(r["delta_elbo_chosen"])) for r in rows])


def _section_e(claim: Claim) -> list[str]:
    m = claim.measured
    if not m["sweep_run"]:
        return [("The K sweep was not run: no run is named with `k1=` or `k2=`, so there is nothing to compare "
                "with Fig. 8 and Fig. 9.")]
    lines: list[str] = []
    for key, symbol, letter in (("alpha", "α", "K1"), ("gamma", "γ", "K2")):
        if m[key]:
            lines += [f"{letter} sweep ({symbol}):", ""] + _range_table(m[key], symbol, letter) + [""]
        else:
            lines += [f"The {letter} sweep was not run.", ""]
    if any(r["saturated"] for r in m["alpha"] + m["gamma"]):
        lines += [("The min–max range is [0, 1] (saturated) where marked. Eq. 7/8 divide by r^l + ε, so a single "
                   "pair with r^l near −ε sends the sigmoid to 0 or 1 at any K; those extremes say nothing about K, "
                   "which is why the judged width is the 5–95% range of the batch means."), ""]
    lines.append("Note: the paper is not self-consistent about K2. The Fig. 9 caption gives K2 = 10 → "
                 "γ ∈ (0, 0.5) and K2 = 5 → γ ∈ [0.2, 0.5], while the text of App. A.5.3 attributes [0.2, 0.5] to a "
                 "*large* K2. The table uses the caption; Eq. 8 (γ = σ(−K2·x)) implies the range widens with K2, as "
                 "the caption has it.")
    return lines


def _section_summary(metrics: pd.DataFrame, drawn: set[str]) -> list[str]:
    rows = [(r["run"], r["loss"], str(r["n_seeds"]), fmt_cell(r["delta_elbo_chosen"]),
             fmt_cell(r["delta_elbo_rejected"]),
             fmt_cell(r["final_margin"]), fmt_cell(r["final_accuracy"])) for r in loss_summary(metrics)]
    return (["## Per-loss summary", "", "Mean ± sample std over seeds; runs without a K-sweep suffix.", ""]
            + _table(("run", "loss", "seeds", "Δelbo_chosen", "Δelbo_rejected", "final margin", "final accuracy"),
                     rows)
            + ["", f"![{FIG_LOSSES}]({FIG_LOSSES})" if FIG_LOSSES in drawn else "", ""])


_SECTIONS = {"a": _section_a, "b": _section_b, "c": _section_c, "d": _section_d, "e": _section_e}


def render_report(metrics: pd.DataFrame, pairs: pd.DataFrame, config: dict[str, Any], judged: Sequence[Claim],
                  figures: Iterable[str]) -> str:
    """The Markdown report: setup, a verdict table, one section per claim, the per-loss summary, caveats.

    ``figures`` are the file names actually written; a claim whose figure was not drawn says so instead of
    linking a missing (or stale) image.
    """
    drawn = set(figures)
    lines = ["# Likelihood-displacement lab: PG-DPO paper claims on a toy diffusion model", ""]
    lines += [("A tiny conditional diffusion model (2-D data, MLP denoiser) is fine-tuned from one pretrained "
              "reference with several preference losses; the training dynamics are compared with the claims of "
              "*PG-DPO: Beyond Reward Margin* (Sec. 3–4, Fig. 1, 2, 8, 9, App. A.4–A.5)."), ""]
    lines += _how_made(config, metrics, pairs)
    lines += ["## Verdicts", ""]
    lines += _table(("claim", "verdict"), [(f"({c.key}) {c.title}", f"**{c.verdict}**") for c in judged])
    lines.append("")
    for claim in judged:
        lines += [f"## ({claim.key}) {claim.title}", "", f"**Paper.** {claim.paper}", "", "**Measured.**", ""]
        lines += _SECTIONS[claim.key](claim)
        lines += ["", f"**Rule.** {claim.rule}", "", f"Verdict: **{claim.verdict}** — {claim.detail}", ""]
        for figure in claim.figures:
            missing = f"_(figure {figure} not drawn: no data for it)_"
            lines.append(f"![{figure}]({figure})" if figure in drawn else missing)
        lines.append("")
    lines += _section_summary(metrics, drawn)
    lines += ["## Caveats", "",
              ("- This is a 2-D toy, not a video model: a verdict here says whether the mechanism shows up in a small "
              "diffusion model under these settings, not whether the paper's large-model results hold."),
              ("- The margin of claim (a) is a batch mean of the implicit reward margin, so its change is noisy; the "
              "ELBO is an estimate on a finite probe set."),
              ("- Γ is measured against one DPO step from the same parameters on the same batch (Eq. 35), per "
              "training step of the pgdpo run, not along a separately trained DPO trajectory."),
              ""]
    return "\n".join(lines)


def write_report(out: Path, metrics: pd.DataFrame, pairs: pd.DataFrame, config: dict[str, Any]) -> Path:
    """Draw the figures and write ``out/report.md``; returns the report path.

    Every file is written atomically. A figure of this report that cannot be drawn this time (no K sweep,
    no pair snapshots) is removed if an earlier report left one, so the folder never shows a stale figure.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metrics = normalise_metrics(metrics)
    pairs = normalise_pairs(pairs)
    judged = claims(metrics, pairs)
    written = [plot_fig1a(pairs, out), plot_fig1b(pairs, out), plot_fig2(metrics, out), plot_losses(metrics, out),
               plot_sweep(metrics, out), plot_gamma(metrics, out)]
    names = {path.name for path in written if path is not None}
    for name in FIGURES:
        if name not in names:
            (out / name).unlink(missing_ok=True)
    report = out / REPORT_FILE
    atomic_write_text(report, render_report(metrics, pairs, dict(config or {}), judged, names))
    return report
