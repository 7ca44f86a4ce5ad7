"""Study statistics: win / tie / loss from known answers, the two-way bootstrap, Bradley-Terry with ties
against an independent fit, Krippendorff's alpha against hand computations, attention checks, GSB."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import pytest

from vbench_pref.study import analysis
from vbench_pref.study.judgements import judgements
from vbench_pref.study.plan import Item, MethodSource, Participant, Plan, StudyVideo, save_plan
from vbench_pref.study.store import AnswerStore, open_answers

SUITE = {"name": "demo", "digest": "d" * 64, "prompts": 8}

def make_plan(
    items: Iterable[tuple[str, str, str, str]],
    methods: tuple[str, ...] = ("base", "dpo", "pgdpo"),
    baseline: str = "base",
    aspects: tuple[str, ...] = ("vq", "overall"),
    answers: str = "abc",
    checks: Iterable[tuple[str, str, str, str]] = (),
    models: dict[str, tuple[str, str]] | None = None,
) -> Plan:
    """A plan by hand: ``items`` are (participant, prompt id, left method, right method); ``checks`` are
    (participant, prompt id, method, side of the corrupted copy). Item ids are i0, i1, ... in the given order
    (checks after the items), one video per (method, prompt), one corrupted copy per check."""
    models = models or {}
    sources = {
        m: MethodSource(label=m, model=models.get(m, ("tiny", m))[0], method=models.get(m, ("tiny", m))[1],
                        run_id=f"run-{m}", run_dir=f"/runs/{m}", videos_dir=f"/runs/{m}/videos")
        for m in methods
    }
    videos: dict[str, StudyVideo] = {}

    def video(method: str, prompt: str, corrupted: bool = False) -> str:
        vid = f"v_{method}_{prompt}" + (f"_bad{len(videos)}" if corrupted else "")
        if vid not in videos:
            videos[vid] = StudyVideo(id=vid, method=method, prompt_id=prompt, prompt=f"a prompt {prompt}",
                                     source=f"{prompt}.mp4", sha256="0" * 64, media=f"media/{vid}.webm",
                                     corrupted_from=f"v_{method}_{prompt}" if corrupted else None)
        return vid

    plan_items: dict[str, Item] = {}
    order: dict[str, list[str]] = {}
    for participant, prompt, left, right in items:
        item = Item(id=f"i{len(plan_items)}", participant=participant, prompt_id=prompt,
                    left=video(left, prompt), right=video(right, prompt))
        plan_items[item.id] = item
        order.setdefault(participant, []).append(item.id)
    for participant, prompt, method, side in checks:
        clean, spoiled = video(method, prompt), video(method, prompt, corrupted=True)
        left, right = (spoiled, clean) if side == "left" else (clean, spoiled)
        item = Item(id=f"i{len(plan_items)}", participant=participant, prompt_id=prompt, left=left, right=right,
                    check=side)
        plan_items[item.id] = item
        order.setdefault(participant, []).append(item.id)
    plan = Plan(
        study_id="study-test", created="2026-01-02T00:00:00+00:00", suite=dict(SUITE), aspects=aspects,
        answers=answers, baseline=baseline, seed=0, methods=sources, videos=videos, items=plan_items,
        participants=tuple(Participant(p, tuple(ids)) for p, ids in order.items()),
    )
    plan.check()
    return plan


def answer_all(store: AnswerStore, plan: Plan, answers: dict[str, dict[str, str]]) -> None:
    """Record item id -> {aspect: left/right/tie}."""
    for item_id, given in answers.items():
        assert store.record(plan.items[item_id].participant, item_id, given)


def side_of(plan: Plan, item_id: str, method: str) -> str:
    left, right = plan.methods_of(plan.items[item_id])
    return "left" if left == method else "right" if right == method else "tie"


def study_with(tmp_path: Path, plan: Plan, picks: dict[str, dict[str, str]]) -> Path:
    """A study folder with ``plan`` and answers given as item id -> {aspect: chosen method or "tie"}."""
    save_plan(plan, tmp_path)
    store = open_answers(tmp_path)
    answer_all(store, plan, {i: {a: side_of(plan, i, m) for a, m in given.items()} for i, given in picks.items()})
    store.close()
    return tmp_path


def table_of(study: Path, plan: Plan) -> pd.DataFrame:
    store = open_answers(study)
    try:
        return judgements(plan, list(store.answers()))
    finally:
        store.close()


def random_study(tmp_path: Path, participants: int = 8, prompts: int = 6, seed: int = 1,
                 answers: str = "abc") -> tuple[Plan, pd.DataFrame]:
    """Every participant judges every prompt once per pair; pgdpo is better than dpo is better than base."""
    rng = np.random.default_rng(seed)
    methods = ("base", "dpo", "pgdpo")
    pairs = [("dpo", "base"), ("pgdpo", "base")] + ([] if answers == "gsb" else [("pgdpo", "dpo")])
    items = []
    for p in range(participants):
        for q in range(prompts):
            for a, b in pairs:
                items.append((f"p{p}", f"q{q}", *((a, b) if rng.random() < 0.5 else (b, a))))
    plan = make_plan(items, methods=methods, answers=answers)
    strength = {"base": 0.0, "dpo": 0.4, "pgdpo": 1.0}
    picks = {}
    for item in plan.items.values():
        left, right = plan.methods_of(item)
        given = {}
        for aspect in plan.aspects:
            d = strength[left] - strength[right] + rng.normal(0, 0.3) * (aspect == "vq")
            u = rng.random()
            p_left = 1 / (1 + math.exp(-d))
            given[aspect] = "tie" if u < 0.2 else ("left" if rng.random() < p_left else "right")
        picks[item.id] = given
    save_plan(plan, tmp_path)
    store = open_answers(tmp_path)
    answer_all(store, plan, picks)
    table = judgements(plan, list(store.answers()))
    store.close()
    return plan, table


# --------------------------------------------------------------------------------------------------
# win / tie / loss


def test_percentages_equal_hand_computed_ones_with_sides_undone(tmp_path: Path) -> None:
    items = [
        ("p1", "q1", "pgdpo", "base"), ("p1", "q2", "base", "pgdpo"), ("p1", "q3", "dpo", "pgdpo"),
        ("p2", "q1", "base", "pgdpo"), ("p2", "q2", "pgdpo", "base"), ("p2", "q3", "pgdpo", "dpo"),
        ("p3", "q1", "pgdpo", "base"),
    ]
    plan = make_plan(items)
    # raw sides as clicked: "left" on i1 and i3 picks base (shown left there), "right" on i4 picks base
    raw = {
        "i0": {"vq": "left", "overall": "left"},    # pgdpo left:  pgdpo, pgdpo
        "i1": {"vq": "right", "overall": "left"},   # base left:   pgdpo, base
        "i2": {"vq": "right", "overall": "tie"},    # dpo left:    pgdpo, tie
        "i3": {"vq": "tie", "overall": "right"},    # base left:   tie, pgdpo
        "i4": {"vq": "right", "overall": "right"},  # pgdpo left:  base, base
        "i5": {"vq": "left", "overall": "right"},   # pgdpo left:  pgdpo, dpo
        "i6": {"vq": "left", "overall": "tie"},     # pgdpo left:  pgdpo, tie
    }
    save_plan(plan, tmp_path)
    store = open_answers(tmp_path)
    answer_all(store, plan, raw)
    store.close()
    result = analysis.analyse(plan, table_of(tmp_path, plan), resamples=200)
    pairs = result.pairs.set_index(["aspect", "method_a", "method_b"])
    # the baseline is always the second method; dpo vs pgdpo in the plan's order
    assert set(pairs.index) == {(a, m, b) for a in ("vq", "overall") for m, b in
                                [("pgdpo", "base"), ("dpo", "pgdpo")]}
    vq = pairs.loc[("vq", "pgdpo", "base")]
    assert vq["n"] == 5 and vq["participants"] == 3 and vq["prompts"] == 2
    assert (vq["win"], vq["tie"], vq["loss"]) == pytest.approx((3 / 5, 1 / 5, 1 / 5))
    assert vq["win_rate"] == pytest.approx(3.5 / 5)
    overall = pairs.loc[("overall", "pgdpo", "base")]
    assert (overall["win"], overall["tie"], overall["loss"]) == pytest.approx((2 / 5, 1 / 5, 2 / 5))
    assert overall["win_rate"] == pytest.approx(0.5)
    versus = pairs.loc[("overall", "dpo", "pgdpo")]
    assert (versus["win"], versus["tie"], versus["loss"]) == pytest.approx((0.5, 0.5, 0.0))
    assert pairs.loc[("vq", "dpo", "pgdpo")]["loss"] == 1.0
    baseline = result.vs_baseline.set_index(["aspect", "method"])
    assert list(baseline.index) == [("vq", "pgdpo"), ("overall", "pgdpo")]  # dpo never met the baseline
    assert baseline.loc[("vq", "pgdpo"), "win_rate"] == pytest.approx(0.7)


def test_orientation_puts_the_non_baseline_method_first_and_keeps_the_plan_order(tmp_path: Path) -> None:
    plan, table = random_study(tmp_path, participants=2, prompts=2)
    pairs = analysis.oriented_pairs(plan, table)
    assert pairs == [("dpo", "base"), ("pgdpo", "base"), ("dpo", "pgdpo")]


# --------------------------------------------------------------------------------------------------
# the bootstrap


def test_two_way_bootstrap_weights_are_participant_times_prompt_multiplicities(tmp_path: Path) -> None:
    plan, table = random_study(tmp_path, participants=5, prompts=4)
    boot = analysis.TwoWayBootstrap.draw(table, resamples=50, seed=3)
    assert boot.participant_counts.shape == (50, 5) and boot.prompt_counts.shape == (50, 4)
    assert (boot.participant_counts.sum(axis=1) == 5).all() and (boot.prompt_counts.sum(axis=1) == 4).all()
    weights = boot.weights(table)
    for j in (0, 7, len(table) - 1):
        p, q = boot.participants[table["participant"][j]], boot.prompts[table["prompt_id"][j]]
        assert np.array_equal(weights[:, j], boot.participant_counts[:, p] * boot.prompt_counts[:, q])
    # both ways really resample: some replicate leaves some participant out, some leaves some prompt out
    assert (boot.participant_counts == 0).any() and (boot.prompt_counts == 0).any()


def test_bootstrap_intervals_contain_the_estimate_and_are_reproducible(tmp_path: Path) -> None:
    plan, table = random_study(tmp_path)
    first = analysis.analyse(plan, table, resamples=400, seed=7)
    again = analysis.analyse(plan, table, resamples=400, seed=7)
    other = analysis.analyse(plan, table, resamples=400, seed=8)
    pd.testing.assert_frame_equal(first.pairs, again.pairs)
    pd.testing.assert_frame_equal(first.strengths, again.strengths)
    assert not first.pairs["win_low"].equals(other.pairs["win_low"])
    for name in ("win", "tie", "loss", "win_rate"):
        low, high, value = first.pairs[f"{name}_low"], first.pairs[f"{name}_high"], first.pairs[name]
        assert ((low <= value) & (value <= high) & (low < high)).all(), name
    strengths = first.strengths[~first.strengths["baseline"]]
    assert ((strengths["strength_low"] <= strengths["strength"]) & (strengths["strength"] <= strengths["strength_high"])).all()


def test_an_empty_replicate_is_left_out_not_counted_as_zero() -> None:
    assert analysis.percentile_interval(np.array([np.nan, 0.2, 0.4, np.nan])) == pytest.approx((0.205, 0.395))
    assert analysis.percentile_interval(np.array([np.nan, np.nan])) == (None, None)


# --------------------------------------------------------------------------------------------------
# Bradley-Terry with ties


def davidson_negative_log_likelihood(params: np.ndarray, data: list[tuple[int, int, float, float, float]],
                                     k: int, anchor: int, prior_sd: float | None) -> float:
    """Written from Davidson (1970) directly in pi and nu, independently of the package's Newton fit."""
    log_pi = np.insert(params[:-1], anchor, 0.0)
    pi, nu = np.exp(log_pi), math.exp(params[-1])
    total = 0.0
    for i, j, wins_i, wins_j, ties in data:
        d = pi[i] + pi[j] + nu * math.sqrt(pi[i] * pi[j])
        total += wins_i * math.log(pi[i] / d) + wins_j * math.log(pi[j] / d) + ties * math.log(nu * math.sqrt(pi[i] * pi[j]) / d)
    penalty = 0.0 if prior_sd is None else float((params**2).sum()) / (2 * prior_sd**2)
    return -total + penalty


