"""Answers joined with the plan: one row per (participant, item, aspect), in terms of methods, not sides.

This table is what the analysis, the results and the exported training pairs read. Sides are undone here:
``method_x`` / ``method_y`` are the item's two methods in sorted order and ``outcome`` says which of them
the participant preferred (``"x"``, ``"y"``) or ``"tie"``, wherever the two videos were shown.
"""

from __future__ import annotations

from typing import Iterable

import pandas as pd

from vbench_pref.study.plan import Plan
from vbench_pref.study.store import Answer

JUDGEMENT_COLUMNS = [
    "participant", "item", "prompt_id", "prompt", "aspect", "answer", "left_method", "right_method",
    "method_x", "method_y", "outcome", "is_check", "check_failed", "answered_at", "elapsed_ms",
]
# aspects on which preferring the corrupted video of an attention check fails it; other aspects
# (motion, text alignment) may honestly favour a spoiled video
CHECK_ASPECTS = ("vq", "overall")


def judgements(plan: Plan, answers: Iterable[Answer]) -> pd.DataFrame:
    """The answers of a study as a table (columns ``JUDGEMENT_COLUMNS``); answers to unknown items are dropped."""
    rows = []
    for a in answers:
        item = plan.items.get(a.item)
        if item is None or item.participant != a.participant or a.aspect not in plan.aspects:
            continue
        left, right = plan.methods_of(item)
        x, y = sorted((left, right))
        if a.answer == "tie":
            outcome = "tie"
        else:
            chosen = left if a.answer == "left" else right
            outcome = "x" if chosen == x and x != y else "y"
        judged_aspects = [s for s in CHECK_ASPECTS if s in plan.aspects] or list(plan.aspects)
        check_failed = item.check is not None and a.aspect in judged_aspects and a.answer == item.check
        rows.append({
            "participant": a.participant, "item": a.item, "prompt_id": item.prompt_id,
            "prompt": plan.videos[item.left].prompt, "aspect": a.aspect, "answer": a.answer,
            "left_method": left, "right_method": right, "method_x": x, "method_y": y, "outcome": outcome,
            "is_check": item.check is not None, "check_failed": check_failed,
            "answered_at": a.answered_at, "elapsed_ms": a.elapsed_ms,
        })
    return pd.DataFrame(rows, columns=JUDGEMENT_COLUMNS)


def failed_checks(table: pd.DataFrame) -> pd.Series:
    """Participant -> attention checks failed (an item counts once however many aspects it failed on)."""
    checks = table[table["is_check"].astype(bool)]
    if checks.empty:  # grouping nothing loses the index names
        return pd.Series(dtype=int, name="check_failed").rename_axis("participant")
    failed = checks.groupby(["participant", "item"])["check_failed"].any()
    return failed.groupby(level="participant").sum().astype(int)


def excluded_participants(table: pd.DataFrame, allowed_failures: int = 0) -> list[str]:
    """Participants who failed more attention checks than allowed."""
    counts = failed_checks(table)
    return sorted(counts[counts > allowed_failures].index)


def comparisons(table: pd.DataFrame, allowed_failures: int = 0) -> pd.DataFrame:
    """The judgements that count: no attention checks, no participant who failed too many of them."""
    excluded = set(excluded_participants(table, allowed_failures))
    return table[~table["is_check"] & ~table["participant"].isin(excluded)].reset_index(drop=True)
