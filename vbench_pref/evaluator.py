"""The evaluator interface: a typed card readable without loading weights, ``load`` and ``score``.

A card says what an evaluator measures (its scores, their direction and range), what frames it needs,
whether it reads the prompt, which weights it loads and which reference implementation it follows.
The constructor does no I/O; ``load`` builds the model; ``score`` returns one value per video and score.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Literal, Sequence

import numpy as np
import torch

from vbench_pref.errors import VbenchPrefError
from vbench_pref.video import FrameSpec, FrameView
from vbench_pref.weights import WeightSpec


@dataclass(frozen=True)
class ScoreSpec:
    """One number an evaluator produces per video."""

    name: str
    higher_is_better: bool
    range: tuple[float, float] = (-math.inf, math.inf)
    description: str = ""

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"


@dataclass(frozen=True)
class Option:
    """A user-settable evaluator option (``-O evaluator.name=value`` on the CLI)."""

    name: str
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None

    def parse(self, text: str) -> Any:
        kind = type(self.default)
        if kind is bool:
            lowered = text.strip().lower()
            if lowered not in {"1", "0", "true", "false", "yes", "no"}:
                raise VbenchPrefError(f"option {self.name} takes true/false, got {text!r}")
            value: Any = lowered in {"1", "true", "yes"}
        elif kind in (int, float):
            try:
                value = kind(text)
            except ValueError:
                raise VbenchPrefError(f"option {self.name} takes a {kind.__name__}, got {text!r}") from None
        else:
            value = text
        return value


@dataclass
class VideoSample:
    """One video as an evaluator sees it: its frame view (T x H x W x 3, RGB) and its context.

    ``frames`` is a tensor (uint8, or float32 in [0, 1] for a float ``FrameSpec.pixels``), or, for an
    evaluator with ``lazy_frames``, possibly a ``FrameView`` whose frames are derived when sliced.
    """

    video: str
    frames: torch.Tensor | FrameView
    timestamps: np.ndarray
    fps: float
    prompt: str | None = None
    image: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)


class SharedModels:
    """Models shared between the evaluators of one run, built once per key (e.g. one CLIP backbone)."""

    def __init__(self) -> None:
        self._models: dict[Any, Any] = {}

    def get_or_create(self, key: Any, factory: Callable[[], Any]) -> Any:
        if key not in self._models:
            self._models[key] = factory()
        return self._models[key]

    def __contains__(self, key: Any) -> bool:
        return key in self._models

    def __len__(self) -> int:
        return len(self._models)


class Evaluator(abc.ABC):
    """Base class of every evaluator. Subclasses fill the card and implement ``score``."""

    # --- the card (class attributes; no weights needed to read them) ---
    name: ClassVar[str]
    version: ClassVar[str]
    scores: ClassVar[tuple[ScoreSpec, ...]]
    frames: ClassVar[FrameSpec]
    needs_prompt: ClassVar[bool] = False
    weights: ClassVar[tuple[WeightSpec, ...]] = ()
    reference: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()
    # The score a bare NAME stands for where one number is needed (``pairs --reward NAME``) when the
    # evaluator has several, e.g. a reward model's overall score beside its sub-scores; None: no default.
    primary_score: ClassVar[str | None] = None
    # True: the engine may pass a FrameView (frames derived per slice) instead of a whole tensor, so a long
    # video's resized or float view never exists whole; the evaluator then reads frames a batch at a time.
    lazy_frames: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        known = {o.name: o for o in self.options}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise VbenchPrefError(
                f"{self.name}: unknown option(s) {', '.join(unknown)}; "
                f"known: {', '.join(known) or 'none'}"
            )
        self.config: dict[str, Any] = {o.name: o.default for o in self.options}
        for key, value in options.items():
            if isinstance(value, str) and not isinstance(known[key].default, str):
                value = known[key].parse(value)
            choices = known[key].choices
            if choices is not None and value not in choices:
                raise VbenchPrefError(
                    f"{self.name}: option {key} must be one of {', '.join(map(str, choices))}, got {value!r}"
                )
            self.config[key] = value
        self.device = torch.device("cpu")
        self.dtype = torch.float32

    # --- what the engine asks ---
    def frame_spec(self) -> FrameSpec:
        """The frames this instance needs; options may change the class default."""
        return self.frames

    @property
    def uses_random_weights(self) -> bool:
        """True when scores come from randomly initialised weights (smoke tests only)."""
        return False

    def missing_weights(self) -> str | None:
        """None when ``load`` can find its weights; else one line naming the file and how to get it."""
        return None

    def required_weights(self) -> tuple[WeightSpec, ...]:
        """The manifest entries this instance loads under its options (the card lists every possible one)."""
        return self.weights

    def load(
        self,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        shared: SharedModels | None = None,
    ) -> None:
        """Read weights and build models on the CPU; ``activate`` moves them to ``device``.

        Raise WeightsMissingError when weights are not available. Evaluators that can share a model
        with others (same backbone, same weights) take it from ``shared`` so it is built once per run.
        """
        self.device = torch.device(device)
        self.dtype = dtype

    def residency_key(self) -> str:
        """Evaluators with equal keys use the same device models and are scored back to back.

        The engine keeps one key's models on the accelerator at a time, so a run never holds two big
        models in device memory; evaluators sharing a backbone return the backbone's key.
        """
        return self.name

    def device_models(self) -> tuple[Any, ...]:
        """The models (anything with ``.to(device)``; None while not loaded) that ``activate`` moves to
        ``self.device`` and ``deactivate`` back to the CPU."""
        return ()

    def activate(self) -> None:
        """Move this evaluator's models to ``self.device`` (called before its batches are scored)."""
        for model in self.device_models():
            if model is not None:
                model.to(self.device)

    def deactivate(self) -> None:
        """Move models back to the CPU to free device memory for the next residency group."""
        for model in self.device_models():
            if model is not None:
                model.to(torch.device("cpu"))

    def chunk_done(self) -> None:
        """The engine finished a chunk of videos: drop per-video caches (e.g. shared embeddings)."""

    @abc.abstractmethod
    def score(self, batch: Sequence[VideoSample]) -> dict[str, np.ndarray]:
        """Per-video values for every declared score: ``{score_name: array of len(batch)}``.

        Raise ScoreError (or any exception) when a video cannot be scored; the engine then scores the
        batch one video at a time and records the failing ones in errors.csv.
        """

    def provenance(self) -> dict[str, Any]:
        """What run.json records about this evaluator (after ``load``): versions, options, weight hashes."""
        return {
            "name": self.name,
            "version": self.version,
            "options": dict(self.config),
            "frames": self.frame_spec().describe(),
            "reference": self.reference,
            "weights": self.weight_provenance(),
            "random_weights": self.uses_random_weights,
        }

    def weight_provenance(self) -> list[dict[str, Any]]:
        """The weight files in use with their sha256; evaluators that load weights override this."""
        return []

    # --- helpers derived from the card ---
    @classmethod
    def columns(cls) -> list[str]:
        """Column names in scores.csv: ``<evaluator>`` for a single score, else ``<evaluator>.<score>``."""
        if len(cls.scores) == 1:
            return [cls.name]
        return [f"{cls.name}.{s.name}" for s in cls.scores]

    @classmethod
    def column_specs(cls) -> dict[str, ScoreSpec]:
        return dict(zip(cls.columns(), cls.scores))

    @classmethod
    def card(cls) -> dict[str, Any]:
        return {
            "name": cls.name,
            "version": cls.version,
            "description": cls.description,
            "scores": [
                {
                    "column": col,
                    "name": s.name,
                    "higher_is_better": s.higher_is_better,
                    "range": list(s.range),
                    "description": s.description,
                }
                for col, s in cls.column_specs().items()
            ],
            "frames": cls.frames.describe(),
            "needs_prompt": cls.needs_prompt,
            "weights": [w.describe() for w in cls.weights],
            "reference": cls.reference,
            "primary_score": cls.primary_score,
            "options": [
                {"name": o.name, "default": o.default, "help": o.help, "choices": o.choices}
                for o in cls.options
            ],
        }


