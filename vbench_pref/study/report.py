"""``study results``: a study's answers → CSV tables, a Fig. 7-style PNG and a Markdown summary.

Files (every one written atomically, so a reader never sees half a table):

* ``win_rates.csv``: per aspect and method pair, from ``method_a``'s view (the non-baseline method against
  the baseline, else the plan's first method): ``n`` judgements, ``participants``, ``prompts``, then
  ``win_pct``, ``tie_pct``, ``loss_pct`` and ``win_rate_pct`` (wins + ties / 2) with ``_low`` / ``_high``,
  the 95% two-way bootstrap interval (``analysis``), all in percent;
* ``strengths.csv``: Bradley-Terry-with-ties log-strengths per aspect and method (baseline 0), intervals,
  nu, whether the plain maximum-likelihood estimate exists;
* ``agreement.csv``: Krippendorff's alpha per aspect with the units and values behind it;
* ``participants.csv``: items answered, attention checks answered and failed, excluded or not;
* ``gsb.csv`` (GSB studies): Good / Same / Bad percentages and the GSB score per method and aspect;
* ``summary.md``: the tables, how they were computed, who was excluded;
* ``user_study.png``: per aspect, stacked horizontal bars win / tie / loss per pair with the percentages
  written in (as the PG-DPO paper's Fig. 7), in the Okabe-Ito colour-blind-safe palette.

matplotlib is imported inside the plotting function and draws on the Agg canvas (no pyplot).
"""

from __future__ import annotations

import math
import sqlite3
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from vbench_pref.atomic import atomic_path, atomic_write_text
from vbench_pref.errors import VbenchPrefError
from vbench_pref.preflight import check_range, check_seed
from vbench_pref.study.analysis import RESAMPLES, SEED, StudyAnalysis, analyse
from vbench_pref.study.judgements import judgements
from vbench_pref.study.plan import ANSWERS_FILE, ASPECTS, Plan, load_plan
from vbench_pref.study.store import AnswerStore

if TYPE_CHECKING:
    from matplotlib.axes import Axes

WIN_RATES_CSV = "win_rates.csv"
STRENGTHS_CSV = "strengths.csv"
AGREEMENT_CSV = "agreement.csv"
PARTICIPANTS_CSV = "participants.csv"
GSB_CSV = "gsb.csv"
SUMMARY_MD = "summary.md"
FIGURE_PNG = "user_study.png"
MAX_RESAMPLES = 20_000  # memory: replicates x judgements of one pair, as float64

# Okabe-Ito: distinguishable with every common colour-vision deficiency; text colour chosen per fill
WIN_COLOUR, TIE_COLOUR, LOSS_COLOUR = "#0072B2", "#BBBBBB", "#E69F00"
_TEXT_ON = {WIN_COLOUR: "white", TIE_COLOUR: "black", LOSS_COLOUR: "black"}


# --------------------------------------------------------------------------------------------------
# reading a study


def check_numbers(allowed_failures: int, resamples: int, seed: int) -> None:
    check_range("--allowed-check-failures", allowed_failures, 0)
    check_range("--bootstrap", resamples, 100, MAX_RESAMPLES)
    check_seed(seed)


def load_judgements(study: str | Path) -> tuple[Plan, pd.DataFrame]:
    """The plan and the judgements table of a study folder; one-line errors when either is missing or broken."""
    folder = Path(study)
    plan = load_plan(folder)
    file = folder / ANSWERS_FILE
    if not file.is_file():
        raise VbenchPrefError(f"{folder}: no answers yet (start the study with `vbench-pref study serve {folder}`)")
    try:
        store = AnswerStore(file)
        try:
            answers = list(store.answers())
        finally:
            store.close()
    except sqlite3.Error as exc:
        raise VbenchPrefError(f"{file}: cannot read the answers ({' '.join(str(exc).split())})") from None
    table = judgements(plan, answers)
    if table.empty:
        raise VbenchPrefError(f"{folder}: no answers yet (no participant has answered an item of this plan)")
    return plan, table


def study_analysis(
    study: str | Path, allowed_failures: int = 0, resamples: int = RESAMPLES, seed: int = SEED
) -> tuple[Plan, StudyAnalysis]:
    """Read a study folder and analyse it (``analysis.analyse``); one-line errors for anything unusable."""
    check_numbers(allowed_failures, resamples, seed)
    plan, table = load_judgements(study)
    result = analyse(plan, table, allowed_failures=allowed_failures, resamples=resamples, seed=seed)
    if result.judgements == 0:
        excluded = len(result.excluded)
        why = (f"{excluded} participant(s) failed more than {allowed_failures} attention check(s) and are excluded"
               if excluded else "only attention checks have been answered")
        raise VbenchPrefError(f"{study}: no comparison to analyse: {why} (see --allowed-check-failures)")
    return plan, result


