"""``torch.load`` of user files: weights only, and one clean line when a file is refused.

torch's own refusal of a pickled object runs over several lines and advises loading the file with
``weights_only=False``, which would run whatever code the file carries; that advice is never repeated.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from vbench_pref.errors import VbenchPrefError


def load_weights_only(path: Path, what: str = "weights file") -> Any:
    """The tensors of a ``.bin``/``.pt``/``.pth`` file, read with ``torch.load(weights_only=True)``."""
    try:
        with warnings.catch_warnings():  # e.g. the weights-only unpickler's note on pickle protocols
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise VbenchPrefError(
            f"{path} ({what}) holds pickled objects besides tensors, which are not loaded since they can run code; "
            "use a safetensors or weights-only copy"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one-line report
        lines = str(exc).strip().splitlines()
        reason = f"{type(exc).__name__}: {lines[0]}" if lines and "weights_only" not in lines[0] else type(exc).__name__
        raise VbenchPrefError(f"{path}: not a readable {what} ({reason})") from None
