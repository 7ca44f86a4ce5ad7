"""``vbench-pref evaluators``: every evaluator with its card."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from vbench_pref.cli._app import app, out, reports_errors


@app.command("evaluators")
@reports_errors
def evaluators_command(
    as_json: bool = typer.Option(False, "--json", help="Print the cards as JSON."),
) -> None:
    """List every evaluator (built-in and plug-in) with its card."""
    from vbench_pref import registry

    cards = [cls.card() for cls in registry.available().values()]
    if as_json:
        out.print_json(json.dumps(cards))
        return
    table = Table(show_lines=True)
    for column in ("evaluator", "scores", "frames", "prompt", "weights", "reference"):
        table.add_column(column, overflow="fold")
    for card in cards:
        scores = "\n".join(
            f"{s['column']} {'↑' if s['higher_is_better'] else '↓'} [{s['range'][0]:g}, {s['range'][1]:g}]"
            for s in card["scores"]
        )
        weights = "\n".join(f"{w['name']} ({w['licence']})" for w in card["weights"]) or "none"
        table.add_row(
            f"[bold]{card['name']}[/] v{card['version']}\n{card['description']}",
            scores,
            card["frames"],
            "yes" if card["needs_prompt"] else "no",
            weights,
            card["reference"],
        )
    out.print(table)