def independent_fit(data, k: int, anchor: int, prior_sd: float | None) -> tuple[np.ndarray, float]:
    optimize = pytest.importorskip("scipy.optimize", reason="scipy gives the independent fit")
    found = optimize.minimize(davidson_negative_log_likelihood, np.zeros(k), args=(data, k, anchor, prior_sd),
                              method="BFGS", options={"gtol": 1e-10, "maxiter": 10000})
    return np.insert(found.x[:-1], anchor, 0.0), math.exp(found.x[-1])


DATA = [  # (i, j, i wins, j wins, ties) over 4 methods, every pair judged, some ties
    (0, 1, 7, 12, 4), (0, 2, 3, 15, 5), (0, 3, 9, 8, 6), (1, 2, 6, 10, 3), (1, 3, 11, 5, 2), (2, 3, 14, 4, 3),
]


@pytest.mark.parametrize("prior_sd", [None, analysis.PRIOR_SD])
def test_bradley_terry_equals_an_independent_fit(prior_sd: float | None) -> None:
    pairs = [(i, j) for i, j, *_ in DATA]
    counts = np.array([[[wi, wj, t] for _, _, wi, wj, t in DATA]], dtype=float)
    s, nu = analysis.fit_davidson(counts, pairs, 4, anchor=0, prior_sd=prior_sd)
    expected_s, expected_nu = independent_fit(DATA, 4, 0, prior_sd)
    assert s[0] == pytest.approx(expected_s, abs=1e-5)
    assert nu[0] == pytest.approx(expected_nu, rel=1e-5)
    assert analysis.ml_exists(counts[0], pairs, 4)
    # the anchor only shifts the scale: anchoring method 2 moves every log-strength by the same amount
    if prior_sd is None:
        s2, nu2 = analysis.fit_davidson(counts, pairs, 4, anchor=2, prior_sd=None)
        assert s2[0] == pytest.approx(s[0] - s[0][2], abs=1e-7) and nu2[0] == pytest.approx(nu[0])


