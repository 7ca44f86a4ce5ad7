"""The ``vbench-pref study`` command group; its commands live in the study_*_cmd modules."""

from __future__ import annotations

import typer

from vbench_pref.cli._app import app

study_app = typer.Typer(
    name="study",
    help="Human preference studies: blinded side-by-side comparisons of eval runs in the browser.",
    no_args_is_help=True,
)
app.add_typer(study_app, name="study")
