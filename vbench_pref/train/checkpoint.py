"""Resumable training state in formats that hold data only: JSON for structure, safetensors for tensors.

A checkpoint folder may come from anyone (a shared run, a copied disk), and ``--resume`` reads it, so nothing
in it is unpickled: the optimizer, LR schedule, gradient scaler and RNG states are state dicts, which are
trees of numbers, strings, lists, tuples, dicts and tensors; the tree goes to ``NAME.json`` and its tensors
to ``NAME.safetensors``, and loading rebuilds exactly what was saved (the dtypes and float values included,
so a resumed run repeats an uninterrupted one). Files a checkpoint does not need are never opened.

Files of ``checkpoints/step-NNNNNN/`` besides the weights (``adapter/`` or ``denoiser/``, safetensors)::

    trainer_state.json                       step, loss and the state format
    optimizer.json + optimizer.safetensors   the optimizer's state dict
    scheduler.json                           the LR schedule's state dict
    scaler.json                              the fp16 gradient scaler's (only with --mixed-precision fp16)
    rng-<rank>.json (+ .safetensors)         Python, NumPy, torch and CUDA RNG states of each process
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vbench_pref.atomic import atomic_write_text
from vbench_pref.errors import VbenchPrefError

TRAINER_STATE = "trainer_state.json"
STATE_FORMAT = 1  # bump when the files above change; checkpoints without it hold accelerate's pickles
OPTIMIZER = "optimizer"
SCHEDULER = "scheduler"
SCALER = "scaler"
_TENSOR, _TUPLE, _DICT = "__tensor__", "__tuple__", "__dict__"


class CheckpointError(VbenchPrefError):
    """A checkpoint file is missing, not in a safe format, or does not fit the run."""


def rng_name(rank: int) -> str:
    return f"rng-{rank}"


# --- trees of plain data and tensors -------------------------------------------------------------------


def _encode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = value.detach().cpu().contiguous().clone()  # clone: safetensors refuses shared storage
        return {_TENSOR: key}
    if isinstance(value, tuple):
        return {_TUPLE: [_encode(v, tensors) for v in value]}
    if isinstance(value, list):
        return [_encode(v, tensors) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: _encode(v, tensors) for k, v in value.items()}
        return {_DICT: [[_encode(k, tensors), _encode(v, tensors)] for k, v in value.items()]}
    raise TypeError(f"cannot store a {type(value).__name__} in a checkpoint")


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and _TENSOR in value:
        return tensors[value[_TENSOR]]
    if len(value) == 1 and _TUPLE in value:
        return tuple(_decode(v, tensors) for v in value[_TUPLE])
    if len(value) == 1 and _DICT in value:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in value[_DICT]}
    return {k: _decode(v, tensors) for k, v in value.items()}


def save_tree(folder: Path, name: str, tree: Any) -> None:
    """``tree`` as ``NAME.json``, its tensors as ``NAME.safetensors`` (only when it has any)."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    encoded = _encode(tree, tensors)
    if tensors:
        save_file(tensors, str(folder / f"{name}.safetensors"))
    atomic_write_text(folder / f"{name}.json", json.dumps({"format": STATE_FORMAT, "state": encoded}) + "\n")


def load_tree(folder: Path, name: str) -> Any:
    """What ``save_tree`` wrote; one line naming the file when it is missing or not JSON/safetensors."""
    document = read_json(folder / f"{name}.json")
    if not isinstance(document, dict) or "state" not in document:
        raise CheckpointError(f"{folder / (name + '.json')} is not a vbench-pref state file")
    tensors: dict[str, torch.Tensor] = {}
    tensor_file = folder / f"{name}.safetensors"
    if tensor_file.exists():
        from safetensors.torch import load_file

        try:
            tensors = load_file(str(tensor_file), device="cpu")
        except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one-line refusal
            raise CheckpointError(f"{tensor_file} is not a readable safetensors file ({error_line(exc)})") from None
    try:
        return _decode(document["state"], tensors)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{folder / (name + '.json')} does not match {tensor_file.name} ({error_line(exc)})") from None


def read_json(file: Path) -> Any:
    if not file.is_file():
        raise CheckpointError(f"checkpoint file {file} is missing")
    try:
        return json.loads(file.read_bytes())
    except (ValueError, OSError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise CheckpointError(f"{file} is not readable JSON ({error_line(exc)}); the checkpoint is damaged") from None


def error_line(exc: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


# --- what a run saves and restores ---------------------------------------------------------------------


def trainer_state(folder: Path) -> dict[str, Any]:
    """``trainer_state.json`` of a checkpoint; checkpoints of the earlier, pickle-based format are refused."""
    state = read_json(folder / TRAINER_STATE)
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise CheckpointError(f"{folder / TRAINER_STATE} holds no step; the checkpoint is damaged")
    if state.get("state_format") != STATE_FORMAT:
        raise CheckpointError(
            f"checkpoint {folder} was written by an earlier vbench-pref that stored optimizer and scheduler state "
            "as pickles, which --resume does not load; its weights still evaluate (`eval --model`): to train on, "
            "start a new run with another --out"
        )
    return state


def save_training_state(folder: Path, optimizer: Any, scheduler: Any, scaler: Any, rank: int, main: bool) -> None:
    """The optimizer, schedule and scaler (from the main process; every process holds the same) and this
    process's RNG states."""
    if main:
        save_tree(folder, OPTIMIZER, optimizer.state_dict())
        save_tree(folder, SCHEDULER, scheduler.state_dict())
        if scaler is not None:
            save_tree(folder, SCALER, scaler.state_dict())
    save_tree(folder, rng_name(rank), _rng_states())


def load_training_state(folder: Path, optimizer: Any, scheduler: Any, scaler: Any, rank: int) -> None:
    """Restore what ``save_training_state`` wrote; one line when a file is missing, unsafe or does not fit."""
    _restore(folder, OPTIMIZER, optimizer.load_state_dict)
    _check_optimizer_shapes(folder, optimizer)
    _restore(folder, SCHEDULER, scheduler.load_state_dict)
    if scaler is not None:
        _restore(folder, SCALER, scaler.load_state_dict)
    # a resumption with more processes than the run had: the new ones have no saved RNG state to continue
    if (folder / f"{rng_name(rank)}.json").exists():
        _restore(folder, rng_name(rank), _set_rng_states)


def _restore(folder: Path, name: str, load: Any) -> None:
    state = load_tree(folder, name)
    try:
        load(state)
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError, AttributeError) as exc:
        raise CheckpointError(f"{folder / (name + '.json')} does not fit this run ({error_line(exc)})") from None


def _check_optimizer_shapes(folder: Path, optimizer: Any) -> None:
    """torch matches parameter groups by size only: a moment of another shape would fail at the first step."""
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            for name, value in optimizer.state.get(parameter, {}).items():
                if isinstance(value, torch.Tensor) and value.ndim and value.shape != parameter.shape:
                    raise CheckpointError(
                        f"{folder / (OPTIMIZER + '.safetensors')} does not fit this run ({name} of shape "
                        f"{tuple(value.shape)} for a parameter of shape {tuple(parameter.shape)})"
                    )


def _rng_states() -> dict[str, Any]:
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [kind, keys.tolist(), position, has_gauss, gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    kind, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    if torch.cuda.is_available() and "cuda" in states:
        torch.cuda.set_rng_state_all(states["cuda"])
