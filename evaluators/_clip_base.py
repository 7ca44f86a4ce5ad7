"""What the CLIP-family evaluators share: backbone options, weight resolution, residency and provenance."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from vbench_pref import weights as weight_files
from vbench_pref.errors import VbenchPrefError, WeightsMissingError
from vbench_pref.evaluator import Evaluator, Option, SharedModels, VideoSample
from vbench_pref.openclip import PRECISIONS, ClipBackbone, Compute, arch_name, clip_frame_spec, image_size, resolve_compute
from vbench_pref.video import FrameSpec

CHECKPOINT_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def frame_options(antialias: bool | None, reference: str) -> tuple[Option, ...]:
    """Options every CLIP-family evaluator has; ``antialias=None``: the view has no antialias choice."""
    options = [
        Option("num_frames", 0, "frames per video: 0 = every frame (VBench), N = N evenly spaced"),
        Option("frame_batch", 64, "frames per forward pass of the image encoder (frames are prepared per batch)"),
        Option(
            "precision", "run",
            f"run: the run's --dtype (autocast); reference: as {reference} runs on this device (float32 on the "
            "CPU); float32: always float32",
            PRECISIONS,
        ),
    ]
    if antialias is not None:
        options.append(Option("antialias", antialias, "low-pass filter when shrinking frames to the model's input size"))
    return tuple(options)


def weight_option(name: str, what: str) -> Option:
    return Option(
        name,
        "official",
        f"{what}: 'official' (the manifest file, see `vbench-pref weights list`), a local file or folder, "
        "or 'random' (untrained weights, smoke tests only; scores are labelled)",
    )


class ClipFamilyEvaluator(Evaluator):
    """An evaluator on an open_clip image (and text) encoder; subclasses add their head and formula."""

    backbone_option = "weights"  # the option naming the backbone weights
    # How the reference runs its model (see openclip.resolve_compute): "openai_clip" or "cuda_amp".
    reference_precision: str = "openai_clip"
    lazy_frames = True  # frames are prepared a batch at a time (openclip._frame_batches)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if int(self.config["frame_batch"]) < 1:
            raise VbenchPrefError(f"{self.name}: frame_batch must be at least 1")
        self._spec = self.build_frame_spec()
        self.backbone: ClipBackbone | None = None
        self.compute = Compute()  # resolved for the device in load()
        self._weights: list[dict[str, Any]] = []

    # --- what subclasses say ---
    @property
    def arch(self) -> str:
        return arch_name(str(self.config["model"]))

    @property
    def quick_gelu(self) -> bool:
        return bool(self.config.get("quick_gelu", True))

    def backbone_spec(self) -> weight_files.WeightSpec | None:
        """The manifest entry of the backbone weights for this architecture, or None if there is none."""
        raise NotImplementedError

    def head_specs(self) -> list[tuple[str, weight_files.WeightSpec | None]]:
        """(option name, manifest entry) of any further weight files."""
        return []

    def build_frame_spec(self) -> FrameSpec:
        """VBench's ``clip_transform`` on ``load_video``'s float frames (subclasses with other references override)."""
        return clip_frame_spec(image_size(self.arch), int(self.config["num_frames"]), antialias=bool(self.config["antialias"]))

    # --- the card's runtime side ---
    def frame_spec(self) -> FrameSpec:
        return self._spec

    def required_weights(self) -> tuple[weight_files.WeightSpec, ...]:
        pairs = [(self.backbone_option, self.backbone_spec()), *self.head_specs()]
        return tuple(spec for option, spec in pairs if spec is not None and self.config[option] == "official")

    @property
    def uses_random_weights(self) -> bool:
        options = [self.backbone_option, *(option for option, _ in self.head_specs())]
        return any(self.config[o] == "random" for o in options)

    def residency_key(self) -> str:
        half = ":float16" if self.compute.half_weights else ""
        return f"open_clip:{self.arch}:{self.config[self.backbone_option]}:{self.quick_gelu}{half}"

    def missing_weights(self) -> str | None:
        for option, spec in [(self.backbone_option, self.backbone_spec()), *self.head_specs()]:
            value = str(self.config[option])
            if value == "random":
                continue
            try:
                if value != "official":
                    _local_file(value, spec)
                elif spec is None:
                    return f"{self.name}: no published weights for {self.arch}; pass -O {self.name}.{option}=/path"
                elif weight_files.locate(spec) is None:
                    return weight_files.missing_message(spec, self.name, option)
            except VbenchPrefError as exc:
                return str(exc)
        return None

    def resolve(self, option: str, spec: weight_files.WeightSpec | None) -> Path | None:
        """The file behind ``option`` (None for 'random'); its sha256 and how it was checked are recorded.

        A local file named like the manifest's file is held to the manifest's hash (it claims to be that
        file); a file with another name is the user's own checkpoint and is recorded as unverified.
        """
        value = str(self.config[option])
        if value == "random":
            self._weights.append({"option": option, "weights": "random"})
            return None
        if value == "official":
            if spec is None:
                raise WeightsMissingError(
                    f"{self.name}: no published weights for {self.arch}; pass -O {self.name}.{option}=/path"
                )
            resolved = weight_files.resolve(spec, None, evaluator=self.name, option=option)
        else:
            path = _local_file(value, spec)
            if spec is not None and path.name == spec.filename:  # it claims to be the published file
                resolved = weight_files.resolve(spec, str(path), evaluator=self.name, option=option)
            else:
                self._weights.append(
                    {"option": option, "weights": "local", "file": str(path), "sha256": weight_files.file_digests(path)["sha256"],
                     "verified_by": "unverified (a user checkpoint: its name is not the manifest's)"}
                )
                return path
        self._weights.append({"option": option, **resolved.provenance()})
        return resolved.path

    def load(
        self,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        shared: SharedModels | None = None,
    ) -> None:
        super().load(device, dtype, shared)
        self._weights = []
        self.compute = resolve_compute(str(self.config["precision"]), self.reference_precision, self.device, self.dtype)
        path = self.resolve(self.backbone_option, self.backbone_spec())
        self.backbone = ClipBackbone.shared(shared, self.arch, path, self.quick_gelu, self.compute.half_weights)
        self.load_heads()

    def load_heads(self) -> None:
        """Read any weights besides the backbone (after ``self.backbone`` is set)."""

    def device_models(self) -> tuple[Any, ...]:
        return (self.backbone,)

    def deactivate(self) -> None:
        if self.backbone is not None:
            self.backbone.clear_images()
        super().deactivate()

    def chunk_done(self) -> None:
        if self.backbone is not None:
            self.backbone.clear_images()

    def weight_provenance(self) -> list[dict[str, Any]]:
        extra = {"arch": self.arch, "quick_gelu": self.quick_gelu}
        return [{**extra, **w} for w in self._weights]

    def provenance(self) -> dict[str, Any]:
        # the option says what was asked ("reference"); this says what ran on the device
        return {**super().provenance(), "precision": self.compute.describe()}

    # --- helpers for score() ---
    def embeddings(self, batch: Sequence[VideoSample]) -> list[torch.Tensor]:
        if self.backbone is None:
            raise RuntimeError(f"{self.name}: call load() before score()")
        self.backbone.to(self.device)
        return self.backbone.video_embeddings(batch, self._spec, self.compute, int(self.config["frame_batch"]))

    def prompt_embeddings(self, batch: Sequence[VideoSample]) -> torch.Tensor:
        assert self.backbone is not None
        missing = [s.video for s in batch if not s.prompt]
        if missing:
            raise VbenchPrefError(f"{self.name} needs a prompt; {missing[0]} has none")
        return self.backbone.text_embeddings([str(s.prompt) for s in batch], self.compute)


def _local_file(value: str, spec: weight_files.WeightSpec | None) -> Path:
    """A user-given weight file, or a folder holding the manifest's file name (or open_clip's names)."""
    path = Path(value).expanduser()
    if path.is_dir():
        names = ([spec.filename] if spec is not None else []) + list(CHECKPOINT_NAMES)
        for name in names:
            if (path / name).is_file():
                return path / name
        raise WeightsMissingError(f"{path} holds none of {', '.join(dict.fromkeys(names))}")
    if not path.is_file():
        raise WeightsMissingError(f"weight file {path} does not exist")
    return path


def resolve_weights_option(value: str, spec: weight_files.WeightSpec, evaluator: str,
                           option: str = "weights") -> tuple[Path, dict[str, Any]]:
    """A ``weights`` option's file ('official': the manifest's; else a file or a folder holding it) and what
    run.json records about it. A file named otherwise than the manifest's is the user's own checkpoint:
    recorded with its sha256, unverified."""
    if value == "official":
        resolved = weight_files.resolve(spec, None, evaluator=evaluator, option=option)
    else:
        path = _local_file(value, spec)
        if path.name != spec.filename:
            return path, {"option": option, "weights": "local", "file": str(path),
                          "sha256": weight_files.file_digests(path)["sha256"],
                          "verified_by": "unverified (a user checkpoint: its name is not the manifest's)"}
        resolved = weight_files.resolve(spec, str(path), evaluator=evaluator, option=option)
    return resolved.path, {"option": option, **resolved.provenance()}


def weights_option_missing(value: str, spec: weight_files.WeightSpec, evaluator: str) -> str | None:
    """``missing_weights`` of a ``weights`` option ('official', 'random', or a file or folder): None when
    ``load`` can find the file, else the one line saying how to get it."""
    try:
        if value == "random":
            return None
        if value != "official":
            _local_file(value, spec)
        elif weight_files.locate(spec) is None:
            return weight_files.missing_message(spec, evaluator, "weights")
    except VbenchPrefError as exc:
        return str(exc)
    return None


class WeightsOption:
    """An evaluator's ``weights`` option on one manifest entry (``weight_spec``): 'official' (the manifest's
    file), a file or folder, or 'random'. Listed before the evaluator base class, so these win over its defaults."""

    name: str
    config: dict[str, Any]
    weight_spec: weight_files.WeightSpec

    @property
    def uses_random_weights(self) -> bool:
        return self.config["weights"] == "random"

    def required_weights(self) -> tuple[weight_files.WeightSpec, ...]:
        return (self.weight_spec,) if self.config["weights"] == "official" else ()

    def missing_weights(self) -> str | None:
        return weights_option_missing(str(self.config["weights"]), self.weight_spec, self.name)
