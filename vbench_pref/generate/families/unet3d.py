"""UNet3D latent diffusion (ModelScope text-to-video, ZeroScope, VideoCrafter-style): text-to-video only."""

from __future__ import annotations

from typing import Any

import torch

from vbench_pref.generate.families.base import GenerationSettings, ModelFamily, inference_mode


def tiny_clip_text() -> tuple[Any, Any]:
    """Byte tokenizer + a 2-layer CLIP text encoder whose special-token ids match the tokenizer's."""
    from transformers import CLIPTextConfig, CLIPTextModel

    from vbench_pref.generate.tokenizer import byte_level_tokenizer

    tokenizer = byte_level_tokenizer(model_max_length=32)
    config = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_attention_heads=2, num_hidden_layers=2,
        max_position_embeddings=tokenizer.model_max_length, projection_dim=16,
        # CLIP pools at the first eos; the byte tokenizer has no bos, which the text model never reads anyway.
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id,
    )
    return tokenizer, CLIPTextModel(config)


def tiny_unet3d(image_to_video: bool = False) -> Any:
    """A random TextToVideoSDPipeline of a few hundred kB, with the real component classes."""
    if image_to_video:
        raise ValueError("the unet3d family has no image-to-video pipeline (TextToVideoSDPipeline is text-only)")
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        TextToVideoSDPipeline,
        UNet3DConditionModel,
    )

    torch.manual_seed(0)
    tokenizer, text_encoder = tiny_clip_text()
    unet = UNet3DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"), up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=text_encoder.config.hidden_size, attention_head_dim=4, norm_num_groups=4,
    )
    # Two blocks: one downsampling, so the latent is half the frame size rather than the real VAE's eighth.
    vae = AutoencoderKL(
        block_out_channels=(8, 8), in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, sample_size=32, norm_num_groups=2,
    )
    # damo-vilab/text-to-video-ms-1.7b's scheduler_config.json.
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
        steps_offset=1,
    )
    pipeline = TextToVideoSDPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler
    )
    return inference_mode(pipeline)


FAMILY = ModelFamily(
    name="unet3d",
    description="UNet3D latent diffusion, DDIM (TextToVideoSDPipeline: ModelScope T2V, ZeroScope)",
    pipelines=("TextToVideoSDPipeline",),
    denoiser="unet",
    # damo-vilab/text-to-video-ms-1.7b as the pipeline samples it by default: 256x256 (unet sample_size 32 times
    # the VAE's 8), 16 frames, 50 steps, guidance 9; 8 fps is what its examples export at.
    defaults=GenerationSettings(num_frames=16, height=256, width=256, steps=50, guidance=9.0, fps=8),
    # Frames are independent latents joined by temporal attention and convolution: any count works.
    frames_rule=(1, 0),
    # The SD VAE maps a latent pixel to 8x8; the UNet resizes its skip connections, so 8 is the only constraint.
    size_multiple=8,
    # None: ModelScope's reference inference runs everything in fp16, and the SD-1.x VAE is fp16-safe.
    fp32_components=(),
    tiny=tiny_unet3d,
    tiny_defaults=GenerationSettings(num_frames=4, height=32, width=48, steps=2, guidance=9.0, fps=8),
)
