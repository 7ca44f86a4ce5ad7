"""Finds evaluators: the built-ins in ``vbench_pref.evaluators`` and plug-ins of the entry-point group.

A third-party package exposes an evaluator with, in its pyproject.toml::

    [project.entry-points."vbench_pref.evaluators"]
    my_metric = "my_package.my_module:MyMetric"
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import pkgutil
import warnings
from importlib.metadata import entry_points

from vbench_pref.errors import VbenchPrefError
from vbench_pref.evaluator import Evaluator

ENTRY_POINT_GROUP = "vbench_pref.evaluators"

_registered: dict[str, type[Evaluator]] = {}


def register(cls: type[Evaluator]) -> type[Evaluator]:
    """Register an evaluator class programmatically (usable as a decorator)."""
    _check_card(cls, origin=f"{cls.__module__}.{cls.__qualname__}")
    _registered[cls.name] = cls
    return cls


def _check_card(cls: object, origin: str) -> None:
    if not (inspect.isclass(cls) and issubclass(cls, Evaluator)):
        raise VbenchPrefError(f"{origin} is not an Evaluator subclass")
    missing = [attr for attr in ("name", "version", "scores", "frames") if not hasattr(cls, attr)]
    if missing:
        raise VbenchPrefError(f"evaluator {origin} has no {', '.join(missing)} in its card")
    if not cls.name.isidentifier() or cls.name.lower() != cls.name:
        raise VbenchPrefError(f"evaluator {origin}: name {cls.name!r} must be a snake_case identifier")


def _builtins() -> dict[str, type[Evaluator]]:
    package = importlib.import_module("vbench_pref.evaluators")
    found: dict[str, type[Evaluator]] = {}
    for module_info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{module_info.name}")
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Evaluator) and obj.__module__ == module.__name__ and "name" in obj.__dict__:
                found[obj.name] = obj
    return found


def _plugins(builtin_names: set[str]) -> dict[str, type[Evaluator]]:
    found: dict[str, type[Evaluator]] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        origin = f"plug-in {entry.name} ({entry.value})"
        try:
            cls = entry.load()
            _check_card(cls, origin)
        except Exception as exc:  # a broken plug-in must not take the built-ins down with it
            warnings.warn(f"skipping {origin}: {exc}", stacklevel=2)
            continue
        if cls.name in builtin_names or cls.name in found:
            warnings.warn(f"skipping {origin}: evaluator name {cls.name!r} is already taken", stacklevel=2)
            continue
        found[cls.name] = cls
    return found


def available() -> dict[str, type[Evaluator]]:
    """Every evaluator by name: built-ins first, then plug-ins, then programmatic registrations."""
    evaluators = _builtins()
    evaluators.update(_plugins(set(evaluators)))
    for name, cls in _registered.items():
        evaluators.setdefault(name, cls)
    return dict(sorted(evaluators.items()))


def get(name: str) -> type[Evaluator]:
    """The evaluator class called ``name``; an unknown name gets a did-you-mean error."""
    evaluators = available()
    if name in evaluators:
        return evaluators[name]
    close = difflib.get_close_matches(name, list(evaluators), n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    raise VbenchPrefError(
        f"unknown evaluator {name!r}.{hint} Run `vbench-pref evaluators` to list all "
        f"({', '.join(evaluators)})."
    )