def test_a_method_that_always_wins_stays_finite_and_is_flagged() -> None:
    data = [(0, 1, 0, 20, 0), (0, 2, 8, 9, 3), (1, 2, 12, 0, 0)]  # method 1 never lost nor tied
    pairs = [(i, j) for i, j, *_ in data]
    counts = np.array([[[wi, wj, t] for _, _, wi, wj, t in data]], dtype=float)
    s, nu = analysis.fit_davidson(counts, pairs, 3, anchor=0)
    assert np.isfinite(s).all() and np.isfinite(nu).all()
    assert 2.0 < s[0][1] < 6.0  # far ahead, not infinitely
    expected_s, expected_nu = independent_fit(data, 3, 0, analysis.PRIOR_SD)
    assert s[0] == pytest.approx(expected_s, abs=1e-5) and nu[0] == pytest.approx(expected_nu, rel=1e-4)
    assert not analysis.ml_exists(counts[0], pairs, 3)
    no_ties = np.array([[[5, 3, 0], [4, 4, 0], [2, 6, 0]]], dtype=float)
    assert not analysis.ml_exists(no_ties[0], pairs, 3)
    s, nu = analysis.fit_davidson(no_ties, pairs, 3, anchor=0)
    assert np.isfinite(s).all() and 0 < nu[0] < 0.05  # no tie seen: nu small, not 0 nor NaN


