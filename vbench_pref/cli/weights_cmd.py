"""``vbench-pref weights list|pull|verify``: the weight files evaluators declare, fetched and checked."""

from __future__ import annotations

import difflib
import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from vbench_pref import weights
from vbench_pref.cli._app import app, console, out, reports_errors
from vbench_pref.errors import EXIT_USAGE, VbenchPrefError, WeightsMissingError
from vbench_pref.weights import WeightSpec

weights_app = typer.Typer(
    help="List, download and check the weight files evaluators load.",
    no_args_is_help=True,
)
app.add_typer(weights_app, name="weights")


def _select(names: list[str]) -> list[WeightSpec]:
    """Manifest entries for NAMEs (entry names or evaluator names), in order, without duplicates."""
    from vbench_pref import registry

    manifest = weights.all_weight_specs()
    evaluators = registry.available()
    selected: dict[str, WeightSpec] = {}
    for name in names:
        if name in manifest:
            selected.setdefault(name, manifest[name][0])
        elif name in evaluators:
            needed = evaluators[name]().required_weights()
            if not needed:
                console.print(f"{escape(name)} needs no weight files", highlight=False)
            for spec in needed:
                selected.setdefault(spec.name, spec)
        else:
            known = sorted({*manifest, *evaluators})
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
            hint = f" Did you mean {' or '.join(close)}?" if close else ""
            raise VbenchPrefError(
                f"unknown weight entry or evaluator {name!r}.{hint} Run `vbench-pref weights list` to list all "
                f"({', '.join(known) or 'none'})."
            )
    return list(selected.values())


def _status(spec: WeightSpec) -> dict[str, Any]:
    try:
        path = weights.locate(spec)
    except VbenchPrefError as exc:
        return {"status": "missing", "path": None, "note": str(exc)}
    if path is None:
        return {"status": "missing", "path": None, "note": None}
    return {"status": "present", "path": str(path), "note": None}


@weights_app.command("list")
@reports_errors
def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the entries as JSON.")] = False,
) -> None:
    """Every weight file the evaluators declare, and whether it is on this machine (no hashing)."""
    rows = []
    for spec, users in weights.all_weight_specs().values():
        rows.append(
            {
                **spec.describe(),
                "evaluators": users,
                "size": weights.human_size(spec.size_bytes),
                "pinning": spec.pinning,
                "licence_accepted": weights.licence_accepted(spec) if spec.accept_licence else None,
                **_status(spec),
            }
        )
    if as_json:
        out.print_json(json.dumps(rows))
        return
    if not rows:
        out.print("no evaluator declares weight files")
        return
    table = Table(show_lines=True)
    for column in ("name", "evaluators", "file", "source", "licence", "size", "hash", "status"):
        table.add_column(column, overflow="fold")
    for row in rows:
        source = row["source"] + (f"\n@{row['revision']}" if row["revision"] else "")
        if row["status"] == "present":
            status = f"[green]present[/]\n{escape(row['path'])}"
        else:
            status = "[yellow]missing[/]" + (f"\n{escape(row['note'])}" if row["note"] else "")
        table.add_row(
            escape(row["name"]),
            escape(", ".join(row["evaluators"])),
            escape(row["filename"]),
            escape(source),
            escape(row["licence"]) + _acceptance(row),
            row["size"],
            row["pinning"],
            status,
        )
    out.print(table)


def _acceptance(row: dict[str, Any]) -> str:
    if not row["accept_licence"]:
        return ""
    if row["licence_accepted"]:
        return "\n[green]accepted[/]"
    return "\n[yellow]pull needs --accept-licence[/]"


@weights_app.command("pull")
@reports_errors
def pull_command(
    names: Annotated[list[str] | None, typer.Argument(help="Weight entry names or evaluator names.", metavar="NAME")] = None,
    pull_all: Annotated[bool, typer.Option("--all", help="Pull every entry of every evaluator.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Download again even when the file is present.")] = False,
    accept_licence: Annotated[
        bool,
        typer.Option(
            "--accept-licence",
            help="Accept the licence of files that require it (e.g. non-commercial ones); remembered for later pulls.",
        ),
    ] = False,
) -> None:
    """Download weight files (by entry or evaluator name) into the caches and verify them."""
    if not names and not pull_all:
        raise VbenchPrefError("name weight entries or evaluators to pull, or pass --all")
    specs = _select(names or [])
    if pull_all:
        for name, (spec, _) in weights.all_weight_specs().items():
            if all(s.name != name for s in specs):
                specs.append(spec)
    failed = 0
    for spec in specs:
        try:
            resolved = weights.pull(spec, force=force, accept_licence=accept_licence)
        except VbenchPrefError as exc:
            failed += 1
            console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            continue
        out.print(f"[bold]{escape(spec.name)}[/]: {escape(str(resolved.path))}", highlight=False)
        out.print(f"  sha256 {resolved.sha256} ({resolved.verified_by})", highlight=False)
    if failed:
        raise typer.Exit(EXIT_USAGE)


@weights_app.command("verify")
@reports_errors
def verify_command(
    names: Annotated[list[str] | None, typer.Argument(help="Weight entry or evaluator names (default: all).", metavar="NAME")] = None,
) -> None:
    """Hash every weight file on disk and check it against its manifest entry."""
    specs = _select(names) if names else [spec for spec, _ in weights.all_weight_specs().values()]
    bad = 0
    for spec in specs:
        label = f"[bold]{escape(spec.name)}[/]"
        try:
            path = weights.locate(spec)
            if path is None:
                out.print(f"{label}: [yellow]missing[/] ({escape(spec.filename)})", highlight=False)
                continue
            resolved = weights.verify(spec, path)
        except WeightsMissingError as exc:
            bad += 1
            out.print(f"{label}: [red]ERROR[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            continue
        except VbenchPrefError as exc:
            bad += 1
            out.print(f"{label}: [bold red]MISMATCH[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            continue
        out.print(
            f"{label}: [green]OK[/] {escape(str(resolved.path))} sha256 {resolved.sha256} ({resolved.verified_by})",
            highlight=False,
            soft_wrap=True,
        )
    if bad:
        raise typer.Exit(EXIT_USAGE)