# --------------------------------------------------------------------------------------------------
# tables


def _percent(frame: pd.DataFrame, names: tuple[str, ...]) -> pd.DataFrame:
    out = frame.copy()
    for name in names:
        for suffix in ("", "_low", "_high"):
            out[f"{name}_pct{suffix}"] = (pd.to_numeric(out.pop(f"{name}{suffix}")) * 100).round(3)
    return out


def win_rates_table(result: StudyAnalysis) -> pd.DataFrame:
    return _percent(result.pairs, ("win", "tie", "loss", "win_rate"))


def gsb_table(result: StudyAnalysis) -> pd.DataFrame | None:
    if result.gsb is None:
        return None
    table = _percent(result.gsb, ("good", "same", "bad"))
    return table[[c for c in table.columns if not c.startswith("gsb")] + ["gsb", "gsb_low", "gsb_high"]]


def _csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, lineterminator="\n")


# --------------------------------------------------------------------------------------------------
# Markdown


def _pct(value: Any) -> str:
    return "—" if value is None or pd.isna(value) else f"{100 * float(value):.1f}"


def _with_ci(rec: pd.Series, name: str, scale: str = "pct") -> str:
    fmt = _pct if scale == "pct" else (lambda v: "—" if v is None or pd.isna(v) else f"{float(v):.2f}")
    low, high = rec.get(f"{name}_low"), rec.get(f"{name}_high")
    text = fmt(rec[name])
    if text != "—" and low is not None and high is not None and not (pd.isna(low) or pd.isna(high)):
        text += f" [{fmt(low)}, {fmt(high)}]"
    return text


def _table(header: list[str], rows: list[list[str]], align: str | None = None) -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---" if a == "l" else "---:" for a in align]
    return ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"] + [
        "| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows
    ]


def _aspect_title(aspect: str) -> str:
    return f"{ASPECTS[aspect][0]} ({aspect})" if aspect in ASPECTS else aspect


