"""UNet3D latent diffusion (``TextToVideoSDPipeline``): epsilon-prediction DDPM on per-frame SD-VAE latents.

Also home of the discrete-time DDPM pieces the CogVideoX spec shares: timestep sampling, the scheduler's
``alphas_cumprod`` and the per-step precision lambda_t of the reverse Gaussian step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from vbench_pref.errors import VbenchPrefError
from vbench_pref.train.models.base import Conditions, NoisedLatents, compute_dtype

# Frames through the 2-D VAE per call: AnimateDiff's decode_chunk_size, which keeps 512x512 VAE passes in memory.
VAE_CHUNK = 16
# Zero-terminal-SNR schedules reach alpha_bar = 0, where an epsilon prediction pins x0 with infinite precision.
_MIN_ALPHA_BAR = 1e-8


def ddpm_step_precision(alpha_bar: torch.Tensor, alpha_bar_prev: torch.Tensor, prediction: str) -> torch.Tensor:
    """lambda_t of the reverse step p(x_{t-1}|x_t) = N(mu_theta, b_t I) against the posterior q(x_{t-1}|x_t, x0).

    mu_theta - mu_q = coef0 (x0_hat - x0) with coef0 = sqrt(a_{t-1}) b_t / (1 - a_t), and x0_hat - x0 is
    -sqrt(1-a_t)/sqrt(a_t) (eps_hat - eps) for epsilon or -sqrt(1-a_t) (v_hat - v) for v-prediction; the
    variance is the "fixed large" b_t, which is never zero, so lambda_t = coef^2 / (2 b_t). The step's beta is
    ``1 - a_t / a_{t-1}``, the one consistent with ``alphas_cumprod`` even where a scheduler rescales those
    after computing its betas (CogVideoX's SNR shift and zero-terminal-SNR rescale).
    """
    alpha_bar = alpha_bar.double()
    alpha_bar_prev = alpha_bar_prev.double()
    if prediction == "epsilon":
        alpha_bar = alpha_bar.clamp(min=_MIN_ALPHA_BAR)
    beta = 1 - alpha_bar / alpha_bar_prev
    coef0 = alpha_bar_prev.sqrt() * beta / (1 - alpha_bar)
    if prediction == "epsilon":
        coef = coef0 * (1 - alpha_bar).sqrt() / alpha_bar.sqrt()
    elif prediction == "v":
        coef = coef0 * (1 - alpha_bar).sqrt()
    else:
        raise ValueError(f"no DDPM step precision for prediction {prediction!r} (epsilon or v)")
    return coef**2 / (2 * beta)


def alphas_cumprod(scheduler: Any) -> torch.Tensor:
    """The scheduler's alpha_bar table as float64 on the CPU (add_noise moves the scheduler's own copy around)."""
    return scheduler.alphas_cumprod.detach().to(device="cpu", dtype=torch.float64)


def ddpm_num_train_timesteps(scheduler: Any) -> int:
    return int(scheduler.config.num_train_timesteps)


def sample_ddpm_timesteps(scheduler: Any, n: int, generator: torch.Generator) -> torch.Tensor:
    """Uniform integer timesteps in [0, num_train_timesteps), int64 on the CPU."""
    return torch.randint(0, ddpm_num_train_timesteps(scheduler), (n,), generator=generator, dtype=torch.int64)


def ddpm_precision_at(scheduler: Any, timesteps: torch.Tensor, prediction: str) -> torch.Tensor:
    """lambda_t for integer ``timesteps`` from the scheduler's table, with a_{-1} = 1; float32 (B,)."""
    table = alphas_cumprod(scheduler)
    t = timesteps.detach().to("cpu", torch.int64)
    previous = torch.where(t > 0, table[(t - 1).clamp(min=0)], torch.ones_like(t, dtype=torch.float64))
    return ddpm_step_precision(table[t], previous, prediction).to(device=timesteps.device, dtype=torch.float32)


def check_prediction_type(pipeline: Any, expected: str, family: str) -> None:
    """The target is fixed by the spec; a checkpoint whose scheduler says otherwise would be trained wrongly."""
    found = pipeline.scheduler.config.get("prediction_type", "epsilon")
    if found != expected:
        raise VbenchPrefError(
            f"the {family} trainer regresses {expected} but this model's scheduler predicts {found}"
        )


