"""Atomic file writes: a reader (or a crash) never sees a half-written result file."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def names_path(path: str | os.PathLike[str], *aliases: str | os.PathLike[str]) -> Iterator[None]:
    """Give OSErrors raised inside the block ``path`` as their file name when they have none (a full disk
    surfaces in write or fsync, which name no file) or name one of ``aliases`` (a temporary file)."""
    try:
        yield
    except OSError as exc:
        # an OSError made without an errno keeps its message: a file name would replace it in str()
        if exc.errno is not None and (exc.filename is None or exc.filename in {str(a) for a in aliases}):
            exc.filename = str(path)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds, it replaces ``path`` in one rename.

    The temporary file lives in the same directory so that ``os.replace`` is a same-filesystem rename;
    its name starts with a dot and ends in ``.tmp`` so folder scans (videos, runs) never pick it up. It is
    synced to disk before the rename and gets the mode a plain ``open`` would give (mkstemp makes 0600).
    On any exception, ``path`` is left as it was and the temporary file is removed.
    """
    target = Path(path)
    with names_path(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        with names_path(target, tmp, tmp_name):
            yield tmp
            with open(tmp, "rb+") as written:
                os.fsync(written.fileno())
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)


def append_synced(path: str | os.PathLike[str], text: str) -> None:
    """Append to a journal and sync, so a line reported done survives a crash."""
    with names_path(path), open(path, "a", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def cut_torn_line(path: str | os.PathLike[str]) -> None:
    """Cut a journal's torn last line (a killed writer's), so new lines start on a line of their own."""
    file = Path(path)
    if not file.is_file():
        return
    data = file.read_bytes()
    end = data.rfind(b"\n") + 1
    if end != len(data):
        with open(file, "r+b") as handle:
            handle.truncate(end)


def journal_entries(path: str | os.PathLike[str]) -> Iterator[Any]:
    """The JSON lines of a journal up to a torn (no newline: a killed writer's) or unreadable line."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                return
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                return
