"""What the video quality evaluators (``dover``, ``fast_vqa``) share: weights, precision, seeded views, batching.

A network (``vbench_pref.vqa.models``) reads views (``vbench_pref.vqa.views``) built from every decoded
frame of a video; its random fragment offsets come from a generator seeded by the video's engine seed
(``VideoSample.extras["seed"]``, itself ``scoring.video_seed(run seed, video)``), the video's name and the
draw number, so a rerun gives the same scores and run.json's seed is all it takes to rebuild the views
(``replay_draws``). With ``draws = K`` the raw branch scores are averaged over K independent draws, as the
reference averages over the clips of one draw, before any rescaling or fusion.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from vbench_pref.errors import VbenchPrefError, WeightsMissingError
from vbench_pref.evaluator import Evaluator, Option, SharedModels, VideoSample
from vbench_pref.scoring import video_seed
from vbench_pref.video import FrameSpec
from vbench_pref.vqa import models, views
from vbench_pref.weights import WeightSpec

from ._clip_base import WeightsOption, resolve_weights_option

PRECISIONS = ("run", "reference", "float32")
SEED_RULE = (
    "draw k of video v: torch.Generator seeded with vbench_pref.vqa.views.view_seed(s, v, k), "
    "s = vbench_pref.scoring.video_seed(run seed, v); rebuild with evaluators._vqa_base.replay_draws"
)


def vqa_options(variants: tuple[str, ...], what: str) -> tuple[Option, ...]:
    return (
        Option("variant", variants[0], f"which {what} network", variants),
        Option("draws", 1, "K independent fragment draws per video, raw scores averaged (the reference: 1)"),
        Option("weights", "official",
               "'official' (the manifest file, see `vbench-pref weights list`), a local checkpoint file or a folder "
               "holding it (published layout), or 'random' (untrained weights, smoke tests only; scores are labelled)"),
        Option("random_size", "tiny", "architecture of weights=random: 'tiny' (test size) or 'full' (published sizes)",
               ("tiny", "full")),
        Option("precision", "run",
               "run: autocast to the run's --dtype on CUDA (float32 on the CPU); reference: float32, as the reference "
               "runs; float32: always float32", PRECISIONS),
        Option("video_batch", 8, "videos per forward pass (all their clips go through the backbone together)"),
    )


def seeded_draws(seed: int, video: str, draws: int) -> Iterator[torch.Generator]:
    for k in range(draws):
        yield views.view_generator(seed, video, k)


def replay_draws(run_seed: int, video: str, num_frames: int, height: int, width: int, preset: str,
                 draws: int = 1) -> list[dict[str, dict[str, Any]]]:
    """The random numbers each draw of a scored video used (``views.record_draws`` per draw), from run.json's
    seed and the video's decoded frame count and size: what a run records by rule instead of by value."""
    specs = views.resolve_specs(preset)
    out = []
    for generator in seeded_draws(video_seed(run_seed, video), video, draws):
        drawn = {s.name: views.draw_view(s, num_frames, height, width, generator) for s in specs}
        out.append(views.record_draws(drawn))
    return out


