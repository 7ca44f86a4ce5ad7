"""Wan2.1 / Wan2.2 (flow matching DiT with a causal 3D VAE): text-to-video and image-to-video."""

from __future__ import annotations

from typing import Any

import torch

from vbench_pref.generate.families.base import GenerationSettings, ModelFamily, inference_mode

# The negative prompt of Wan's reference sampler (wan/configs/shared_config.py: sample_neg_prompt).
WAN_NEGATIVE_PROMPT = (
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，"
    "丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，"
    "静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走"
)


def tiny_wan(image_to_video: bool = False) -> Any:
    """A random Wan pipeline a few hundred kB in size, with the real component classes."""
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline, WanPipeline
    from diffusers import WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    from vbench_pref.generate.tokenizer import byte_level_tokenizer

    torch.manual_seed(0)
    tokenizer = byte_level_tokenizer(model_max_length=64)
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=len(tokenizer), d_model=32, d_kv=8, num_heads=4, num_layers=2, d_ff=64,
            pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
        )
    )
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True])
    transformer_config: dict[str, Any] = dict(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
        text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    if not image_to_video:
        transformer = WanTransformer3DModel(**transformer_config)
        return inference_mode(
            WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=scheduler, transformer=transformer)
        )

    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    image_encoder = CLIPVisionModel(
        CLIPVisionConfig(
            hidden_size=4, num_hidden_layers=2, num_attention_heads=2, image_size=32,
            intermediate_size=16, patch_size=1,
        )
    )
    image_processor = CLIPImageProcessor(crop_size=32, size=32)
    transformer = WanTransformer3DModel(**{**transformer_config, "in_channels": 36, "image_dim": 4})
    return inference_mode(
        WanImageToVideoPipeline(
            tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=scheduler, transformer=transformer,
            image_encoder=image_encoder, image_processor=image_processor,
        )
    )


FAMILY = ModelFamily(
    name="wan",
    description="Wan2.1/2.2 DiT, flow matching (WanPipeline, WanImageToVideoPipeline)",
    pipelines=("WanPipeline", "WanImageToVideoPipeline"),
    image_pipelines=("WanImageToVideoPipeline",),
    denoiser="transformer",
    # Wan2.1-T2V-1.3B's reference sampling: 832x480, 81 frames at 16 fps, 50 steps, guidance 5.
    defaults=GenerationSettings(
        num_frames=81, height=480, width=832, steps=50, guidance=5.0, fps=16, negative_prompt=WAN_NEGATIVE_PROMPT
    ),
    frames_rule=(4, 1),
    size_multiple=16,
    fp32_components=("vae", "image_encoder"),
    tiny=tiny_wan,
    tiny_defaults=GenerationSettings(num_frames=9, height=64, width=64, steps=4, guidance=5.0, fps=16),
)
