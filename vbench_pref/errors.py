"""Errors a user can act on, and the exit codes the CLI maps them to."""

from __future__ import annotations

# Exit codes of every command (documented in the README).
EXIT_OK = 0
EXIT_INTERNAL = 1  # a bug: the traceback is shown with --debug
EXIT_USAGE = 2  # bad input or options: nothing was scored or written
EXIT_PARTIAL = 3  # the run finished but some videos failed: see errors.csv
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGTERM: what finished is saved, rerun to resume


class VbenchPrefError(Exception):
    """A problem with the user's input or environment, reported in one line without a traceback."""

    exit_code = EXIT_USAGE


class VideoDecodeError(VbenchPrefError):
    """One video cannot be read; recorded per video in errors.csv, never fatal to a run."""


class ScoreError(VbenchPrefError):
    """An evaluator cannot score one particular video (e.g. too few frames); recorded per video."""


class WeightsMissingError(VbenchPrefError):
    """An evaluator's weights are not on disk and cannot be fetched; says what to run."""


class RunConfigMismatch(VbenchPrefError):
    """The output directory holds a run made with a different configuration."""