class VQAEvaluator(WeightsOption, Evaluator):
    """An evaluator on one ``vbench_pref.vqa`` network; its variants are network families
    (``vbench_pref.vqa.models.FAMILIES``); subclasses map them to weight files and raw scores to scores."""

    frames = FrameSpec()  # every frame at native size: the views sample and crop them themselves
    variant_weights: dict[str, WeightSpec] = {}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if int(self.config["draws"]) < 1:
            raise VbenchPrefError(f"{self.name}: draws must be at least 1")
        if int(self.config["video_batch"]) < 1:
            raise VbenchPrefError(f"{self.name}: video_batch must be at least 1")
        self.network: models.VQANetwork | None = None
        self._weights: list[dict[str, Any]] = []
        self._size = "full"

    # --- what subclasses say ---
    @property
    def preset(self) -> str:
        """The views preset (``vbench_pref.vqa.views.PRESETS``) of the chosen variant and sampling."""
        raise NotImplementedError

    def finish(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The evaluator's scores from the raw branch scores (averaged over draws), by branch name."""
        raise NotImplementedError

    # --- the card's runtime side ---
    @property
    def family(self) -> str:
        return str(self.config["variant"])

    @property
    def weight_spec(self) -> WeightSpec:
        return self.variant_weights[str(self.config["variant"])]

    def residency_key(self) -> str:
        c = self.config
        return f"vqa:{self.family}:{c['weights']}:{c['random_size']}"

    # --- loading ---
    def load(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
             shared: SharedModels | None = None) -> None:
        super().load(device, dtype, shared)
        self._weights = []
        value = str(self.config["weights"])
        if value == "random":
            self._size = str(self.config["random_size"])
            self.network = models.random_network(self.family, self._size)  # type: ignore[arg-type]
            self._weights.append({"option": "weights", "weights": "random", "size": self._size})
            return
        path = self._resolve(value)
        self.network, self._size = _load_any_size(self.family, path)

    def _resolve(self, value: str) -> Path:
        path, provenance = resolve_weights_option(value, self.weight_spec, self.name)
        self._weights.append(provenance)
        return path

    def device_models(self) -> tuple[Any, ...]:
        return (self.network,)

    def weight_provenance(self) -> list[dict[str, Any]]:
        return [{"family": self.family, "size": self._size, **w} for w in self._weights]

    def autocast_dtype(self) -> torch.dtype | None:
        """The autocast dtype of a forward pass, None for float32 (autocast only on CUDA)."""
        if self.config["precision"] != "run" or self.device.type != "cuda" or self.dtype == torch.float32:
            return None
        return self.dtype

    def provenance(self) -> dict[str, Any]:
        autocast = self.autocast_dtype()
        return {
            **super().provenance(),
            "precision": "float32" if autocast is None else f"autocast {str(autocast).replace('torch.', '')}",
            "views": {
                "preset": self.preset,
                "specs": [asdict(s) for s in views.resolve_specs(self.preset)],
                "draws": int(self.config["draws"]),
                "seed_rule": SEED_RULE,
            },
        }

    # --- scoring ---
    def score(self, batch: Sequence[VideoSample]) -> dict[str, np.ndarray]:
        if self.network is None:
            raise RuntimeError(f"{self.name}: call load() before score()")
        specs = views.resolve_specs(self.preset)
        k_draws = int(self.config["draws"])
        step = int(self.config["video_batch"])
        total = {name: np.zeros(len(batch)) for name in self.network.branch_names}
        for start in range(0, len(batch), step):
            group = batch[start : start + step]
            frames = [torch.as_tensor(s.frames).to(self.device, non_blocking=True) for s in group]
            generators = [seeded_draws(_seed(s), s.video, k_draws) for s in group]
            for _ in range(k_draws):
                built = [views.sample_views(f, specs, next(g))[0] for f, g in zip(frames, generators)]
                stacked = {name: torch.stack([b[name] for b in built]) for name in built[0]}
                for name, values in self.forward(stacked).items():
                    total[name][start : start + len(group)] += values
        raw = {name: values / k_draws for name, values in total.items()}
        if not all(np.all(np.isfinite(v)) for v in raw.values()):
            raise VbenchPrefError(f"{self.name}: non-finite score (NaN or inf in the network output)")
        return self.finish(raw)

    def forward(self, stacked: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        assert self.network is not None
        autocast = self.autocast_dtype()
        context = torch.autocast("cuda", dtype=autocast) if autocast is not None else contextlib.nullcontext()
        with torch.inference_mode(), context:
            out = self.network(stacked)
        return {name: value.float().cpu().double().numpy() for name, value in out.items()}


def _seed(sample: VideoSample) -> int:
    # outside the engine (the Python API) a sample without a seed gets run seed 0's
    seed = sample.extras.get("seed")
    return video_seed(0, sample.video) if seed is None else int(seed)


def _load_any_size(family: str, path: Path) -> tuple[models.VQANetwork, str]:
    """The published size, or else the project's tiny test size (smoke-test checkpoints); one line if neither."""
    try:
        return models.load_network(family, path, size="full"), "full"
    except VbenchPrefError as full_error:
        try:
            return models.load_network(family, path, size="tiny"), "tiny"
        except VbenchPrefError:
            raise full_error from None
    except FileNotFoundError:
        raise WeightsMissingError(f"weight file {path} does not exist") from None
