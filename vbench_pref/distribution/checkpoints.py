"""Reading a feature network's published checkpoint: found through the manifest, weights only, strict."""

from __future__ import annotations

import argparse
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from vbench_pref import weights
from vbench_pref.errors import VbenchPrefError
from vbench_pref.vqa.models import describe_mismatch
from vbench_pref.weights import WeightSpec


def checkpoint_path(spec: WeightSpec, path: str | os.PathLike[str] | None) -> Path:
    """The checkpoint file: ``path`` (a file or a folder holding it) or the manifest's caches, verified.

    A file that is nowhere on disk raises WeightsMissingError: one line naming ``vbench-pref weights pull``.
    """
    return weights.resolve(spec, path).path


def read_state(path: Path, what: str, wrappers: Sequence[str] = ()) -> dict[str, torch.Tensor]:
    """The tensors of a ``torch.save``-d checkpoint, flat or under the first of ``wrappers`` it has.

    Trainers' checkpoints also carry their ``argparse.Namespace`` of options (VideoMAE-v2's do); that one
    class is allowed to the weights-only unpickler, since building it runs no code.
    """
    from vbench_pref.torchload import load_weights_only

    with torch.serialization.safe_globals([argparse.Namespace]):
        raw = load_weights_only(path, what)
    if isinstance(raw, dict):
        for key in wrappers:
            if isinstance(raw.get(key), dict):
                raw = raw[key]
                break
    if not isinstance(raw, dict) or not raw or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        where = f" (flat or under {' / '.join(repr(w) for w in wrappers)})" if wrappers else ""
        raise VbenchPrefError(f"{path}: not a state dict of tensors{where}")
    return raw


def load_strict(model: nn.Module, state: Mapping[str, torch.Tensor], path: Path, what: str,
                optional: Collection[str] = ()) -> nn.Module:
    """Fill ``model`` (built on the meta device) with every tensor of ``state``, names and shapes exact.

    Keys ending in one of ``optional`` (e.g. BatchNorm's ``num_batches_tracked``, which files converted
    from TensorFlow lack) may be absent: they keep the values a freshly built module has.
    """
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    required = {k: s for k, s in expected.items() if not k.endswith(tuple(optional)) or k in state}
    problem = describe_mismatch(required, {k: v for k, v in state.items()})
    if problem:
        raise VbenchPrefError(f"{path} is not a {what} checkpoint: tensors {problem}")
    filled = dict(state)
    for key in expected.keys() - state.keys():  # the optional ones: counters, never read in eval mode
        filled[key] = torch.zeros(expected[key], dtype=model.state_dict()[key].dtype)
    model.load_state_dict(filled, strict=True, assign=True)
    return model.to(dtype=torch.float32).eval()