def render_summary(plan: Plan, result: StudyAnalysis, study: str | Path) -> str:
    people = result.participants
    answered = people[people["answered"] > 0]
    kept = answered[~answered["excluded"]]
    level = f"{round(100 * result.level)}%"
    lines = [f"# User study `{plan.study_id}`", ""]
    lines += [
        f"Study folder `{study}`; prompt suite `{plan.suite.get('name')}` (sha256 "
        f"{str(plan.suite.get('digest') or '')[:12]}); answers: "
        + ("GSB (good / same / bad against the baseline)" if plan.answers == "gsb" else "A / B / tie")
        + f"; baseline: **{plan.baseline}**.",
        "",
        f"{len(kept)} of {len(answered)} participants who answered are counted ({len(people)} invited); "
        f"{result.judgements} judgements (item × aspect) analysed. Excluded (more than {result.allowed_failures} "
        f"failed attention check(s)): {', '.join(result.excluded) if result.excluded else 'none'}.",
        "",
        "## Methods",
        "",
    ]
    lines += _table(["label", "model", "method", "run"],
                    [[m, s.model, s.method, s.run_id] for m, s in plan.methods.items()], "llll")
    lines += ["", f"## Win / tie / loss per pair (%, {level} intervals)", "",
              "Seen from the first method of each pair (the baseline is always second). "
              "Win rate = wins + ties / 2.", ""]
    rows = []
    for _, rec in result.pairs.iterrows():
        rows.append([_aspect_title(rec["aspect"]), f"{rec['method_a']} vs {rec['method_b']}", rec["n"],
                     _with_ci(rec, "win"), _with_ci(rec, "tie"), _with_ci(rec, "loss"), _with_ci(rec, "win_rate")])
    lines += _table(["aspect", "pair", "n", "win", "tie", "loss", "win rate"], rows, "llrrrrr")
    if not result.vs_baseline.empty:
        lines += ["", f"## Win rate against the baseline ({plan.baseline}), %", ""]
        wide = result.vs_baseline.set_index(["method", "aspect"])
        methods = list(dict.fromkeys(result.vs_baseline["method"]))
        rows = [[m] + [_with_ci(wide.loc[(m, a)], "win_rate") if (m, a) in wide.index else "—" for a in plan.aspects]
                for m in methods]
        lines += _table(["method"] + [_aspect_title(a) for a in plan.aspects], rows)
    gsb = result.gsb
    if gsb is not None and not gsb.empty:
        lines += ["", f"## GSB against the baseline ({plan.baseline})", "",
                  "Good / Same / Bad in %; GSB score = (G − B) / (G + S + B).", ""]
        rows = [[_aspect_title(r["aspect"]), r["method"], r["n"], _with_ci(r, "good"), _with_ci(r, "same"),
                 _with_ci(r, "bad"), _with_ci(r, "gsb", "plain")] for _, r in gsb.iterrows()]
        lines += _table(["aspect", "method", "n", "good", "same", "bad", "GSB"], rows, "llrrrrr")
    lines += ["", "## Bradley-Terry strengths (with ties, Davidson 1970)", "",
              f"Log-strength s (baseline {plan.baseline} = 0): against the baseline a method wins "
              "e^s / (1 + e^s + ν e^(s/2)) of its comparisons. ν: how readily participants call a tie.", ""]
    strengths = result.strengths
    rows = []
    for aspect in plan.aspects:
        part = strengths[strengths["aspect"] == aspect]
        if part.empty:
            continue
        cells = [_aspect_title(aspect)]
        for m in plan.methods:
            rec = part[part["method"] == m]
            if rec.empty:
                cells.append("—")
            else:
                cells.append("0 (baseline)" if m == plan.baseline else _with_ci(rec.iloc[0], "strength", "plain"))
        first = part.iloc[0]
        cells += [_with_ci(first, "nu", "plain"), "yes" if first["ml_exists"] else "no (prior)"]
        rows.append(cells)
    lines += _table(["aspect", *plan.methods, "ν", "ML finite"], rows)
    lines += ["", "## Agreement (Krippendorff's alpha, nominal)", ""]
    rows = [[_aspect_title(r["aspect"]), "—" if pd.isna(r["alpha"]) else f"{r['alpha']:.3f}", r["units"], r["values"],
             r["judgements"], r["note"]] for _, r in result.agreement.iterrows()]
    lines += _table(["aspect", "alpha", "units", "values", "judgements", "note"], rows, "lrrrrl")
    lines += ["", "## Participants", ""]
    rows = [[r["participant"], f"{r['answered']}/{r['items']}", f"{r['checks_failed']}/{r['checks_answered']}",
             "excluded" if r["excluded"] else ""] for _, r in people.iterrows()]
    lines += _table(["participant", "items answered", "checks failed / answered", ""], rows, "lrrl")
    lines += ["", "## How these numbers were computed", ""]
    lines += [
        "- Sides are undone: each answer counts for the method whose video was chosen, wherever it was shown. "
        "Attention checks (one video visibly corrupted) are never comparisons; a check fails when the corrupted "
        "video is preferred on visual quality or overall. Participants with more than "
        f"{result.allowed_failures} failed check(s) are left out of every number (`--allowed-check-failures`).",
        f"- Intervals: {level} percentile intervals of a two-way bootstrap ({result.resamples} replicates, seed "
        f"{result.seed}): each replicate resamples the participants and, independently, the prompts with "
        "replacement; a judgement weighs its participant's multiplicity times its prompt's, and each statistic "
        "is recomputed from the weighted judgements. Replicates that drew none of a pair's judgements do not count.",
        "- Bradley-Terry with ties: Davidson's model, P(i > j) = π_i / D, P(tie) = ν √(π_i π_j) / D, "
        "D = π_i + π_j + ν √(π_i π_j), fitted per aspect by Newton's method with log π of the baseline fixed at 0 "
        f"and a weak N(0, {result.prior_sd}²) prior on the other log-strengths and on log ν, which keeps a method "
        "that never lost (or a study without ties) finite; \"ML finite: no\" marks the aspects where the prior, "
        "not the data alone, holds an estimate in place.",
        "- Agreement: Krippendorff's alpha (nominal), units = (prompt, method pair), values = the outcome "
        "(first method / second method / tie) each judgement gave; units judged once are not pairable.",
        "",
        f"Files: `{WIN_RATES_CSV}`, `{STRENGTHS_CSV}`, `{AGREEMENT_CSV}`, `{PARTICIPANTS_CSV}`"
        + (f", `{GSB_CSV}`" if result.gsb is not None else "") + f", `{FIGURE_PNG}`.",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# the figure


def _draw_aspect(axes: "Axes", pairs: pd.DataFrame, title: str) -> None:
    # pair names go above their bars, not beside them: method labels (model names) can be long, and as tick
    # labels they would squeeze the bars
    labels = [f"{a}  vs  {b}   (n={n})" for a, b, n in zip(pairs["method_a"], pairs["method_b"], pairs["n"])]
    positions = list(range(len(pairs)))[::-1]  # first pair on top
    left = [0.0] * len(pairs)
    for name, colour in (("win", WIN_COLOUR), ("tie", TIE_COLOUR), ("loss", LOSS_COLOUR)):
        widths = [100 * float(v) for v in pairs[name]]
        axes.barh(positions, widths, left=left, color=colour, edgecolor="white", linewidth=0.8, height=0.5)
        for y, x0, width in zip(positions, left, widths):
            if width >= 7:  # narrower segments would not hold the text
                axes.text(x0 + width / 2, y, f"{width:.0f}%", ha="center", va="center", fontsize=9,
                          color=_TEXT_ON[colour], fontweight="bold" if name != "tie" else "normal")
        left = [a + b for a, b in zip(left, widths)]
    for y, label in zip(positions, labels):
        axes.text(0, y + 0.3, textwrap.shorten(label, 110, placeholder="…"), ha="left", va="bottom", fontsize=8)
    axes.set_yticks([])
    axes.set_ylim(-0.45, len(pairs) - 0.1)
    axes.set_xlim(0, 100)
    axes.set_xticks([0, 25, 50, 75, 100], ["0", "25", "50", "75", "100%"], fontsize=8)
    axes.set_title(title, fontsize=10, loc="left")
    for side in ("top", "right", "left"):
        axes.spines[side].set_visible(False)


def draw_figure(plan: Plan, result: StudyAnalysis, target: str | Path) -> Path:
    """The Fig. 7-style PNG: one panel per aspect, one stacked bar per method pair."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    aspects = [a for a in plan.aspects if (result.pairs["aspect"] == a).any()]
    columns = 1 if len(aspects) < 3 else 2
    rows = math.ceil(len(aspects) / columns)
    per_panel = max(int(result.pairs.groupby("aspect").size().max()), 1)
    width = 6.0 * columns + 0.6
    height = rows * (0.7 * per_panel + 0.8) + 0.9
    figure = Figure(figsize=(width, height), dpi=150, layout="constrained")
    panels = figure.subplots(rows, columns, squeeze=False)
    for k, aspect in enumerate(aspects):
        _draw_aspect(panels[k // columns][k % columns], result.pairs[result.pairs["aspect"] == aspect],
                     _aspect_title(aspect))
    for k in range(len(aspects), rows * columns):
        panels[k // columns][k % columns].set_visible(False)
    kept = int((~result.participants["excluded"] & (result.participants["answered"] > 0)).sum())
    figure.suptitle(f"User study {plan.study_id}: {kept} participants, {result.judgements} judgements",
                    fontsize=11)
    names = (("good: method better", "same", "bad: baseline better") if plan.answers == "gsb"
             else ("first method wins", "tie", "second method wins"))
    figure.legend(
        handles=[Patch(color=colour, label=name) for colour, name in zip((WIN_COLOUR, TIE_COLOUR, LOSS_COLOUR), names)],
        loc="outside lower center", ncols=3, fontsize=9, frameon=False,
    )
    target = Path(target)
    with atomic_path(target) as tmp:
        figure.savefig(tmp, format="png")
    return target


# --------------------------------------------------------------------------------------------------
# writing


@dataclass(frozen=True)
class Written:
    folder: Path
    files: tuple[Path, ...]
    result: StudyAnalysis


def write_results(study: str | Path, out: str | Path, allowed_failures: int = 0, resamples: int = RESAMPLES,
                  seed: int = SEED) -> Written:
    """What ``vbench-pref study results`` does: analyse the study, write every file into ``out``."""
    plan, result = study_analysis(study, allowed_failures, resamples, seed)
    folder = Path(out)
    tables: dict[str, pd.DataFrame | None] = {
        WIN_RATES_CSV: win_rates_table(result),
        STRENGTHS_CSV: result.strengths,
        AGREEMENT_CSV: result.agreement,
        PARTICIPANTS_CSV: result.participants,
        GSB_CSV: gsb_table(result),
    }
    files = []
    for name, frame in tables.items():
        if frame is not None:
            atomic_write_text(folder / name, _csv(frame))
            files.append(folder / name)
    atomic_write_text(folder / SUMMARY_MD, render_summary(plan, result, study))
    files.append(folder / SUMMARY_MD)
    files.append(draw_figure(plan, result, folder / FIGURE_PNG))
    return Written(folder, tuple(files), result)