@dataclass(frozen=True)
class DistanceSpec:
    """One run-level number of a set-level evaluator: a distance between the run's features and a reference set's.

    ``kind``: ``"frechet"`` (Fréchet distance of the fitted Gaussians: FVD, FID) or ``"kid"`` (unbiased
    polynomial-kernel MMD^2); see ``vbench_pref.distribution.distance``. Every distance is lower-is-better.
    """

    name: str
    kind: Literal["frechet", "kid"]
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("frechet", "kid"):
            raise ValueError(f"DistanceSpec.kind must be 'frechet' or 'kid', got {self.kind!r}")

    @property
    def range(self) -> tuple[float, float]:
        # the Fréchet distance is >= 0; the unbiased MMD^2 estimate can dip below 0
        return (0.0, math.inf) if self.kind == "frechet" else (-math.inf, math.inf)


class SetEvaluator(Evaluator):
    """An evaluator of a set of videos: per video it gives feature vectors, per run distances to a reference set.

    To wrap a feature network, fill the card and implement ``features``; ``load``, ``activate``,
    ``deactivate``, ``missing_weights``, ``required_weights``, ``weight_provenance`` and ``options`` are as
    for per-video evaluators. The engine decodes each video once into ``frame_spec()``, batches videos
    (``--batch-size``), calls ``features`` and stores the rows in the run folder (``features/<name>/``,
    resumable); when the run finishes it fits the run's rows and the reference set's (``--reference``) and
    writes each distance of ``distances`` to summary.json with its bootstrap interval.

    Card, beside ``name``, ``version``, ``frames``, ``weights``, ``reference``, ``description``:

    - ``distances``: the distances it reports (``DistanceSpec``); the summary column of a single distance is
      the evaluator's name, of several ``<name>.<distance>``;
    - ``feature_dim``: the length of one feature vector;
    - ``sample_size``: the number of feature vectors its users report with (2048 videos for FVD, 50000
      images for FID); fewer in either set gives a warning (None: no warning);
    - ``sample_unit``: what one feature vector stands for, ``"videos"`` or ``"frames"`` (for the warning).

    Everything that changes the features must be in ``version``, ``options``, ``frame_spec()``, the weight
    files or the run's dtype: a reference set records them (``identity``) and is refused by runs that differ.
    Options that only say where a file is (a weights path: its sha256 is compared instead) are listed in
    ``location_options`` and left out of the identity.
    """

    scores: ClassVar[tuple[ScoreSpec, ...]] = ()  # no per-video score
    distances: ClassVar[tuple[DistanceSpec, ...]]
    feature_dim: ClassVar[int]
    sample_size: ClassVar[int | None] = None
    sample_unit: ClassVar[str] = "videos"
    location_options: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    def features(self, batch: Sequence[VideoSample]) -> list[np.ndarray | torch.Tensor]:
        """Per video of ``batch``, in order, its feature vectors: ``(feature_dim,)`` or ``(k, feature_dim)``
        (k >= 1, e.g. one per frame for FID). Raise ScoreError (or any exception) when a video cannot be
        featurised; the engine then retries the batch one video at a time and records the failing ones.
        """

    def score(self, batch: Sequence[VideoSample]) -> dict[str, np.ndarray]:
        raise TypeError(f"{self.name} is a set-level evaluator: it gives features(), not per-video scores")

    def identity(self) -> dict[str, Any]:
        """What must be equal for two sets' features to be compared (recorded with a reference set).

        Complete after ``load``; before it the weights, random weights and dtype are not known yet.
        """
        return set_identity(self.provenance(), type(self), str(self.dtype).removeprefix("torch."))

    def identity_before_load(self) -> dict[str, Any]:
        """The parts of ``identity`` known without loading anything (weights, random weights, dtype left empty)."""
        provenance = {"name": self.name, "version": self.version, "options": dict(self.config),
                      "frames": self.frame_spec().describe(), "weights": [], "random_weights": None}
        return set_identity(provenance, type(self), "")

    @classmethod
    def distance_columns(cls) -> dict[str, DistanceSpec]:
        """Summary column -> distance: ``<evaluator>`` for a single distance, else ``<evaluator>.<distance>``."""
        if len(cls.distances) == 1:
            return {cls.name: cls.distances[0]}
        return {f"{cls.name}.{d.name}": d for d in cls.distances}

    @classmethod
    def columns(cls) -> list[str]:
        return list(cls.distance_columns())

    @classmethod
    def card(cls) -> dict[str, Any]:
        card = super().card()
        card["scores"] = [
            {"column": column, "name": d.name, "higher_is_better": False, "range": list(d.range),
             "description": d.description, "kind": d.kind}
            for column, d in cls.distance_columns().items()
        ]
        card.update(set_level=True, feature_dim=cls.feature_dim, sample_size=cls.sample_size, sample_unit=cls.sample_unit)
        return card


def set_identity(provenance: dict[str, Any], card: type[SetEvaluator], dtype: str) -> dict[str, Any]:
    """A set-level evaluator's identity from its ``provenance()`` (as run.json records it, too) and the run's dtype."""
    return {
        "evaluator": provenance["name"],
        "version": provenance["version"],
        "options": {k: str(v) for k, v in sorted(provenance["options"].items()) if k not in card.location_options},
        "frames": provenance["frames"],
        "feature_dim": card.feature_dim,
        "weights": sorted(str(w.get("sha256")) for w in provenance["weights"]),
        "random_weights": provenance["random_weights"],
        "dtype": dtype,
    }