def test_study_strengths_are_the_fit_of_the_study_counts(tmp_path: Path) -> None:
    plan, table = random_study(tmp_path)
    result = analysis.analyse(plan, table, resamples=200, prior_sd=None)
    vq = table[table["aspect"] == "vq"]
    methods = list(plan.methods)  # base, dpo, pgdpo
    data = []
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        x, y = sorted((methods[i], methods[j]))
        frame = vq[(vq["method_x"] == x) & (vq["method_y"] == y)]
        i_side = "x" if methods[i] == x else "y"
        wins_i = int((frame["outcome"] == i_side).sum())
        ties = int((frame["outcome"] == "tie").sum())
        data.append((i, j, wins_i, len(frame) - wins_i - ties, ties))
    expected_s, expected_nu = independent_fit(data, 3, 0, None)
    got = result.strengths[result.strengths["aspect"] == "vq"].set_index("method")
    assert [got.loc[m, "strength"] for m in methods] == pytest.approx(list(expected_s), abs=1e-5)
    assert got["nu"].iloc[0] == pytest.approx(expected_nu, rel=1e-5)
    assert got.loc["base", "strength"] == 0.0 and bool(got.loc["base", "baseline"])
    assert got.loc["pgdpo", "strength"] > got.loc["dpo", "strength"] > 0  # the simulated order
    assert bool(got["ml_exists"].all()) and got.loc["pgdpo", "n"] == 2 * 8 * 6


