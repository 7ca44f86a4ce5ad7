"""Statistics of a study's judgements: win / tie / loss rates, Bradley-Terry strengths, agreement, GSB.

Everything here reads the judgements table (``judgements.judgements``; one row per participant, item and
aspect, sides already undone into ``method_x`` / ``method_y`` and ``outcome``) and returns tables; nothing is
read from or written to disk.

Pairs
    Per aspect and pair of methods, the share of judgements won, tied and lost, seen from ``method_a``: the
    non-baseline method when the baseline is in the pair (so "PG-DPO vs base" reads as PG-DPO's wins), else
    the method listed first in the plan. ``win_rate`` = (wins + ties / 2) / n; against the baseline it is the
    leaderboard's "user study" number. GSB studies (every pair holds the baseline) also get Good / Same / Bad
    per method and the GSB score (G - B) / (G + S + B).

The two-way bootstrap (every interval)
    A judgement varies with who judged and with what was judged, so both are resampled: each replicate draws
    the participants with replacement and, independently, the prompts with replacement (as many of each as
    the analysed judgements hold); a judgement's weight is its participant's multiplicity times its prompt's
    multiplicity (0 when either was not drawn) and every statistic is recomputed from the weighted
    judgements. Intervals are the 2.5th and 97.5th percentiles over the replicates where the statistic is
    defined (a replicate that drew none of a pair's judgements has no rate for that pair). One seeded draw
    serves every aspect, pair and statistic, so the same answers, resamples and seed give the same intervals.

Bradley-Terry with ties (Davidson 1970)
    P(i beats j) = pi_i / D, P(tie) = nu sqrt(pi_i pi_j) / D, D = pi_i + pi_j + nu sqrt(pi_i pi_j). Fitted per
    aspect by Newton's method on s_i = log pi_i and log nu, the baseline fixed at s = 0 (its strength is the
    unit). A method that never lost (or never won) has no finite maximum-likelihood strength, and a study
    without ties no finite log nu; so the fit is the maximum a posteriori estimate under a weak Gaussian prior,
    N(0, PRIOR_SD^2), on each free log-strength and on log nu: it moves a well-measured strength by well
    under a percent and keeps a runaway one finite (a method that won all of 20 judgements lands near
    s = 3.4, a 97% win probability against the baseline). ``ml_exists`` says whether the plain maximum-likelihood
    estimate is finite (every method reachable from every other by wins or ties, and some ties and some
    decisions), i.e. whether the prior only regularises or is what holds an estimate in place. A method with
    no judgements in an aspect gets no strength there.

Agreement
    Krippendorff's alpha for nominal data, per aspect: units are (prompt, method pair), values the outcomes
    (x / y / tie) the participants gave it; units with fewer than two values are not pairable and do not count.
    alpha = 1 - (n - 1) sum_{c != k} o_ck / sum_{c != k} n_c n_k over the coincidence matrix o (Krippendorff,
    "Computing Krippendorff's Alpha-Reliability", 2011). It is undefined when every value is the same.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Hashable, Iterable, Sequence

import numpy as np
import pandas as pd

from vbench_pref.study.judgements import comparisons, failed_checks
from vbench_pref.study.plan import Plan

RESAMPLES = 2000
SEED = 0
LEVEL = 0.95
PRIOR_SD = 3.0  # Gaussian prior on the free log-strengths and log nu of the Bradley-Terry fit
_NEWTON_ITERATIONS = 200
_NEWTON_TOLERANCE = 1e-10


# --------------------------------------------------------------------------------------------------
# the two-way bootstrap


@dataclass(frozen=True)
class TwoWayBootstrap:
    """Participant and prompt multiplicities of each replicate (see the module docstring)."""

    participants: dict[str, int]  # participant id -> column of participant_counts
    prompts: dict[str, int]
    participant_counts: np.ndarray  # (replicates, participants)
    prompt_counts: np.ndarray  # (replicates, prompts)

    @classmethod
    def draw(cls, table: pd.DataFrame, resamples: int = RESAMPLES, seed: int = SEED) -> "TwoWayBootstrap":
        participants = {p: i for i, p in enumerate(sorted(set(table["participant"])))}
        prompts = {p: i for i, p in enumerate(sorted(set(table["prompt_id"])))}
        rng = np.random.default_rng(seed)
        return cls(participants, prompts, _multiplicities(rng, resamples, len(participants)),
                   _multiplicities(rng, resamples, len(prompts)))

    @property
    def resamples(self) -> int:
        return int(self.participant_counts.shape[0])

    def weights(self, frame: pd.DataFrame) -> np.ndarray:
        """(replicates, judgements): each judgement's weight in each replicate."""
        p = frame["participant"].map(self.participants).to_numpy(dtype=np.int64)
        q = frame["prompt_id"].map(self.prompts).to_numpy(dtype=np.int64)
        return (self.participant_counts[:, p] * self.prompt_counts[:, q]).astype(np.float64)


