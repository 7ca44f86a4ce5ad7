"""``vbench-pref study create``, ``study invite`` and ``study export-pairs``: a study's plan, its links, its pairs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Optional

import typer

from vbench_pref.cli._app import argv, console, out, reports_errors
from vbench_pref.cli._study_app import study_app
from vbench_pref.errors import VbenchPrefError

_BASE_URL = re.compile(r"^https?://[^/\s?#]+(/[^\s?#]*)?$")


@study_app.command("create")
@reports_errors
def create_command(
    runs: list[str] = typer.Option(
        ..., "--runs", help="Eval run folder (or eval --out folder), PATH or LABEL=PATH; 2 or more: --runs A B."
    ),
    more_runs: Optional[list[str]] = typer.Argument(None, metavar="[RUN]...", help="More runs, after --runs."),
    study: Path = typer.Option(..., "--out", help="The study folder to make."),
    aspects: str = typer.Option("vq,mq,ta,overall", "--aspects", help="Questions asked per pair: vq, mq, ta, overall."),
    per_participant: int = typer.Option(18, "--per-participant", help="Comparisons per participant."),
    participants: int = typer.Option(30, "--participants", help="Number of participants (one link each)."),
    answers: str = typer.Option("abc", "--answers", help="abc: left / right / tie; gsb: each method against the baseline."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="Baseline method label (default: the first run)."),
    attention_checks: int = typer.Option(
        2, "--attention-checks", help="Pairs per participant with one visibly spoiled video (never first)."
    ),
    overlap: int = typer.Option(3, "--overlap", help="Participants judging each (prompt, method pair), at least."),
    seed: int = typer.Option(0, "--seed", help="Seed of the design, the video choice and the checks."),
) -> None:
    """Plan a blinded study of eval runs: balanced pairs, attention checks, media, participants' tokens."""
    from vbench_pref.cli._progress import Progress
    from vbench_pref.study.create import CreateOptions, create_study, parse_aspects

    opts = CreateOptions(
        runs=[*runs, *(more_runs or [])], out=study, aspects=parse_aspects(aspects), per_participant=per_participant,
        participants=participants, answers=answers, baseline=baseline, attention_checks=attention_checks,
        overlap=overlap, seed=seed, command=argv(),
    )
    progress = Progress()
    task: list[int] = []

    def on_start(total: int, reused: int) -> None:
        task.append(progress.add("transcoding", "video", total=total, completed=reused))

    with progress:
        result = create_study(opts, on_start, lambda: progress.advance(task[0]))
    print_created(result)


def print_created(result) -> None:  # type: ignore[no-untyped-def]
    plan = result.plan
    settings = plan.settings
    methods = ", ".join(f"{label} (baseline)" if label == plan.baseline else label for label in plan.methods)
    lines = [
        f"study {plan.study_id} in {result.out}",
        f"methods: {methods}; answers {plan.answers}; aspects {', '.join(plan.aspects)}",
        f"prompts: {settings['prompts_compared']} compared of {result.prompts_common} every method has"
        + (f" ({result.prompts_left_out} left out: not every method has a video)" if result.prompts_left_out else ""),
    ]
    dropped = [(run.path, run.failed, run.missing, run.without_prompt) for run in result.runs
               if run.failed or run.missing or run.without_prompt]
    for path, failed, missing, without in dropped:
        lines.append(f"videos left out of {path}: {failed} failed, {missing} missing, {without} without a prompt")
    n = len(plan.participants)
    k = settings["per_participant"]
    capped = (f" (asked {result.per_participant_requested}; only {settings['comparisons']} distinct comparisons exist)"
              if k < result.per_participant_requested else "")
    low, high = result.replication
    judged = f"{low}" if low == high else f"{low}-{high}"
    lines += [
        f"items: {n} participants x {k} comparisons{capped} + {settings['attention_checks']} attention checks "
        f"= {len(plan.items)}; {settings['comparisons']} distinct comparisons, each judged by {judged} participants",
        f"media: {len(plan.videos)} videos ({result.spoiled} spoiled for the checks), {result.media_made} transcoded, "
        f"{result.media_reused} reused",
        f"next: vbench-pref study serve {result.out}",
        f"      vbench-pref study invite {result.out}",
    ]
    for line in lines:
        out.print(line, highlight=False, markup=False)


def invite_links(study: Path, base_url: str) -> dict[str, object]:
    from vbench_pref.study.plan import load_plan, load_tokens

    if not _BASE_URL.match(base_url):
        raise VbenchPrefError(f"--base-url {base_url!r}: give http(s)://HOST[:PORT][/PATH]")
    base = base_url.rstrip("/")
    plan = load_plan(study)
    tokens = load_tokens(study)
    missing = [p.id for p in plan.participants if p.id not in tokens.participants]
    if missing:
        raise VbenchPrefError(f"{study}: tokens.json has no token for participant {missing[0]}")
    return {
        "study_id": plan.study_id,
        "participants": [{"id": p.id, "url": f"{base}/s/{tokens.participants[p.id]}"} for p in plan.participants],
        "admin": f"{base}/admin/{tokens.admin}",
    }


@study_app.command("invite")
@reports_errors
def invite_command(
    study: Path = typer.Argument(..., help="The study folder (made by `study create`)."),
    base_url: str = typer.Option("http://127.0.0.1:8000", "--base-url", help="Where `study serve` is reached."),
    as_json: bool = typer.Option(False, "--json", help="Print the links as JSON."),
) -> None:
    """Print each participant's link and the admin link (keep them private: the token is the login)."""
    links = invite_links(study, base_url)
    if as_json:
        out.print_json(json.dumps(links))
        return
    for participant in links["participants"]:  # type: ignore[union-attr]
        out.print(f"{participant['id']}  {participant['url']}", highlight=False, markup=False)
    out.print(f"admin  {links['admin']}", highlight=False, markup=False)


@study_app.command("export-pairs")
@reports_errors
def export_pairs_command(
    study: Path = typer.Argument(..., help="The study folder."),
    pairs: Path = typer.Option(..., "--out", help="Pairs file (.jsonl; a .parquet copy is written beside it)."),
    aspect: str = typer.Option("overall", "--aspect", help="Whose answers make the pairs: vq, mq, ta or overall."),
    allowed_check_failures: int = typer.Option(
        0, "--allowed-check-failures", help="Participants failing more attention checks are left out."
    ),
    min_judgements: int = typer.Option(1, "--min-judgements", help="Fewer judgements of a comparison: no pair."),
) -> None:
    """Human judgements as (chosen, rejected) pairs for `train-pgdpo`; preference_probability = the vote share."""
    from vbench_pref.study.export import export_pairs

    result = export_pairs(study, pairs, aspect, allowed_check_failures, min_judgements)
    excluded = result.excluded_participants
    console.print(
        f"{result.pairs} pairs from {result.judgements} {aspect} judgements ({result.split} split evenly, "
        f"{result.too_few} with fewer than {min_judgements} judgements: no pair; "
        f"{len(excluded)} participants left out for failed attention checks) -> {result.jsonl}, {result.parquet}",
        highlight=False, markup=False,
    )
