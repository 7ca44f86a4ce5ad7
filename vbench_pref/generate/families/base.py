"""What differs between video pipeline families: call arguments, defaults, valid sizes, tiny builders."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Any, Callable

import torch

from vbench_pref.errors import VbenchPrefError


def inference_mode(pipeline: Any) -> Any:
    """Modules built from config start in training mode; dropout there (T5's) would make every call random."""
    for component in pipeline.components.values():
        if isinstance(component, torch.nn.Module):
            component.eval()
    return pipeline


@dataclass(frozen=True)
class GenerationSettings:
    """Everything besides the prompt and seed that changes a generated video."""

    num_frames: int
    height: int
    width: int
    steps: int
    guidance: float
    fps: int
    negative_prompt: str | None = None

    def with_overrides(self, **overrides: Any) -> "GenerationSettings":
        """A copy with every override that is not None applied."""
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ModelFamily:
    """One family of diffusers video pipelines (Wan, CogVideoX, UNet3D, AnimateDiff).

    ``frames_rule=(a, b)`` means valid frame counts satisfy ``num_frames % a == b`` (Wan's temporal VAE
    compresses 4 frames into one latent after the first: 4k+1). ``fp32_components`` stay in float32 whatever
    the compute dtype, as the family's reference inference code keeps them (Wan's VAE). ``tiny`` builds a
    small random pipeline of the family from config, for tests and demos (``image_to_video`` selects the
    I2V pipeline).
    """

    name: str
    description: str
    pipelines: tuple[str, ...]
    defaults: GenerationSettings
    denoiser: str = "transformer"
    image_pipelines: tuple[str, ...] = ()
    frames_rule: tuple[int, int] = (1, 0)
    size_multiple: int = 8
    fp32_components: tuple[str, ...] = ()
    tiny: Callable[[bool], Any] | None = None
    tiny_defaults: GenerationSettings | None = None
    adjust_kwargs: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def takes_image(self, pipeline: Any) -> bool:
        return type(pipeline).__name__ in self.image_pipelines

    def check(self, settings: GenerationSettings) -> None:
        """Refuse settings the family's pipelines cannot produce, in one line saying what would work."""
        self.check_frames(settings.num_frames)
        self.check_size(settings.height, settings.width)
        if settings.steps < 1:
            raise VbenchPrefError("--steps must be at least 1")
        if settings.fps < 1:
            raise VbenchPrefError("--fps must be at least 1")

    def check_frames(self, num_frames: int, option: str = "--frames") -> None:
        """Refuse a frame count the family's VAE cannot encode or its pipelines cannot produce."""
        a, b = self.frames_rule
        if num_frames < 1 or num_frames % a != b:
            lower = max(b, num_frames - (num_frames - b) % a)
            hint = f"use {a}k+{b} frames, e.g. {lower} or {lower + a}" if a > 1 else "use at least 1"
            raise VbenchPrefError(f"{option} {num_frames} is not valid for {self.name}: {hint}")

    def check_size(self, height: int | None, width: int | None) -> None:
        for label, value in (("--height", height), ("--width", width)):
            if value is not None and (value < self.size_multiple or value % self.size_multiple):
                raise VbenchPrefError(f"{label} {value} is not valid for {self.name}: use a multiple of {self.size_multiple}")

    def call_kwargs(
        self,
        pipeline: Any,
        prompts: list[str],
        settings: GenerationSettings,
        generators: list[torch.Generator],
        images: list[Any] | None = None,
    ) -> dict[str, Any]:
        """Keyword arguments of ``pipeline(...)`` for one batch (one video per prompt, one generator each)."""
        kwargs: dict[str, Any] = {
            "prompt": prompts,
            "negative_prompt": None if settings.negative_prompt is None else [settings.negative_prompt] * len(prompts),
            "height": settings.height,
            "width": settings.width,
            "num_frames": settings.num_frames,
            "num_inference_steps": settings.steps,
            "guidance_scale": settings.guidance,
            "generator": generators,
            "output_type": "np",
        }
        if self.takes_image(pipeline):
            if images is None or len(images) != 1 or len(prompts) != 1:
                raise ValueError(f"{type(pipeline).__name__} is image-to-video: one prompt and one image per call")
            kwargs["image"] = images[0]
        if self.adjust_kwargs is not None:
            kwargs = self.adjust_kwargs(kwargs)
        accepted = inspect.signature(type(pipeline).__call__).parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
            kwargs = {k: v for k, v in kwargs.items() if k in accepted}
        return kwargs
