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
    except pickle.UnpicklingError as exc:
        raise VbenchPrefError(f"{path} ({what}) {describe_load_error(exc)}; use a safetensors or weights-only copy") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one-line report
        raise VbenchPrefError(f"{path}: not a readable {what} ({type(exc).__name__}: {describe_load_error(exc)})") from None


def describe_load_error(exc: BaseException) -> str:
    """One line for an error raised while loading weights (here or inside diffusers, transformers, peft)."""
    if isinstance(exc, pickle.UnpicklingError):
        return "holds pickled objects besides tensors, which are not loaded since they can run code"
    lines = str(exc).strip().splitlines()
    if not lines or "weights_only" in lines[0]:
        return type(exc).__name__
    return lines[0]
