"""Wan2.1 text-to-video: rectified-flow matching on the normalised latents of its causal 3D VAE.

The denoiser predicts the velocity ``noise - x0`` of the straight path ``x_t = (1 - sigma) x0 + sigma noise``
and reads ``sigma * num_train_timesteps`` as its timestep, exactly what ``WanPipeline`` feeds it while sampling.
Training sigmas go through the same shift ``s*sigma / (1 + (s-1)*sigma)`` the pipeline's scheduler applies at
inference, so training concentrates where sampling spends its steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from vbench_pref.errors import VbenchPrefError
from vbench_pref.train.models.base import Conditions, NoisedLatents, compute_dtype, encode_t5_prompts

# The reverse SDE behind the flow step's likelihood: an Euler-Maruyama step of size dt = 1/50 with noise level
# a = 0.7, as in PG-DPO appendix A.3 (Eq. 16-17); a = 0.7 is the noise level flow-GRPO samples its SDE with.
FLOW_DT = 1.0 / 50
FLOW_NOISE_LEVEL = 0.7
# The SDE's diffusion a*sqrt(t/(1-t)) vanishes at t = 0 and blows up at t = 1: t is clamped to
# [FLOW_T_CLAMP, 1 - FLOW_T_CLAMP] before lambda_t is read.
FLOW_T_CLAMP = 1e-3

TIMESTEP_SAMPLINGS = ("logit_normal", "uniform")
# Sampled sigmas stay strictly inside (0, 1), the open interval the flow's path and lambda_t are defined on.
_SIGMA_EPS = 1e-6


def shift_sigma(sigma: torch.Tensor, shift: float) -> torch.Tensor:
    """The flow schedulers' timestep shift ``s*sigma / (1 + (s-1)*sigma)``; ``shift=1`` is the identity."""
    return shift * sigma / (1 + (shift - 1) * sigma)


def scheduler_shift(scheduler: Any) -> float:
    """The static shift a flow scheduler samples with: ``shift`` (FlowMatchEulerDiscreteScheduler) or
    ``flow_shift`` (UniPC/DPM-Solver with flow sigmas, as Wan2.1 ships); 1.0 when neither is configured."""
    config = scheduler.config
    for key in ("shift", "flow_shift"):
        value = config.get(key)
        if value is not None:
            return float(value)
    return 1.0


def num_train_timesteps(scheduler: Any) -> int:
    return int(scheduler.config.get("num_train_timesteps") or 1000)


