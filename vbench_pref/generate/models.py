"""``--model``: built-in tiny models, diffusers pipeline folders and hub ids, peft adapters, denoiser folders
(with ``--base-model``), trainer checkpoints.

Whatever the source, the pipeline is loaded from a folder in diffusers' on-disk format: a built-in tiny
model is built from config once, saved with ``save_pretrained`` into the cache and loaded back through the
same ``DiffusionPipeline.from_pretrained`` a real checkpoint takes. A folder may carry ``vbench_pref.json``
(written for built-ins and by ``train-pgdpo``): generation defaults, whether its weights are random, and
for a trainer checkpoint the base model plus the adapter or denoiser weights to put on it, which must lie
inside the card's folder (weights elsewhere are loaded only when named as ``--model`` themselves).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import torch

from vbench_pref.errors import VbenchPrefError
from vbench_pref.generate.families import FAMILIES, GenerationSettings, ModelFamily, family_named, family_of
from vbench_pref.weights import cache_dir

BUILTIN_PREFIX = "builtin:"
MODEL_CARD = "vbench_pref.json"
BUILTIN_FORMAT = 1  # bump when a tiny builder changes, so cached copies are rebuilt
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class Builtin:
    family: str
    image_to_video: bool = False


BUILTINS: dict[str, Builtin] = {
    "tiny-wan": Builtin("wan"),
    "tiny-wan-i2v": Builtin("wan", image_to_video=True),
    "tiny-cogvideox": Builtin("cogvideox"),
    "tiny-unet": Builtin("unet3d"),
    "tiny-animatediff": Builtin("animatediff"),
}


@dataclass
class LoadedModel:
    """A pipeline ready to generate, with what it is and where it came from."""

    pipeline: Any
    family: ModelFamily
    model_id: str
    defaults: GenerationSettings
    random_weights: bool
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def image_to_video(self) -> bool:
        return self.family.takes_image(self.pipeline)

    @property
    def label(self) -> str:
        """The model's name in outputs; random-weight models say so."""
        return f"{self.model_id} (random weights)" if self.random_weights else self.model_id

    @property
    def base_label(self) -> str:
        """The base model a trainer checkpoint was trained from (itself otherwise): the leaderboard groups
        the methods of one base model in one table, as the papers do."""
        base = self.source.get("base_model") if self.source.get("kind") == "checkpoint" else None
        if not base:
            return self.label
        return f"{base} (random weights)" if self.random_weights else str(base)


def model_identity(spec: str) -> str:
    """A ``--model`` whatever its spelling: built-ins and hub ids as given, local paths absolute and resolved."""
    if spec.startswith(BUILTIN_PREFIX) or not Path(spec).expanduser().exists():
        return spec
    return str(Path(spec).expanduser().resolve())


def builtin_dir(name: str) -> Path:
    return cache_dir() / "models" / name