# --------------------------------------------------------------------------------------------------
# agreement


def test_krippendorff_alpha_published_nominal_example() -> None:
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers, 12 units,
    # missing values; unit 12 has a single value and is not pairable. Nominal alpha = 0.743.
    observers = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
        [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
    ]
    units = [[o[u] for o in observers if o[u] is not None] for u in range(12)]
    alpha, n_units, n_values = analysis.krippendorff_alpha_nominal(units)
    assert round(alpha, 3) == 0.743
    assert (n_units, n_values) == (11, 40)


def test_krippendorff_alpha_of_a_study_equals_a_hand_computation(tmp_path: Path) -> None:
    # units (prompt, pair): q1 (pgdpo, pgdpo), q2 (pgdpo, base), q3 (tie, tie, pgdpo), q4 judged once
    items = [("p1", "q1", "pgdpo", "base"), ("p2", "q1", "base", "pgdpo"),
             ("p1", "q2", "pgdpo", "base"), ("p2", "q2", "pgdpo", "base"),
             ("p1", "q3", "base", "pgdpo"), ("p2", "q3", "pgdpo", "base"), ("p3", "q3", "pgdpo", "base"),
             ("p3", "q4", "pgdpo", "base")]
    plan = make_plan(items, aspects=("overall",))
    picks = ["pgdpo", "pgdpo", "pgdpo", "base", "tie", "tie", "pgdpo", "base"]
    study = study_with(tmp_path, plan, {f"i{k}": {"overall": m} for k, m in enumerate(picks)})
    result = analysis.analyse(plan, table_of(study, plan), resamples=50)
    # coincidences: o_pp = 2 (q1) + 0, o_pb = o_bp = 1 (q2), o_tt = 2*1/2 = 1, o_tp = o_pt = 2*1/2 = 1 (q3)
    # n_p = 4, n_b = 1, n_t = 2, n = 7; alpha = 1 - (n - 1) * 4 / (49 - 16 - 1 - 4) = 1 - 24 / 28
    row = result.agreement.set_index("aspect").loc["overall"]
    assert row["alpha"] == pytest.approx(1 / 7)
    assert (row["units"], row["values"], row["judgements"]) == (3, 7, 8)


def test_alpha_is_reported_undefined_not_nan() -> None:
    assert analysis.krippendorff_alpha_nominal([["x", "x"], ["x", "x", "x"]]) == (None, 2, 5)
    assert analysis.krippendorff_alpha_nominal([["x"], ["y"]]) == (None, 0, 0)
    assert analysis.krippendorff_alpha_nominal([["x", "y"], ["x", "y"]])[0] == pytest.approx(-0.5)


# --------------------------------------------------------------------------------------------------
# attention checks and GSB


