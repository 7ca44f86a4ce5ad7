"""CogVideoX text-to-video: v-prediction DDPM on scaled 3D-VAE latents in the transformer's (B, F, C, H, W).

The noise schedule is the pipeline scheduler's own ``alphas_cumprod`` (with CogVideoX's SNR shift and
zero-terminal-SNR rescale), so the noised inputs are the ones the sampler walks through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from vbench_pref.errors import VbenchPrefError
from vbench_pref.train.models.base import Conditions, NoisedLatents, compute_dtype, encode_t5_prompts
from vbench_pref.train.models.unet3d import (
    check_prediction_type,
    ddpm_num_train_timesteps,
    ddpm_precision_at,
    sample_ddpm_timesteps,
)


@dataclass(frozen=True)
class CogVideoXSpec:
    """v-prediction for ``CogVideoXPipeline`` (CogVideoX 1.0 and 1.5 transformers)."""

    family: str = field(default="cogvideox", init=False)
    prediction: str = field(default="v", init=False)

    def encode_prompts(self, pipeline: Any, prompts: list[str]) -> Conditions:
        """T5 states padded to the pipeline's ``max_sequence_length`` (226: the transformer's text slots)."""
        return encode_t5_prompts(pipeline, prompts, default_length=226)

    def encode_videos(self, pipeline: Any, pixels: torch.Tensor) -> torch.Tensor:
        """``scaling_factor * mode`` permuted to (B, F, C, H, W), the inverse of the pipeline's
        ``decode_latents``; the posterior mode so a cached latent needs no seed. Float32 on ``pixels``' device."""
        vae = pipeline.vae
        latents = []
        with torch.no_grad():
            for video in pixels:
                z = vae.encode(video[None].to(device=vae.device, dtype=vae.dtype)).latent_dist.mode()
                latents.append(z.float().to(pixels.device))
        return (torch.cat(latents) * vae.config.scaling_factor).permute(0, 2, 1, 3, 4)

    def decode_latents(self, pipeline: Any, latents: torch.Tensor) -> torch.Tensor:
        """Pixels (B, C, F, H, W) in [-1, 1], float32 on ``latents``' device."""
        vae = pipeline.vae
        videos = []
        with torch.no_grad():
            for z in latents:
                z = z[None].permute(0, 2, 1, 3, 4).float() / vae.config.scaling_factor
                video = vae.decode(z.to(device=vae.device, dtype=vae.dtype)).sample
                videos.append(video.float().clamp(-1, 1).to(latents.device))
        return torch.cat(videos)

    def sample_timesteps(self, pipeline: Any, n: int, generator: torch.Generator) -> torch.Tensor:
        return sample_ddpm_timesteps(pipeline.scheduler, n, generator)

    def add_noise(self, pipeline: Any, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> NoisedLatents:
        check_prediction_type(pipeline, "v_prediction", self.family)
        scheduler, t = pipeline.scheduler, timesteps.to(latents.device)
        return NoisedLatents(noisy=scheduler.add_noise(latents, noise, t), target=scheduler.get_velocity(latents, noise, t))

    def predict(self, denoiser: Any, pipeline: Any, noisy: torch.Tensor, timesteps: torch.Tensor,
                conditions: Conditions) -> torch.Tensor:
        """The transformer called as CogVideoXPipeline calls it, rotary embeddings included where configured."""
        config = getattr(denoiser, "module", denoiser).config
        frames = noisy.shape[1]
        if config.patch_size_t is not None and frames % config.patch_size_t:
            valid = frames + config.patch_size_t - frames % config.patch_size_t
            example = (valid - 1) * pipeline.vae_scale_factor_temporal + 1
            raise VbenchPrefError(
                f"this CogVideoX groups {config.patch_size_t} latent frames per token but the videos have {frames} "
                f"latent frames: use videos whose latent frame count is a multiple of {config.patch_size_t}, "
                f"e.g. {example} frames"
            )
        rotary = None
        if config.use_rotary_positional_embeddings:
            scale = pipeline.vae_scale_factor_spatial
            rotary = pipeline._prepare_rotary_positional_embeddings(
                noisy.shape[3] * scale, noisy.shape[4] * scale, frames, noisy.device
            )
        dtype = compute_dtype(denoiser)
        prediction = denoiser(
            hidden_states=noisy.to(dtype),
            encoder_hidden_states=conditions["encoder_hidden_states"].to(device=noisy.device, dtype=dtype),
            timestep=timesteps.to(noisy.device), image_rotary_emb=rotary, return_dict=False,
        )[0]
        return prediction.to(noisy.dtype)

    def normalized_time(self, pipeline: Any, timesteps: torch.Tensor) -> torch.Tensor:
        return timesteps.to(torch.float32) / ddpm_num_train_timesteps(pipeline.scheduler)

    def step_precision(self, pipeline: Any, timesteps: torch.Tensor) -> torch.Tensor:
        return ddpm_precision_at(pipeline.scheduler, timesteps, "v")


SPEC = CogVideoXSpec()
