"""What the trainer asks of a model family: encode, noise, predict; one implementation per family.

A ``TrainingSpec`` answers "given clean latents, conditions, t and noise: prediction and target", plus the
two encoders the latent cache needs (the pipeline's own VAE and text encoder, normalised exactly as the
pipeline's sampler expects) and the family's timestep distribution. Chosen and rejected share t and noise;
that pairing is the trainer's job, not the spec's.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Protocol

import torch

Conditions = dict[str, torch.Tensor]  # per-sample text conditioning, batch first (e.g. encoder_hidden_states)


@dataclass(frozen=True)
class NoisedLatents:
    """The model input at timestep t and the regression target of the family's parameterisation."""

    noisy: torch.Tensor
    target: torch.Tensor


class TrainingSpec(Protocol):
    family: str  # the generation family's name ("wan", "cogvideox", "unet3d", "animatediff")
    prediction: str  # "flow" (velocity noise - x0), "v" (v-prediction), "epsilon"

    def encode_prompts(self, pipeline: Any, prompts: list[str]) -> Conditions:
        """Text conditions for ``prompts`` through the pipeline's own ``encode_prompt`` (no CFG), on CPU."""

    def encode_videos(self, pipeline: Any, pixels: torch.Tensor) -> torch.Tensor:
        """Normalised latents of videos ``pixels`` (B, C, F, H, W) in [-1, 1]; the layout the denoiser takes."""

    def decode_latents(self, pipeline: Any, latents: torch.Tensor) -> torch.Tensor:
        """Inverse of ``encode_videos`` up to the VAE: pixels (B, C, F, H, W) in [-1, 1]."""

    def sample_timesteps(self, pipeline: Any, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` training timesteps in the denoiser's units (CPU, float32 or int64)."""

    def add_noise(self, pipeline: Any, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> NoisedLatents:
        """The noised latents at ``timesteps`` and the target the denoiser regresses."""

    def predict(self, denoiser: Any, pipeline: Any, noisy: torch.Tensor, timesteps: torch.Tensor,
                conditions: Conditions) -> torch.Tensor:
        """The denoiser's output for ``noisy`` (same shape as the target)."""

    def normalized_time(self, pipeline: Any, timesteps: torch.Tensor) -> torch.Tensor:
        """``timesteps`` mapped to [0, 1], 1 = pure noise (what DPO-C&M masks and plots are drawn on)."""

    def step_precision(self, pipeline: Any, timesteps: torch.Tensor) -> torch.Tensor:
        """lambda_t per sample: log p_theta(x_{t-1}|x_t) - log q(x_{t-1}|x_t, x0) = -lambda_t * e, where e
        is the per-element mean squared error of prediction vs target (expected value over x_{t-1} ~ q)."""


def call_default(pipeline: Any, name: str, fallback: Any) -> Any:
    """The default of a ``pipeline(...)`` argument, so training encodes exactly as generation does."""
    parameter = inspect.signature(type(pipeline).__call__).parameters.get(name)
    if parameter is None or parameter.default is inspect.Parameter.empty:
        return fallback
    return parameter.default


def compute_dtype(denoiser: Any) -> torch.dtype:
    """The dtype a denoiser computes in, through a DistributedDataParallel wrapper if there is one."""
    return getattr(denoiser, "module", denoiser).dtype


def encode_t5_prompts(pipeline: Any, prompts: list[str], default_length: int) -> Conditions:
    """T5 states padded to the ``max_sequence_length`` the pipeline's ``__call__`` uses, as generation computes them."""
    with torch.no_grad():
        embeds, _ = pipeline.encode_prompt(
            prompt=list(prompts), do_classifier_free_guidance=False, num_videos_per_prompt=1,
            max_sequence_length=call_default(pipeline, "max_sequence_length", default_length),
            device=pipeline._execution_device,
        )
    return {"encoder_hidden_states": embeds.cpu()}
