"""CogVideoX 1.0 (DiT over text + video tokens, causal 3D VAE): text-to-video and image-to-video."""

from __future__ import annotations

from typing import Any

import torch

from vbench_pref.generate.families.base import GenerationSettings, ModelFamily, inference_mode

# The pipelines pad every prompt to this many T5 tokens, and the transformer's joint positional embedding has
# exactly this many text slots (max_text_seq_length): the two must agree or the forward pass fails on shapes.
TEXT_TOKENS = 226

# The VAE compresses 8x spatially and 4x temporally (4k+1 frames -> k+1 latents); the transformer then patchifies
# the latent 2x2, so a size must be a multiple of 8 * 2 = 16 for the patch grid to cover the latent exactly.
SPATIAL_COMPRESSION = 8
PATCH_SIZE = 2


def _tiny_text_encoder() -> tuple[Any, Any]:
    """Byte tokenizer + a 2-layer T5 encoder, gated-GELU like the t5-v1_1-xxl that CogVideoX ships with."""
    from transformers import T5Config, T5EncoderModel

    from vbench_pref.generate.tokenizer import byte_level_tokenizer

    tokenizer = byte_level_tokenizer(model_max_length=TEXT_TOKENS)
    config = T5Config(
        vocab_size=len(tokenizer), d_model=32, d_kv=8, num_heads=4, num_layers=2, d_ff=64,
        feed_forward_proj="gated-gelu", pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    return tokenizer, T5EncoderModel(config)


def _tiny_vae() -> Any:
    from diffusers import AutoencoderKLCogVideoX

    # Four blocks as in the real VAE: three of them downsample, giving the same 8x spatial factor.
    return AutoencoderKLCogVideoX(
        in_channels=3, out_channels=3,
        down_block_types=("CogVideoXDownBlock3D",) * 4, up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8), latent_channels=4, layers_per_block=1, norm_num_groups=2,
        temporal_compression_ratio=4,
    )


def tiny_cogvideox(image_to_video: bool = False) -> Any:
    """A random CogVideoX pipeline well under a MB, with the real component classes.

    T2V is shaped like CogVideoX-2b (sin-cos positions, DDIM); I2V like CogVideoX-5b-I2V (RoPE plus learned
    positions, image latents concatenated on channels, DPM). Learned positions pin I2V to the size it was built
    for, so its ``sample_height``/``sample_width`` are the tiny defaults' latent size.
    """
    from diffusers import (
        CogVideoXDDIMScheduler,
        CogVideoXDPMScheduler,
        CogVideoXImageToVideoPipeline,
        CogVideoXPipeline,
        CogVideoXTransformer3DModel,
    )

    torch.manual_seed(0)
    tokenizer, text_encoder = _tiny_text_encoder()
    vae = _tiny_vae()
    transformer_config: dict[str, Any] = {
        "num_attention_heads": 4, "attention_head_dim": 8, "in_channels": 4, "out_channels": 4, "time_embed_dim": 8,
        "text_embed_dim": 32, "num_layers": 2, "patch_size": PATCH_SIZE, "temporal_compression_ratio": 4,
        "sample_width": TINY_DEFAULTS.width // SPATIAL_COMPRESSION,
        "sample_height": TINY_DEFAULTS.height // SPATIAL_COMPRESSION,
        "sample_frames": TINY_DEFAULTS.num_frames, "max_text_seq_length": TEXT_TOKENS,
    }
    # The values of the released scheduler configs that differ from the class defaults.
    scheduler_config: dict[str, Any] = {
        "clip_sample": False, "prediction_type": "v_prediction", "rescale_betas_zero_snr": True,
        "timestep_spacing": "trailing",
    }
    components = {"tokenizer": tokenizer, "text_encoder": text_encoder, "vae": vae}
    if not image_to_video:
        transformer = CogVideoXTransformer3DModel(**transformer_config)
        scheduler = CogVideoXDDIMScheduler(**scheduler_config)
        return inference_mode(CogVideoXPipeline(**components, transformer=transformer, scheduler=scheduler))
    # RoPE splits each head 1/4 time, 3/8 height, 3/8 width in even parts, so heads need a multiple of 16 dims.
    transformer = CogVideoXTransformer3DModel(
        **{**transformer_config, "num_attention_heads": 2, "attention_head_dim": 16, "in_channels": 8},
        use_rotary_positional_embeddings=True, use_learned_positional_embeddings=True,
    )
    scheduler = CogVideoXDPMScheduler(**scheduler_config)
    return inference_mode(CogVideoXImageToVideoPipeline(**components, transformer=transformer, scheduler=scheduler))


TINY_DEFAULTS = GenerationSettings(num_frames=9, height=32, width=48, steps=2, guidance=6.0, fps=8)

FAMILY = ModelFamily(
    name="cogvideox",
    description="CogVideoX DiT, v-prediction DDIM/DPM (CogVideoXPipeline, CogVideoXImageToVideoPipeline)",
    pipelines=("CogVideoXPipeline", "CogVideoXImageToVideoPipeline"),
    image_pipelines=("CogVideoXImageToVideoPipeline",),
    denoiser="transformer",
    # CogVideoX-2b/5b reference sampling (inference/cli_demo.py, model cards): 720x480, 49 frames (6 s at 8 fps
    # plus the first frame), 50 steps, guidance 6, no negative prompt.
    defaults=GenerationSettings(num_frames=49, height=480, width=720, steps=50, guidance=6.0, fps=8),
    frames_rule=(4, 1),
    size_multiple=SPATIAL_COMPRESSION * PATCH_SIZE,
    # None: the reference code runs T5, transformer and VAE all in bf16/fp16, and T5's overflow-prone ``wo``
    # projections are already kept in fp32 by transformers itself (T5's _keep_in_fp32_modules).
    fp32_components=(),
    tiny=tiny_cogvideox,
    tiny_defaults=TINY_DEFAULTS,
)