def flow_step_precision(t: torch.Tensor, dt: float = FLOW_DT, noise_level: float = FLOW_NOISE_LEVEL) -> torch.Tensor:
    """lambda_t of one Euler-Maruyama step of the flow's reverse SDE at t = sigma.

    With diffusion s_t = a*sqrt(t/(1-t)), the step mean depends on the velocity through
    ``dt * (1 + s_t^2 (1-t) / (2t))`` and the step variance is ``s_t^2 dt``; the Gaussian log ratio of the
    model's step against the one with the true velocity is then ``-lambda_t * ||v_hat - v||^2`` per element.
    (The mean's coefficient is the constant dt (1 + a^2/2); lambda_t falls as t, the noise, grows.)
    """
    t = t.clamp(FLOW_T_CLAMP, 1 - FLOW_T_CLAMP)
    variance = noise_level**2 * t / (1 - t)
    coefficient = dt * (1 + variance * (1 - t) / (2 * t))
    return coefficient**2 / (2 * variance * dt)


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, ..., 1) on ``like``'s device and dtype, to scale a batch of latents sample by sample."""
    return values.to(device=like.device, dtype=like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


def _latent_stats(vae: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    channels = int(vae.config.z_dim)
    mean = torch.tensor(vae.config.latents_mean, dtype=torch.float32, device=device).view(1, channels, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std, dtype=torch.float32, device=device).view(1, channels, 1, 1, 1)
    return mean, std


@dataclass(frozen=True)
class WanSpec:
    """Flow matching for ``WanPipeline``; latents (B, C, F, H, W) normalised by the VAE's per-channel stats.

    ``timestep_sampling``: ``logit_normal`` (sigma = sigmoid(N(0, 1)), SD3's choice, which favours
    mid-range noise) or ``uniform``.
    """

    timestep_sampling: str = "logit_normal"
    family: str = field(default="wan", init=False)
    prediction: str = field(default="flow", init=False)

    def __post_init__(self) -> None:
        if self.timestep_sampling not in TIMESTEP_SAMPLINGS:
            raise VbenchPrefError(
                f"timestep sampling {self.timestep_sampling!r} is not known (choose from {', '.join(TIMESTEP_SAMPLINGS)})"
            )

    def encode_prompts(self, pipeline: Any, prompts: list[str]) -> Conditions:
        """T5 states padded with zeros to the pipeline's ``max_sequence_length``, as generation computes them."""
        return encode_t5_prompts(pipeline, prompts, default_length=512)

    def encode_videos(self, pipeline: Any, pixels: torch.Tensor) -> torch.Tensor:
        """``(mode - latents_mean) / latents_std``: the inverse of what WanPipeline does before ``vae.decode``.

        The posterior mode rather than a sample, so a cached latent does not depend on a seed. One video at a
        time through the VAE (its memory grows with frames x pixels); returned float32 on ``pixels``' device.
        """
        vae = pipeline.vae
        mean, std = _latent_stats(vae, vae.device)
        latents = []
        with torch.no_grad():
            for video in pixels:
                z = vae.encode(video[None].to(device=vae.device, dtype=vae.dtype)).latent_dist.mode()
                latents.append(((z.float() - mean) / std).to(pixels.device))
        return torch.cat(latents)

    def decode_latents(self, pipeline: Any, latents: torch.Tensor) -> torch.Tensor:
        """Pixels (B, C, F, H, W) in [-1, 1], float32 on ``latents``' device, clamped as the pipeline's output."""
        vae = pipeline.vae
        mean, std = _latent_stats(vae, vae.device)
        videos = []
        with torch.no_grad():
            for z in latents:
                z = (z[None].to(device=vae.device, dtype=torch.float32) * std + mean).to(vae.dtype)
                video = vae.decode(z, return_dict=False)[0]
                videos.append(video.float().clamp(-1, 1).to(latents.device))
        return torch.cat(videos)

    def sample_timesteps(self, pipeline: Any, n: int, generator: torch.Generator) -> torch.Tensor:
        """Shifted sigmas times ``num_train_timesteps``: float32 on the CPU, in (0, num_train_timesteps)."""
        if self.timestep_sampling == "logit_normal":
            sigma = torch.sigmoid(torch.randn(n, generator=generator, dtype=torch.float32))
        else:
            sigma = torch.rand(n, generator=generator, dtype=torch.float32)
        sigma = shift_sigma(sigma.clamp(_SIGMA_EPS, 1 - _SIGMA_EPS), scheduler_shift(pipeline.scheduler))
        return sigma * num_train_timesteps(pipeline.scheduler)

    def add_noise(self, pipeline: Any, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> NoisedLatents:
        sigma = _per_sample(self.normalized_time(pipeline, timesteps), latents)
        return NoisedLatents(noisy=(1 - sigma) * latents + sigma * noise, target=noise - latents)

    def predict(self, denoiser: Any, pipeline: Any, noisy: torch.Tensor, timesteps: torch.Tensor,
                conditions: Conditions) -> torch.Tensor:
        """The transformer's velocity, called as WanPipeline calls it.

        One timestep per sample also serves Wan2.2 TI2V pipelines (``expand_timesteps``): without a conditioning
        image their per-token timesteps are all equal, which the transformer embeds exactly as a single one.
        """
        dtype = compute_dtype(denoiser)
        prediction = denoiser(
            hidden_states=noisy.to(dtype), timestep=timesteps.to(device=noisy.device, dtype=torch.float32),
            encoder_hidden_states=conditions["encoder_hidden_states"].to(device=noisy.device, dtype=dtype),
            return_dict=False,
        )[0]
        return prediction.to(noisy.dtype)

    def normalized_time(self, pipeline: Any, timesteps: torch.Tensor) -> torch.Tensor:
        """The shifted sigma itself: the fraction of noise in ``x_t``."""
        return timesteps.to(torch.float32) / num_train_timesteps(pipeline.scheduler)

    def step_precision(self, pipeline: Any, timesteps: torch.Tensor) -> torch.Tensor:
        return flow_step_precision(self.normalized_time(pipeline, timesteps))


SPEC = WanSpec()