def ensure_builtin(name: str) -> Path:
    """The folder of a built-in tiny model, built from config and saved on first use."""
    if name not in BUILTINS or BUILTINS[name].family not in FAMILIES:
        known = ", ".join(BUILTIN_PREFIX + n for n in BUILTINS if BUILTINS[n].family in FAMILIES)
        raise VbenchPrefError(f"unknown built-in model {BUILTIN_PREFIX}{name} (built-ins: {known})")
    target = builtin_dir(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    # processes started together (torchrun, one node or several) build it once: the others wait, then read
    # it; unlocked, a late builder replaced the folder another process was already loading
    with _exclusive(target.parent / f".{name}.lock"):
        return _build_builtin(name, target)


@contextmanager
def _exclusive(lock: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: one process at a time is the user's to arrange
        yield
        return
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_builtin(name: str, target: Path) -> Path:
    card = _read_card(target)
    if card is not None and card.get("builtin") == name and card.get("format") == BUILTIN_FORMAT:
        return target
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    try:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            _save_builtin_in_child(name, staging)
        else:
            _save_builtin(name, staging)
        if target.exists():  # a stale format: replaced whole, never mixed
            shutil.rmtree(target)
        os.replace(staging, target)
    except OSError:
        if _read_card(target) is None:  # another process may have finished first; only then is this fine
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _save_builtin(name: str, folder: Path) -> None:
    spec = BUILTINS[name]
    family = FAMILIES[spec.family]
    assert family.tiny is not None and family.tiny_defaults is not None
    family.tiny(spec.image_to_video).save_pretrained(folder)
    write_model_card(folder, {
        "builtin": name, "format": BUILTIN_FORMAT, "family": family.name, "random_weights": True,
        "defaults": family.tiny_defaults.as_dict(),
    })


def _save_builtin_in_child(name: str, folder: Path) -> None:
    """Build in a process without a process group: transformers writes nothing from a process whose group
    rank is not 0, so a built-in saved there would lack its text encoder, and every rank would fail to load it."""
    code = ("import sys; from pathlib import Path; from vbench_pref.generate.models import _save_builtin; "
            "_save_builtin(sys.argv[1], Path(sys.argv[2]))")
    child = subprocess.run([sys.executable, "-c", code, name, str(folder)], capture_output=True, text=True)
    if child.returncode != 0:
        lines = child.stderr.strip().splitlines() or [f"exit code {child.returncode}"]
        raise VbenchPrefError(f"could not build {BUILTIN_PREFIX}{name} in {folder.parent}: {lines[-1]}")


def load_model(spec: str, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
               base_model: str | None = None) -> LoadedModel:
    """Load ``--model`` onto ``device``: denoiser and text encoder in ``dtype``, fp32-only parts in float32."""
    quiet_libraries()
    loaded = _load(spec, base_model, dtype)
    loaded.pipeline.to(torch.device(device))
    loaded.pipeline.set_progress_bar_config(disable=True)
    return loaded


def quiet_libraries() -> None:
    """diffusers/transformers loading bars and notices would bury our own progress and errors."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for library in (diffusers_logging, transformers_logging):
        library.set_verbosity_error()
        library.disable_progress_bar()


def _load(spec: str, base_model: str | None, dtype: torch.dtype = torch.float32) -> LoadedModel:
    if spec.startswith(BUILTIN_PREFIX):
        folder = ensure_builtin(spec[len(BUILTIN_PREFIX):])
        loaded = _load_folder(folder, spec, base_model, dtype)
        loaded.source = {"kind": "builtin", "path": str(folder), "format": BUILTIN_FORMAT}
        return loaded
    path = Path(spec).expanduser()
    if path.is_dir():
        return _load_folder(path, spec, base_model, dtype)
    if path.exists():
        raise VbenchPrefError(f"--model {spec} is a file; give the checkpoint's folder")
    if _HUB_ID.match(spec):
        return _load_hub(spec, dtype)
    raise VbenchPrefError(
        f"--model {spec}: no such folder, not a built-in ({', '.join(BUILTIN_PREFIX + n for n in BUILTINS)}) "
        "and not a Hugging Face id (org/name)"
    )


def _load_folder(path: Path, model_id: str, base_model: str | None, dtype: torch.dtype) -> LoadedModel:
    card = _read_card(path) or {}
    defaults = card_defaults(path, card)  # refused before any weights are read
    if card.get("base_model") is not None or (card.get("adapter") or card.get("denoiser")):
        return _load_checkpoint(path, model_id, card, base_model, dtype)
    if (path / "model_index.json").is_file():
        pipeline = _from_pretrained(str(path), model_id, dtype)
        return _wrap(pipeline, model_id, card, {"kind": "pipeline", "path": str(path.resolve())}, defaults)
    if (path / "adapter_config.json").is_file():
        return _load_adapter(path, model_id, base_model, dtype)
    if (path / "config.json").is_file() and base_model:
        return _load_denoiser(path, model_id, base_model, dtype)
    raise VbenchPrefError(
        f"--model {path} holds none of model_index.json (a diffusers pipeline), adapter_config.json (a peft "
        f"adapter), config.json with --base-model (a denoiser) or {MODEL_CARD} (a train-pgdpo checkpoint)"
    )


def _load_hub(repo_id: str, dtype: torch.dtype) -> LoadedModel:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = snapshot_download(repo_id, local_files_only=True)
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        folder = None
    if folder is None:
        from vbench_pref.weights import hf_cache_dir, offline

        if offline():
            raise VbenchPrefError(
                f"--model {repo_id}: not a folder and not in the Hugging Face cache ({hf_cache_dir()}); offline, "
                f"so nothing was downloaded: run `hf download {repo_id}` where there is network"
            )
        try:
            folder = snapshot_download(repo_id)
        except Exception as exc:  # noqa: BLE001 - network and auth failures all end here
            raise VbenchPrefError(
                f"--model {repo_id}: not a folder and could not be downloaded from the Hugging Face hub "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
            ) from None
    pipeline = _from_pretrained(folder, repo_id, dtype)
    return _wrap(pipeline, repo_id, {}, {"kind": "hub", "repo": repo_id, "path": folder}, {})


def _load_adapter(path: Path, model_id: str, base_model: str | None, dtype: torch.dtype) -> LoadedModel:
    config = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
    base = base_model or config.get("base_model_name_or_path")
    if not base:
        raise VbenchPrefError(
            f"adapter {path} does not name its base model (adapter_config.json: base_model_name_or_path); "
            "pass --base-model"
        )
    loaded = _load_base(base, path, dtype)
    _apply_adapter(loaded, path)
    loaded.model_id = model_id
    loaded.source = {"kind": "adapter", "adapter": str(path.resolve()), "base": loaded.source}
    return loaded


def _load_denoiser(path: Path, model_id: str, base_model: str, dtype: torch.dtype) -> LoadedModel:
    """A denoiser folder (diffusers' config.json + weights) named as --model, put on --base-model's pipeline."""
    loaded = _load_base(base_model, path, dtype)
    _replace_denoiser(loaded, path, dtype)
    loaded.model_id = model_id
    loaded.source = {"kind": "denoiser", "denoiser": str(path.resolve()), "base": loaded.source}
    return loaded


def _load_checkpoint(
    path: Path, model_id: str, card: dict[str, Any], base_model: str | None, dtype: torch.dtype
) -> LoadedModel:
    base = base_model or card.get("base_model")
    if not base:
        raise VbenchPrefError(f"checkpoint {path} names no base_model in {MODEL_CARD}; pass --base-model")
    weights = {key: _inside(path, card, key) for key in ("adapter", "denoiser") if card.get(key)}
    defaults = card_defaults(path, card)
    loaded = _load_base(str(base), path, dtype)
    if "adapter" in weights:
        _apply_adapter(loaded, weights["adapter"])
    if "denoiser" in weights:
        _replace_denoiser(loaded, weights["denoiser"], dtype)
    loaded.model_id = model_id
    loaded.random_weights = loaded.random_weights or bool(card.get("random_weights"))
    if defaults:
        loaded.defaults = dataclasses.replace(loaded.defaults, **defaults)
    loaded.source = {
        "kind": "checkpoint", "path": str(path.resolve()), "base": loaded.source, "base_model": str(base),
        **{k: card[k] for k in ("method", "step", "adapter", "denoiser") if k in card},
    }
    return loaded


def _inside(folder: Path, card: dict[str, Any], key: str) -> Path:
    """The weights folder a card names, which must lie inside the card's folder (after ``..`` and symlinks):
    a card that was tampered with or moved could otherwise load any file on the machine."""
    value = card[key]
    if not isinstance(value, str):
        raise VbenchPrefError(f"{folder / MODEL_CARD}: '{key}' must be a path relative to {folder}, not {value!r}")
    target = (folder / value).resolve()
    if not target.is_relative_to(folder.resolve()):
        raise VbenchPrefError(
            f"{folder / MODEL_CARD}: its {key} {value!r} lies outside {folder} ({target}), so it is not loaded; to "
            f"use those weights, name them: --model {target} --base-model BASE"
        )
    return folder / value


def card_defaults(folder: Path, card: dict[str, Any]) -> dict[str, Any]:
    """A card's generation defaults, every key a GenerationSettings field of the right type."""
    defaults = card.get("defaults") or {}
    file = folder / MODEL_CARD
    if not isinstance(defaults, dict):
        raise VbenchPrefError(f"{file}: 'defaults' must be an object of generation settings, not {defaults!r}")
    types = get_type_hints(GenerationSettings)
    known = ", ".join(types)
    for key, value in defaults.items():
        if key not in types:
            raise VbenchPrefError(f"{file}: unknown key {key!r} in 'defaults' (known: {known})")
        if not _fits(value, types[key]):
            raise VbenchPrefError(f"{file}: 'defaults' {key} = {value!r} is not a valid {key}")
    return defaults


def _fits(value: Any, kind: Any) -> bool:
    if isinstance(value, bool):
        return False
    if kind is int:
        return isinstance(value, int)
    if kind is float:
        return isinstance(value, (int, float))
    return value is None or isinstance(value, str)  # negative_prompt: str | None


def _load_base(base: str, dependent: Path, dtype: torch.dtype) -> LoadedModel:
    try:
        return _load(base, None, dtype)
    except VbenchPrefError as exc:
        raise VbenchPrefError(f"the base model of {dependent} could not be loaded: {exc}") from None


def _apply_adapter(loaded: LoadedModel, adapter: Path) -> None:
    """Put a peft LoRA on the family's denoiser and merge it, so generation runs at the base model's speed."""
    from peft import PeftModel

    if not (adapter / "adapter_config.json").is_file():
        raise VbenchPrefError(f"adapter folder {adapter} has no adapter_config.json")
    name = loaded.family.denoiser
    denoiser = getattr(loaded.pipeline, name)
    with _safetensors_adapter(adapter) as readable:
        try:
            merged = PeftModel.from_pretrained(denoiser, str(readable)).merge_and_unload()
        except (ValueError, KeyError, RuntimeError, pickle.UnpicklingError) as exc:
            raise VbenchPrefError(f"adapter {adapter} does not fit the {name} of its base model: {_first_line(exc)}") from None
    setattr(loaded.pipeline, name, merged)


@contextmanager
def _safetensors_adapter(adapter: Path) -> Iterator[Path]:
    """An adapter folder peft reads safetensors from. peft prefers adapter_model.safetensors and otherwise
    unpickles adapter_model.bin (freely, in versions before weights_only became its default): a .bin is read
    here with weights_only=True and handed to peft as safetensors in a temporary copy of the folder."""
    binary = adapter / "adapter_model.bin"
    if (adapter / "adapter_model.safetensors").is_file() or not binary.is_file():
        yield adapter
        return
    from safetensors.torch import save_file

    from vbench_pref.torchload import load_weights_only

    state = load_weights_only(binary, "adapter weights")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise VbenchPrefError(f"{binary}: the adapter weights are not a dict of tensors")
    with tempfile.TemporaryDirectory(prefix="vbench-pref-adapter-") as folder:
        shutil.copy(adapter / "adapter_config.json", folder)
        save_file({k: v.contiguous().clone() for k, v in state.items()}, str(Path(folder) / "adapter_model.safetensors"))
        yield Path(folder)


def _replace_denoiser(loaded: LoadedModel, folder: Path, dtype: torch.dtype) -> None:
    name = loaded.family.denoiser
    current = getattr(loaded.pipeline, name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            replacement = type(current).from_pretrained(str(folder), torch_dtype=dtype)
    except (OSError, ValueError, RuntimeError, pickle.UnpicklingError) as exc:
        raise VbenchPrefError(f"denoiser weights {folder} could not be loaded: {_first_line(exc)}") from None
    setattr(loaded.pipeline, name, replacement)


def _from_pretrained(folder: str, model_id: str, dtype: torch.dtype) -> Any:
    """Load in ``dtype`` at load time (so modules a model keeps in float32 stay so); the family's
    float32-only components (Wan's VAE) in float32."""
    from diffusers import DiffusionPipeline

    index_file = Path(folder) / "model_index.json"
    index = json.loads(index_file.read_text(encoding="utf-8")) if index_file.is_file() else {}
    family = family_named(str(index.get("_class_name")))
    keep = family.fp32_components if family is not None else ()
    torch_dtype: Any = {"default": dtype, **{name: torch.float32 for name in keep}} if keep else dtype
    try:
        with warnings.catch_warnings():  # newer diffusers renamed torch_dtype to dtype; older know only torch_dtype
            warnings.simplefilter("ignore", FutureWarning)
            return DiffusionPipeline.from_pretrained(folder, torch_dtype=torch_dtype)
    except (OSError, ValueError, KeyError, RuntimeError, ImportError, pickle.UnpicklingError) as exc:
        raise VbenchPrefError(f"--model {model_id}: the pipeline in {folder} could not be loaded: {_first_line(exc)}") from None


def _wrap(pipeline: Any, model_id: str, card: dict[str, Any], source: dict[str, Any],
          defaults: dict[str, Any]) -> LoadedModel:
    family = family_of(pipeline)
    # a built-in's card holds its complete defaults (None included: the tiny models use no negative prompt)
    settings = dataclasses.replace(family.defaults, **defaults)
    return LoadedModel(pipeline, family, model_id, settings, bool(card.get("random_weights")), source)


def _read_card(folder: Path) -> dict[str, Any] | None:
    file = folder / MODEL_CARD
    if not file.is_file():
        return None
    try:
        card = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise VbenchPrefError(f"{file} is not valid JSON") from None
    return card if isinstance(card, dict) else None


def write_model_card(folder: Path, card: dict[str, Any]) -> None:
    """Write ``vbench_pref.json`` into a checkpoint folder (the trainer's side of this format)."""
    from vbench_pref.atomic import atomic_write_text

    atomic_write_text(folder / MODEL_CARD, json.dumps(card, indent=2, ensure_ascii=False) + "\n")


def _first_line(exc: BaseException) -> str:
    from vbench_pref.torchload import describe_load_error

    return describe_load_error(exc)
