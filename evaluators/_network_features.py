"""What the set-level evaluators on one feature network (``fid``, ``kid``, ``fvd``, ``fvd_videomae``) share:
the ``weights`` option ('official', a file or folder, or 'random'), loading the network once per run
(``SharedModels``, keyed by network and weights), moving it between devices, and recording the file used.

A subclass names its manifest entry (``weight_spec``), how to read the published file (``load_file``) and how
to build seeded random weights (``random_network``), and implements ``features``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from vbench_pref import weights as weight_files
from vbench_pref.evaluator import Option, SetEvaluator, SharedModels

from ._clip_base import WeightsOption, resolve_weights_option

RANDOM_SEED = 0  # weights=random: always the same untrained network, so random-weight runs compare

WEIGHTS_OPTION = Option(
    "weights", "official",
    "'official' (the manifest file, see `vbench-pref weights list`), a local copy of it or a folder holding "
    "it, or 'random' (untrained weights, smoke tests only; distances are labelled)",
)


class NetworkFeatures(WeightsOption, SetEvaluator):
    """A set-level evaluator whose features come from one published network."""

    weight_spec: weight_files.WeightSpec
    network_name: str  # what SharedModels and the residency key call the network
    location_options = ("weights",)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.network: torch.nn.Module | None = None
        self._weights: list[dict[str, Any]] = []

    def load_file(self, path: Path) -> torch.nn.Module:
        """The network with the published file's tensors (weights only, strict)."""
        raise NotImplementedError

    def random_network(self) -> torch.nn.Module:
        """The network with seeded random weights (``RANDOM_SEED``)."""
        raise NotImplementedError

    def random_label(self) -> dict[str, Any]:
        """What run.json records about random weights (their seed, and size where there are several)."""
        return {"seed": RANDOM_SEED}

    def residency_key(self) -> str:
        return f"{self.network_name}:{self.config['weights']}:{sorted(self.random_label().items())}"

    def load(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
             shared: SharedModels | None = None) -> None:
        super().load(device, dtype, shared)
        value = str(self.config["weights"])
        build: Callable[[], torch.nn.Module]
        if value == "random":
            self._weights = [{"option": "weights", "weights": "random", **self.random_label()}]
            build = self.random_network
        else:
            path, provenance = resolve_weights_option(value, self.weight_spec, self.name)
            self._weights = [provenance]
            build = lambda: self.load_file(Path(path))  # noqa: E731
        key = (self.network_name, value, tuple(sorted(self.random_label().items())))
        self.network = shared.get_or_create(key, build) if shared is not None else build()

    def device_models(self) -> tuple[Any, ...]:
        return (self.network,)

    def weight_provenance(self) -> list[dict[str, Any]]:
        return list(self._weights)

    def require_network(self) -> torch.nn.Module:
        if self.network is None:
            raise RuntimeError(f"{self.name}: call load() before features()")
        return self.network