@dataclass(frozen=True)
class UNet3DSpec:
    """Epsilon prediction for ``TextToVideoSDPipeline``; latents (B, C, F, H, W), frames encoded one by one."""

    family: str = field(default="unet3d", init=False)
    prediction: str = field(default="epsilon", init=False)

    def encode_prompts(self, pipeline: Any, prompts: list[str]) -> Conditions:
        with torch.no_grad():
            embeds, _ = pipeline.encode_prompt(list(prompts), pipeline._execution_device, 1, False)
        return {"encoder_hidden_states": embeds.cpu()}

    def encode_videos(self, pipeline: Any, pixels: torch.Tensor) -> torch.Tensor:
        """``scaling_factor * mode`` of every frame (the posterior mode, so a cached latent needs no seed);
        float32 on ``pixels``' device."""
        vae = pipeline.vae
        batch, channels, frames, height, width = pixels.shape
        images = pixels.permute(0, 2, 1, 3, 4).reshape(batch * frames, channels, height, width)
        with torch.no_grad():
            latents = torch.cat([
                vae.encode(chunk.to(device=vae.device, dtype=vae.dtype)).latent_dist.mode().float().to(pixels.device)
                for chunk in images.split(VAE_CHUNK)
            ])
        latents = latents * vae.config.scaling_factor
        return latents.reshape(batch, frames, *latents.shape[1:]).permute(0, 2, 1, 3, 4)

    def decode_latents(self, pipeline: Any, latents: torch.Tensor) -> torch.Tensor:
        """The pipelines' ``decode_latents``: pixels (B, C, F, H, W) in [-1, 1], float32 on ``latents``' device."""
        vae = pipeline.vae
        batch, channels, frames, height, width = latents.shape
        images = latents.permute(0, 2, 1, 3, 4).reshape(batch * frames, channels, height, width)
        images = images.float() / vae.config.scaling_factor
        with torch.no_grad():
            decoded = torch.cat([
                vae.decode(chunk.to(device=vae.device, dtype=vae.dtype)).sample.float().to(latents.device)
                for chunk in images.split(VAE_CHUNK)
            ])
        video = decoded.reshape(batch, frames, *decoded.shape[1:]).permute(0, 2, 1, 3, 4)
        return video.clamp(-1, 1)

    def sample_timesteps(self, pipeline: Any, n: int, generator: torch.Generator) -> torch.Tensor:
        return sample_ddpm_timesteps(pipeline.scheduler, n, generator)

    def add_noise(self, pipeline: Any, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> NoisedLatents:
        check_prediction_type(pipeline, "epsilon", self.family)
        noisy = pipeline.scheduler.add_noise(latents, noise, timesteps.to(latents.device))
        return NoisedLatents(noisy=noisy, target=noise)

    def predict(self, denoiser: Any, pipeline: Any, noisy: torch.Tensor, timesteps: torch.Tensor,
                conditions: Conditions) -> torch.Tensor:
        dtype = compute_dtype(denoiser)
        text = self._frame_conditions(conditions["encoder_hidden_states"], noisy.shape[2])
        prediction = denoiser(
            noisy.to(dtype), timesteps.to(noisy.device), encoder_hidden_states=text.to(device=noisy.device, dtype=dtype),
            return_dict=False,
        )[0]
        return prediction.to(noisy.dtype)

    def _frame_conditions(self, encoder_hidden_states: torch.Tensor, frames: int) -> torch.Tensor:
        """UNet3DConditionModel repeats the text states over frames itself."""
        return encoder_hidden_states

    def normalized_time(self, pipeline: Any, timesteps: torch.Tensor) -> torch.Tensor:
        return timesteps.to(torch.float32) / ddpm_num_train_timesteps(pipeline.scheduler)

    def step_precision(self, pipeline: Any, timesteps: torch.Tensor) -> torch.Tensor:
        return ddpm_precision_at(pipeline.scheduler, timesteps, "epsilon")


SPEC = UNet3DSpec()
