"""AnimateDiff (a Stable Diffusion 1.x UNet with motion modules inserted): text-to-video only."""

from __future__ import annotations

from typing import Any

import torch

from vbench_pref.generate.families.base import GenerationSettings, ModelFamily
from vbench_pref.generate.families.base import inference_mode
from vbench_pref.generate.families.unet3d import tiny_clip_text


def tiny_animatediff(image_to_video: bool = False) -> Any:
    """A random AnimateDiffPipeline of a few hundred kB: a tiny SD UNet plus a matching motion adapter."""
    if image_to_video:
        raise ValueError("the animatediff family has no image-to-video pipeline (AnimateDiffPipeline is text-only)")
    from diffusers import (
        AnimateDiffPipeline,
        AutoencoderKL,
        DDIMScheduler,
        MotionAdapter,
        UNet2DConditionModel,
    )

    torch.manual_seed(0)
    tokenizer, text_encoder = tiny_clip_text()
    block_out_channels, layers_per_block = (8, 16), 1
    unet = UNet2DConditionModel(
        block_out_channels=block_out_channels, layers_per_block=layers_per_block, sample_size=16, in_channels=4,
        out_channels=4, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=text_encoder.config.hidden_size,
        attention_head_dim=4, norm_num_groups=4,
    )
    # The adapter must mirror the UNet's blocks and layers per block, or UNetMotionModel.from_unet2d refuses it.
    motion_adapter = MotionAdapter(
        block_out_channels=block_out_channels, motion_layers_per_block=layers_per_block, motion_norm_num_groups=4,
        motion_num_attention_heads=2, motion_max_seq_length=32,
    )
    # Two blocks: one downsampling, so the latent is half the frame size rather than the real VAE's eighth.
    vae = AutoencoderKL(
        block_out_channels=(8, 8), in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, sample_size=32, norm_num_groups=2,
    )
    # The scheduler of AnimateDiff's reference inference config (configs/inference/inference-v*.yaml).
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="linear", clip_sample=False, steps_offset=1,
    )
    pipeline = AnimateDiffPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, motion_adapter=motion_adapter,
        scheduler=scheduler,
    )
    return inference_mode(pipeline)


FAMILY = ModelFamily(
    name="animatediff",
    description="AnimateDiff: SD-1.x UNet + motion adapter, DDIM (AnimateDiffPipeline)",
    pipelines=("AnimateDiffPipeline",),
    denoiser="unet",
    # AnimateDiff's reference inference (v1.5 motion module on SD-1.5 checkpoints): 512x512, 16 frames at 8 fps,
    # 25 steps, guidance 7.5.
    defaults=GenerationSettings(num_frames=16, height=512, width=512, steps=25, guidance=7.5, fps=8),
    # Each frame is its own SD latent; the motion modules' position table (motion_max_seq_length, 32 in the
    # released adapters) is the only bound, which a modulus rule cannot say: the pipeline itself fails above it.
    frames_rule=(1, 0),
    size_multiple=8,
    # None: the reference code runs UNet, motion modules and the SD-1.x VAE in fp16.
    fp32_components=(),
    tiny=tiny_animatediff,
    tiny_defaults=GenerationSettings(num_frames=4, height=32, width=48, steps=2, guidance=7.5, fps=8),
)