def _multiplicities(rng: np.random.Generator, resamples: int, size: int) -> np.ndarray:
    """How often each of ``size`` units is drawn in each of ``resamples`` draws of ``size`` with replacement."""
    if size == 0:
        return np.zeros((resamples, 0), dtype=np.int64)
    picks = rng.integers(0, size, size=(resamples, size))
    return np.stack([np.bincount(row, minlength=size) for row in picks])


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> tuple[float | None, float | None]:
    """The percentile interval of the replicates where the statistic is defined (None: none is)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None, None
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return float(low), float(high)


# --------------------------------------------------------------------------------------------------
# win / tie / loss


def oriented_pairs(plan: Plan, table: pd.DataFrame) -> list[tuple[str, str]]:
    """(method_a, method_b) of every pair judged, a the non-baseline method or the one listed first."""
    order = {label: i for i, label in enumerate(plan.methods)}

    def rank(method: str) -> tuple[int, str]:
        return order.get(method, len(order)), method

    pairs = []
    for x, y in set(zip(table["method_x"], table["method_y"])):
        if x == y:
            continue
        if plan.baseline in (x, y):
            pairs.append((y, x) if x == plan.baseline else (x, y))
        else:
            pairs.append(tuple(sorted((x, y), key=rank)))
    return sorted(pairs, key=lambda ab: (ab[1] != plan.baseline, rank(ab[0]), rank(ab[1])))


def _pair_frame(table: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    x, y = sorted((a, b))
    return table[(table["method_x"] == x) & (table["method_y"] == y)]


def outcome_matrix(frame: pd.DataFrame, a: str) -> np.ndarray:
    """(judgements, 3): one-hot (a won, tie, a lost) per judgement of a pair holding ``a``."""
    a_side = np.where(frame["method_x"].to_numpy() == a, "x", "y")
    outcome = frame["outcome"].to_numpy()
    won = outcome == a_side
    tie = outcome == "tie"
    return np.stack([won, tie, ~won & ~tie], axis=1).astype(np.float64)


def _shares(counts: np.ndarray) -> np.ndarray:
    """(…, 3) weighted counts -> shares; NaN where nothing was drawn."""
    total = counts.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, counts / np.where(total > 0, total, 1.0), np.nan)


def _with_interval(record: dict, name: str, estimate: float, replicates: np.ndarray, level: float) -> None:
    low, high = percentile_interval(replicates, level)
    record.update({name: estimate, f"{name}_low": low, f"{name}_high": high})


def pair_rates(plan: Plan, table: pd.DataFrame, boot: TwoWayBootstrap, level: float = LEVEL) -> pd.DataFrame:
    """Per aspect and oriented pair: n, participants, prompts, win / tie / loss / win_rate with intervals
    (shares in [0, 1], from method_a's view)."""
    records = []
    for aspect in plan.aspects:
        judged = table[table["aspect"] == aspect]
        for a, b in oriented_pairs(plan, judged):
            frame = _pair_frame(judged, a, b)
            onehot = outcome_matrix(frame, a)
            point = onehot.mean(axis=0)
            replicates = _shares(boot.weights(frame) @ onehot)
            record = {
                "aspect": aspect, "method_a": a, "method_b": b, "n": len(frame),
                "participants": frame["participant"].nunique(), "prompts": frame["prompt_id"].nunique(),
            }
            for k, name in enumerate(("win", "tie", "loss")):
                _with_interval(record, name, float(point[k]), replicates[:, k], level)
            _with_interval(record, "win_rate", float(point[0] + point[1] / 2),
                           replicates[:, 0] + replicates[:, 1] / 2, level)
            records.append(record)
    columns = ["aspect", "method_a", "method_b", "n", "participants", "prompts"] + [
        f"{name}{suffix}" for name in ("win", "tie", "loss", "win_rate") for suffix in ("", "_low", "_high")
    ]
    return pd.DataFrame.from_records(records, columns=columns)


def vs_baseline(plan: Plan, pairs: pd.DataFrame) -> pd.DataFrame:
    """Per method and aspect: the win rate against the baseline (ties count half) with its interval and n."""
    rows = pairs[pairs["method_b"] == plan.baseline]
    out = rows[["aspect", "method_a", "n", "win_rate", "win_rate_low", "win_rate_high"]].rename(
        columns={"method_a": "method"}
    )
    return out.reset_index(drop=True)


def gsb_rates(plan: Plan, table: pd.DataFrame, boot: TwoWayBootstrap, level: float = LEVEL) -> pd.DataFrame:
    """Per method and aspect, against the baseline: Good / Same / Bad shares and (G - B) / (G + S + B)."""
    records = []
    for aspect in plan.aspects:
        judged = table[table["aspect"] == aspect]
        for a, b in oriented_pairs(plan, judged):
            if b != plan.baseline:
                continue
            frame = _pair_frame(judged, a, b)
            onehot = outcome_matrix(frame, a)
            point = onehot.mean(axis=0)
            replicates = _shares(boot.weights(frame) @ onehot)
            record = {"aspect": aspect, "method": a, "baseline": b, "n": len(frame)}
            for k, name in enumerate(("good", "same", "bad")):
                _with_interval(record, name, float(point[k]), replicates[:, k], level)
            _with_interval(record, "gsb", float(point[0] - point[2]), replicates[:, 0] - replicates[:, 2], level)
            records.append(record)
    columns = ["aspect", "method", "baseline", "n"] + [
        f"{name}{suffix}" for name in ("good", "same", "bad", "gsb") for suffix in ("", "_low", "_high")
    ]
    return pd.DataFrame.from_records(records, columns=columns)


# --------------------------------------------------------------------------------------------------
# Bradley-Terry with ties


def _davidson_features(pairs: Sequence[tuple[int, int]], n_methods: int) -> np.ndarray:
    """(pairs, 3, methods + 1): the linear predictor of (i wins, j wins, tie) in (s_1..s_K, log nu)."""
    features = np.zeros((len(pairs), 3, n_methods + 1))
    for p, (i, j) in enumerate(pairs):
        features[p, 0, i] = 1.0
        features[p, 1, j] = 1.0
        features[p, 2, i] = features[p, 2, j] = 0.5
        features[p, 2, n_methods] = 1.0
    return features


def _log_sum_exp(eta: np.ndarray) -> np.ndarray:
    top = eta.max(axis=-1, keepdims=True)
    return (top + np.log(np.exp(eta - top).sum(axis=-1, keepdims=True)))[..., 0]


def fit_davidson(
    counts: np.ndarray,
    pairs: Sequence[tuple[int, int]],
    n_methods: int,
    anchor: int,
    prior_sd: float | None = PRIOR_SD,
) -> tuple[np.ndarray, np.ndarray]:
    """Davidson's Bradley-Terry model with ties, fitted to many count sets at once.

    ``counts`` (fits, pairs, 3): per pair ``(i, j)`` of ``pairs`` the (weighted) number of judgements i won,
    j won and tied. Returns the log-strengths (fits, n_methods), ``anchor``'s fixed at 0, and nu (fits,). The
    estimate maximises the log-likelihood plus a N(0, prior_sd^2) log-prior on every free parameter (None:
    plain maximum likelihood, which the caller must know to be finite).
    """
    counts = np.asarray(counts, dtype=np.float64)
    features = _davidson_features(pairs, n_methods)
    dim = n_methods + 1
    precision = 0.0 if prior_sd is None else 1.0 / prior_sd**2
    free = np.ones(dim)
    free[anchor] = 0.0
    totals = counts.sum(axis=-1)
    linear = np.einsum("fpk,pkd->fd", counts, features)

    def objective(theta: np.ndarray) -> np.ndarray:
        eta = np.einsum("pkd,fd->fpk", features, theta)
        return (-(linear * theta).sum(axis=1) + (totals * _log_sum_exp(eta)).sum(axis=1)
                + 0.5 * precision * (theta**2 * free).sum(axis=1))

    theta = np.zeros((counts.shape[0], dim))
    value = objective(theta)
    for _ in range(_NEWTON_ITERATIONS):
        eta = np.einsum("pkd,fd->fpk", features, theta)
        prob = np.exp(eta - _log_sum_exp(eta)[..., None])
        mean = np.einsum("fpk,pkd->fpd", prob, features)
        grad = (np.einsum("fp,fpd->fd", totals, mean) - linear + precision * theta) * free
        second = np.einsum("fpk,pkd,pke->fpde", prob, features, features) - mean[..., :, None] * mean[..., None, :]
        hessian = np.einsum("fp,fpde->fde", totals, second) + precision * np.diag(free)
        # the anchor is not a parameter: identity in its row and column keeps the system solvable
        hessian = hessian * np.outer(free, free) + np.diag(1.0 - free) + 1e-12 * np.eye(dim)
        step = np.linalg.solve(hessian, grad[..., None])[..., 0]
        scale = np.ones(len(theta))
        for _ in range(60):  # halve the step until the objective does not rise (it is convex)
            trial = theta - scale[:, None] * step
            trial_value = objective(trial)
            worse = trial_value > value + 1e-12 * np.abs(value)
            if not worse.any():
                break
            scale[worse] /= 2.0
        theta, value = trial, trial_value
        if np.max(np.abs(scale[:, None] * step), initial=0.0) < _NEWTON_TOLERANCE:
            break
    return theta[:, :n_methods], np.exp(theta[:, n_methods])


def ml_exists(counts: np.ndarray, pairs: Sequence[tuple[int, int]], n_methods: int) -> bool:
    """Whether the plain maximum-likelihood fit is finite: every method reaches every other through wins
    or ties (a tie links both ways), and the judgements hold both ties and decisions."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts[:, 2].sum() <= 0 or counts[:, :2].sum() <= 0:
        return False
    beats = np.eye(n_methods, dtype=bool)
    for (i, j), (wi, wj, t) in zip(pairs, counts):
        beats[i, j] |= wi > 0 or t > 0
        beats[j, i] |= wj > 0 or t > 0
    reach = beats.copy()
    for k in range(n_methods):  # transitive closure (Floyd-Warshall)
        reach |= reach[:, [k]] & reach[[k], :]
    return bool(reach.all())


def _pair_counts(table: pd.DataFrame, methods: Sequence[str], pairs: Sequence[tuple[int, int]],
                 boot: TwoWayBootstrap | None = None) -> np.ndarray:
    """(fits, pairs, 3) counts of (i wins, j wins, tie): one fit of the judgements as they are, or one per
    bootstrap replicate (weighted) when ``boot`` is given."""
    out = np.zeros((1 if boot is None else boot.resamples, len(pairs), 3))
    for p, (i, j) in enumerate(pairs):
        frame = _pair_frame(table, methods[i], methods[j])
        onehot = outcome_matrix(frame, methods[i])[:, [0, 2, 1]]  # (i won, i lost, tie)
        # one pair's weights at a time: (replicates x judgements) of a whole aspect could be large
        out[:, p] = onehot.sum(axis=0) if boot is None else boot.weights(frame) @ onehot
    return out


def _strength_note(counts: np.ndarray, pairs: Sequence[tuple[int, int]], k: int, is_baseline: bool, n: int) -> str:
    """What a reader should know about one method's strength: where the prior, not the data, places it."""
    if is_baseline:
        return "the baseline: strength 0 by definition" if n else "the baseline was not judged: strengths rest on the prior"
    won = lost = 0.0
    for (i, j), (wins_i, wins_j, ties) in zip(pairs, counts):
        if k in (i, j):
            won += (wins_i if k == i else wins_j) + ties
            lost += (wins_j if k == i else wins_i) + ties
    if not lost:
        return "never lost nor tied: the prior keeps the strength finite"
    if not won:
        return "never won nor tied: the prior keeps the strength finite"
    return ""


def strengths(plan: Plan, table: pd.DataFrame, boot: TwoWayBootstrap, level: float = LEVEL,
              prior_sd: float | None = PRIOR_SD) -> pd.DataFrame:
    """Per aspect and method: log-strength (baseline 0) with interval, n judgements; nu per aspect."""
    records = []
    for aspect in plan.aspects:
        judged = table[(table["aspect"] == aspect) & (table["method_x"] != table["method_y"])]
        present = set(judged["method_x"]) | set(judged["method_y"])
        methods = [m for m in plan.methods if m in present or m == plan.baseline]
        index = {m: i for i, m in enumerate(methods)}
        pairs = sorted({tuple(sorted((index[x], index[y]))) for x, y in zip(judged["method_x"], judged["method_y"])})
        anchor = index[plan.baseline]
        if not pairs:
            continue
        point_counts = _pair_counts(judged, methods, pairs)
        s, nu = fit_davidson(point_counts, pairs, len(methods), anchor, prior_sd)
        boot_counts = _pair_counts(judged, methods, pairs, boot)
        boot_s, boot_nu = fit_davidson(boot_counts, pairs, len(methods), anchor, prior_sd)
        # a method none of whose judgements was drawn has only the prior's value in that replicate
        drawn = np.zeros((boot_counts.shape[0], len(methods)))
        for p, (i, j) in enumerate(pairs):
            drawn[:, i] += boot_counts[:, p].sum(axis=1)
            drawn[:, j] += boot_counts[:, p].sum(axis=1)
        boot_s = np.where(drawn > 0, boot_s, np.nan)
        boot_s[:, anchor] = 0.0
        exists = ml_exists(point_counts[0], pairs, len(methods))
        nu_low, nu_high = percentile_interval(boot_nu, level)
        for m in plan.methods:
            record = {"aspect": aspect, "method": m, "baseline": m == plan.baseline}
            n = int(((judged["method_x"] == m) | (judged["method_y"] == m)).sum())
            if m not in index or (n == 0 and m != plan.baseline):
                record.update(n=n, strength=None, strength_low=None, strength_high=None,
                              note="no judgements in this aspect")
            else:
                k = index[m]
                low, high = percentile_interval(boot_s[:, k], level)
                note = _strength_note(point_counts[0], pairs, k, m == plan.baseline, n)
                record.update(n=n, strength=float(s[0, k]), strength_low=low, strength_high=high, note=note)
            record.update(nu=float(nu[0]), nu_low=nu_low, nu_high=nu_high, ml_exists=exists)
            records.append(record)
    columns = ["aspect", "method", "baseline", "n", "strength", "strength_low", "strength_high",
               "nu", "nu_low", "nu_high", "ml_exists", "note"]
    return pd.DataFrame.from_records(records, columns=columns)


# --------------------------------------------------------------------------------------------------
# agreement


def krippendorff_alpha_nominal(units: Iterable[Sequence[Hashable]]) -> tuple[float | None, int, int]:
    """(alpha, pairable units, pairable values) of nominal data given as the values of each unit.

    Units with fewer than two values are not pairable. alpha is None when it is undefined (no pairable
    values, or all of them equal: no disagreement is expected, so none can be measured).
    """
    coincidences: Counter = Counter()
    units_used = 0
    for values in units:
        m = len(values)
        if m < 2:
            continue
        units_used += 1
        counts = Counter(values)
        for c, n_c in counts.items():
            for k, n_k in counts.items():
                coincidences[c, k] += n_c * (n_k - (c == k)) / (m - 1)
    marginals: Counter = Counter()
    for (c, _), o in coincidences.items():
        marginals[c] += o
    n = sum(marginals.values())
    values_used = int(round(n))
    expected = n * n - sum(v * v for v in marginals.values())
    if units_used == 0 or expected <= 1e-12:
        return None, units_used, values_used
    observed = n - sum(o for (c, k), o in coincidences.items() if c == k)
    return float(1.0 - (n - 1.0) * observed / expected), units_used, values_used


def agreement(plan: Plan, table: pd.DataFrame) -> pd.DataFrame:
    """Per aspect: Krippendorff's alpha over units (prompt, method pair), with the units and values behind it."""
    records = []
    for aspect in plan.aspects:
        judged = table[table["aspect"] == aspect]
        groups = judged.groupby(["prompt_id", "method_x", "method_y"])["outcome"]
        alpha, units, values = krippendorff_alpha_nominal(list(v) for _, v in groups)
        note = ""
        if alpha is None:
            note = ("no unit was judged twice" if units == 0 else "every judgement agrees: alpha is undefined")
        records.append({"aspect": aspect, "alpha": alpha, "units": units, "values": values,
                        "judgements": len(judged), "note": note})
    return pd.DataFrame.from_records(records, columns=["aspect", "alpha", "units", "values", "judgements", "note"])


# --------------------------------------------------------------------------------------------------
# attention checks and the whole analysis


def participants(plan: Plan, table: pd.DataFrame, allowed_failures: int) -> pd.DataFrame:
    """Per planned participant: items answered, attention checks answered and failed, whether excluded."""
    failed = failed_checks(table)
    answered = table.groupby("participant")["item"].nunique()
    checks = table[table["is_check"]].groupby("participant")["item"].nunique()
    records = []
    for p in plan.participants:
        n_failed = int(failed.get(p.id, 0))
        records.append({
            "participant": p.id,
            "items": len(p.items),
            "answered": int(answered.get(p.id, 0)),
            "checks": sum(plan.items[i].check is not None for i in p.items),
            "checks_answered": int(checks.get(p.id, 0)),
            "checks_failed": n_failed,
            "excluded": n_failed > allowed_failures,
        })
    return pd.DataFrame.from_records(records, columns=["participant", "items", "answered", "checks",
                                                       "checks_answered", "checks_failed", "excluded"])


@dataclass(frozen=True)
class StudyAnalysis:
    """Everything ``study results`` reports; shares in [0, 1]."""

    pairs: pd.DataFrame
    vs_baseline: pd.DataFrame
    strengths: pd.DataFrame
    agreement: pd.DataFrame
    participants: pd.DataFrame
    gsb: pd.DataFrame | None  # GSB studies only
    judgements: int  # judgements analysed (no checks, no excluded participant)
    allowed_failures: int
    resamples: int
    seed: int
    level: float = LEVEL
    prior_sd: float | None = PRIOR_SD

    @property
    def excluded(self) -> list[str]:
        return list(self.participants.loc[self.participants["excluded"], "participant"])


def analyse(
    plan: Plan,
    table: pd.DataFrame,
    allowed_failures: int = 0,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
    prior_sd: float | None = PRIOR_SD,
) -> StudyAnalysis:
    """The whole analysis of one study's judgements table (``judgements.judgements``).

    Attention checks never count as comparisons; participants who failed more than ``allowed_failures`` of
    them are left out of every number (their rows in ``participants`` say so).
    """
    kept = comparisons(table, allowed_failures)
    kept = kept[kept["method_x"] != kept["method_y"]]
    boot = TwoWayBootstrap.draw(kept, resamples, seed)
    pairs = pair_rates(plan, kept, boot, level)
    return StudyAnalysis(
        pairs=pairs,
        vs_baseline=vs_baseline(plan, pairs),
        strengths=strengths(plan, kept, boot, level, prior_sd),
        agreement=agreement(plan, kept),
        participants=participants(plan, table, allowed_failures),
        gsb=gsb_rates(plan, kept, boot, level) if plan.answers == "gsb" else None,
        judgements=len(kept),
        allowed_failures=allowed_failures,
        resamples=resamples,
        seed=seed,
        level=level,
        prior_sd=prior_sd,
    )


def finite_or_none(value: float | None) -> float | None:
    """A statistic for a file: a finite float or None (never NaN or inf)."""
    return None if value is None or not math.isfinite(value) else float(value)