def test_attention_check_failures_exclude_a_participant(tmp_path: Path) -> None:
    items = [("p1", "q1", "pgdpo", "base"), ("p2", "q1", "base", "pgdpo"), ("p3", "q2", "pgdpo", "base")]
    checks = [("p1", "q3", "base", "left"), ("p2", "q3", "base", "right"), ("p3", "q3", "base", "left")]
    plan = make_plan(items, checks=checks)
    picks = {"i0": {"vq": "pgdpo", "overall": "pgdpo"}, "i1": {"vq": "base", "overall": "base"},
             "i2": {"vq": "pgdpo", "overall": "pgdpo"}}
    study = study_with(tmp_path, plan, picks)
    store = open_answers(study)
    answer_all(store, plan, {
        "i3": {"vq": "right", "overall": "right"},  # p1 picks the clean video: passes
        "i4": {"vq": "right", "overall": "tie"},    # p2 picks the spoiled one on vq: fails
        "i5": {"vq": "left", "overall": "left"},    # p3 fails on both aspects: one failed check
    })
    store.close()
    table = table_of(study, plan)
    strict = analysis.analyse(plan, table, resamples=50)
    people = strict.participants.set_index("participant")
    assert list(people["checks_failed"]) == [0, 1, 1] and list(people["excluded"]) == [False, True, True]
    assert list(people["answered"]) == [2, 2, 2] and list(people["checks_answered"]) == [1, 1, 1]
    assert strict.excluded == ["p2", "p3"]
    assert strict.judgements == 2  # p1's one item, two aspects; checks never count
    assert strict.pairs.set_index(["aspect", "method_a"]).loc[("vq", "pgdpo"), "win"] == 1.0
    # pgdpo never lost in what is left: finite through the prior, and the files say so
    fit = strict.strengths.set_index(["aspect", "method"]).loc["vq"]
    assert np.isfinite(fit.loc["pgdpo", "strength"]) and fit.loc["pgdpo", "strength"] > 0
    assert "never lost" in fit.loc["pgdpo", "note"] and not fit["ml_exists"].any()
    assert fit.loc["dpo", "note"] == "no judgements in this aspect" and pd.isna(fit.loc["dpo", "strength"])
    lenient = analysis.analyse(plan, table, allowed_failures=1, resamples=50)
    assert lenient.excluded == [] and lenient.judgements == 6
    assert lenient.pairs.set_index(["aspect", "method_a"]).loc[("vq", "pgdpo"), "win"] == pytest.approx(2 / 3)


def test_gsb_numbers(tmp_path: Path) -> None:
    items = [(f"p{k % 2}", f"q{k}", *(("dpo", "base") if k % 3 else ("base", "dpo"))) for k in range(6)]
    items += [("p0", "q9", "pgdpo", "base")]
    plan = make_plan(items, answers="gsb", aspects=("overall",))
    picks = ["dpo", "dpo", "dpo", "tie", "base", "tie", "pgdpo"]  # dpo: G 3, S 2, B 1
    study = study_with(tmp_path, plan, {f"i{k}": {"overall": m} for k, m in enumerate(picks)})
    result = analysis.analyse(plan, table_of(study, plan), resamples=300)
    assert result.gsb is not None
    dpo = result.gsb.set_index("method").loc["dpo"]
    assert (dpo["good"], dpo["same"], dpo["bad"]) == pytest.approx((3 / 6, 2 / 6, 1 / 6))
    assert dpo["gsb"] == pytest.approx((3 - 1) / 6) and dpo["n"] == 6 and dpo["baseline"] == "base"
    assert dpo["gsb_low"] <= dpo["gsb"] <= dpo["gsb_high"]
    assert result.gsb.set_index("method").loc["pgdpo", "good"] == 1.0
    assert analysis.analyse(plan.__class__(**{**plan.__dict__, "answers": "abc"}),
                            table_of(study, plan), resamples=10).gsb is None


def test_no_answered_attention_check_means_no_failure_and_no_exclusion() -> None:
    from vbench_pref.study.judgements import JUDGEMENT_COLUMNS, comparisons, excluded_participants, failed_checks

    empty = pd.DataFrame(columns=JUDGEMENT_COLUMNS)
    assert failed_checks(empty).empty
    assert excluded_participants(empty) == []
    assert comparisons(empty).empty
