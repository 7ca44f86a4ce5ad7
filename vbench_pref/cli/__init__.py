"""The ``vbench-pref`` command line: one module per command; commands parse options and call run()."""

from __future__ import annotations

# Importing the command modules registers their commands on ``app``.
from vbench_pref.cli import (  # noqa: F401
    _study_app,
    browse_cmd,
    demo,
    eval_cmd,
    evaluators_cmd,
    generate_cmd,
    lab_cmd,
    leaderboard_cmd,
    pairs_cmd,
    plot_training_cmd,
    reference_stats_cmd,
    score,
    study_cmd,
    study_results_cmd,
    study_serve_cmd,
    train_cmd,
    weights_cmd,
)
from vbench_pref.cli._app import app

__all__ = ["app", "main"]


def main() -> None:
    app()
