"""Errors a user can act on, and the exit codes the CLI maps them to."""

from __future__ import annotations

import errno
import os

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


class OutputError(VbenchPrefError):
    """A file or folder cannot be read or written for a reason the user can fix: permissions, a read-only or
    full disk, a file where a folder should be."""


# errno values a user can fix, with the words the one-line message uses
_FIXABLE_ERRNO = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "is a folder, not a file",
    errno.ENAMETOOLONG: "file name too long",
}
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def fixable_reason(exc: OSError) -> str | None:
    """What went wrong, in words, when a user can fix it; None for any other OSError."""
    return _FIXABLE_ERRNO.get(exc.errno) if exc.errno is not None else None


def os_error(
    exc: OSError, path: str | os.PathLike[str] | None = None, kept: str = "what finished is kept"
) -> OutputError | None:
    """The one-line error for an OSError the user can fix, naming the path; None for any other (a bug)."""
    reason = fixable_reason(exc)
    if reason is None:
        return None
    where = path if path is not None else exc.filename
    if exc.errno in DISK_FULL:
        return OutputError(f"{reason} while writing {where or 'the output'}: {kept}; free space and rerun")
    return OutputError(f"{where}: {reason}" if where is not None else f"{reason} (rerun with --debug for the file)")
