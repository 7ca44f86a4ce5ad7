"""The ``vbench-pref`` command line: one module per command; commands parse options and call run()."""

from __future__ import annotations

# Importing the command modules registers their commands on ``app``.
from vbench_pref.cli import demo, evaluators_cmd, leaderboard_cmd, score, weights_cmd  # noqa: F401
from vbench_pref.cli._app import app

__all__ = ["app", "main"]


def main() -> None:
    app()
