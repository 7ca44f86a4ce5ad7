"""Checks a command makes before it loads a model, generates a video or writes a file.

Each check raises ``VbenchPrefError`` (one line, exit 2), so a bad device, an unwritable output folder or an
out-of-range number is reported in seconds instead of after the first GPU-hour. The checks leave no trace:
an output folder is probed with a temporary file in its nearest existing ancestor and not created.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from vbench_pref.errors import VbenchPrefError, fixable_reason

if TYPE_CHECKING:
    import torch

DEVICE_HINT = "use auto, cpu, cuda or cuda:N"
SEED_MAX = 2**63 - 1  # torch.manual_seed takes at most 64 bits; generators derive 63-bit seeds


def check_device(requested: str, option: str = "--device") -> "torch.device":
    """The device ``requested`` names (``auto``: a GPU when there is one), refused unless it exists here."""
    import torch

    text = requested.strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):  # torch's message lists every backend it was built with
        raise VbenchPrefError(f"{option} {requested!r} is not a device: {DEVICE_HINT}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise VbenchPrefError(f"{option} {requested} was asked for but torch sees no CUDA device; use {option} cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise VbenchPrefError(f"{option} {requested}: this machine has {count} CUDA device(s), cuda:0-{count - 1}")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise VbenchPrefError(f"{option} {requested} was asked for but torch sees no MPS device; use {option} cpu")
    elif device.type != "cpu":
        raise VbenchPrefError(f"{option} {requested!r} is not supported: {DEVICE_HINT}")
    return device


def _nearest_existing(path: Path) -> Path:
    for folder in (path, *path.parents):
        if folder.exists():
            return folder
    return Path.cwd()


def _probe(folder: Path, option: str, target: Path) -> None:
    """Create and remove a temporary file in ``folder``: permission bits say nothing for root or read-only mounts."""
    try:
        handle, name = tempfile.mkstemp(prefix=".vbench-pref-probe-", dir=folder)
        os.close(handle)
        os.unlink(name)
    except OSError as exc:
        reason = fixable_reason(exc) or exc.strerror or type(exc).__name__
        raise VbenchPrefError(f"{option} {target}: cannot write to {folder} ({reason})") from None


def check_output_folder(path: Path | str, option: str = "--out") -> Path:
    """``path`` can be made (or is) a folder this process can write into; nothing is created."""
    target = Path(path).expanduser()
    if target.exists() and not target.is_dir():
        raise VbenchPrefError(f"{option} {target} is a file, not a folder")
    existing = _nearest_existing(target.absolute())
    if not existing.is_dir():
        raise VbenchPrefError(f"{option} {target}: {existing} is a file, not a folder")
    _probe(existing, option, target)
    return target


def check_output_file(path: Path | str, option: str = "--out") -> Path:
    """``path`` can be written as a file: its folder can be made or written, and it is not a folder."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise VbenchPrefError(f"{option} {target} is a folder; give a file name")
    check_output_folder(target.parent, option)
    return target


def check_input_file(path: Path | str, option: str, what: str = "file") -> Path:
    """``path`` is an existing, readable file."""
    source = Path(path).expanduser()
    if not source.exists():
        raise VbenchPrefError(f"{option}: {what} {source} not found")
    if not source.is_file():
        raise VbenchPrefError(f"{option}: {what} {source} is not a file")
    if not os.access(source, os.R_OK):
        raise VbenchPrefError(f"{option}: cannot read {what} {source} (permission denied)")
    return source


def check_range(
    option: str,
    value: float | int | None,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Refuse ``value`` outside [low, high] (an open end excludes its bound); None means "not given"."""
    if value is None:
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise VbenchPrefError(f"{option} must be a finite number; got {value}")
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if below or above:
        raise VbenchPrefError(f"{option} must be {describe_range(low, high, low_open, high_open)}; got {value}")


def describe_range(low: float | None, high: float | None, low_open: bool = False, high_open: bool = False) -> str:
    """The words of a range: 'at least 1', 'positive', 'in [0, 1)'."""
    if high is None:
        if low == 0 and low_open:
            return "positive"
        return f"{'greater than' if low_open else 'at least'} {_number(low)}" if low is not None else "a number"
    if low is None:
        return f"{'less than' if high_open else 'at most'} {_number(high)}"
    return f"in {'(' if low_open else '['}{_number(low)}, {_number(high)}{')' if high_open else ']'}"


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def check_at_least(minimum: int, **options: int | None) -> None:
    """Every option given (name without dashes, underscores for dashes) is at least ``minimum``."""
    for name, value in options.items():
        check_range("--" + name.replace("_", "-"), value, minimum)


def check_seed(seed: int | None, option: str = "--seed") -> None:
    check_range(option, seed, 0, SEED_MAX)
