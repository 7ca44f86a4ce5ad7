"""Training specs against the pipelines they train: latents, text, noising, denoiser calls, lambda_t.

Every expected value is computed here independently of the specs (formulas written out, the pipelines' own
calls captured with a forward hook), so a layout or normalisation mistake in a spec fails a test.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from vbench_pref.errors import VbenchPrefError
from vbench_pref.generate.models import LoadedModel, load_model
from vbench_pref.train.models import SPECS, training_spec
from vbench_pref.train.models.unet3d import ddpm_step_precision
from vbench_pref.train.models.wan import (
    FLOW_DT,
    FLOW_NOISE_LEVEL,
    WanSpec,
    flow_step_precision,
)

pytest.importorskip("diffusers")
pytestmark = pytest.mark.usefixtures("tiny_model_cache")


@dataclass(frozen=True)
class Case:
    model: str
    frames: int
    height: int
    width: int


CASES = {
    "wan": Case("builtin:tiny-wan", 5, 32, 32),
    "cogvideox": Case("builtin:tiny-cogvideox", 9, 32, 48),
    "unet3d": Case("builtin:tiny-unet", 4, 32, 48),
    "animatediff": Case("builtin:tiny-animatediff", 4, 32, 48),
}
FAMILIES = list(CASES)
PROMPT = "a red fox runs through snow"

# AutoencoderKLWan's default per-channel latent statistics (Wan2.1's VAE), written out here on purpose.
WAN_MEAN = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
            0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921]
WAN_STD = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
           3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160]
COGVIDEOX_SCALE = 1.15258426
SD_VAE_SCALE = 0.18215


@dataclass
class Run:
    """One 2-step pipeline call without guidance: its final latents, its decoded frames and its denoiser calls."""

    latents: torch.Tensor
    pixels: torch.Tensor  # output_type="pt": (B, F, C, H, W) in [0, 1]
    calls: list[tuple[tuple[Any, ...], dict[str, Any], Any]]


@pytest.fixture(scope="module")
def model() -> Callable[[str], LoadedModel]:
    cache: dict[str, LoadedModel] = {}

    def get(family: str) -> LoadedModel:
        if family not in cache:
            cache[family] = load_model(CASES[family].model)
        return cache[family]

    return get


def _run(pipeline: Any, denoiser: torch.nn.Module, case: Case, output_type: str) -> tuple[Any, list[Any]]:
    calls: list[Any] = []
    hook = denoiser.register_forward_hook(lambda _m, args, kwargs, out: calls.append((args, kwargs, out)), with_kwargs=True)
    try:
        with torch.no_grad():
            out = pipeline(
                prompt=[PROMPT], num_frames=case.frames, height=case.height, width=case.width, num_inference_steps=2,
                guidance_scale=1.0, generator=torch.Generator().manual_seed(7), output_type=output_type,
            ).frames
    finally:
        hook.remove()
    return out, calls


@pytest.fixture(scope="module")
def run(model: Callable[[str], LoadedModel]) -> Callable[[str], Run]:
    cache: dict[str, Run] = {}

    def get(family: str) -> Run:
        if family not in cache:
            loaded = model(family)
            denoiser = getattr(loaded.pipeline, loaded.family.denoiser)
            latents, calls = _run(loaded.pipeline, denoiser, CASES[family], "latent")
            pixels, _ = _run(loaded.pipeline, denoiser, CASES[family], "pt")
            cache[family] = Run(latents, pixels, calls)
        return cache[family]

    return get


def _video(case: Case, batch: int = 2, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, case.frames, case.height, case.width, generator=generator) * 2 - 1


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


# --- latents ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_decode_latents_matches_the_pipelines_own_decoding(family: str, model, run) -> None:
    loaded, result = model(family), run(family)
    decoded = SPECS[family].decode_latents(loaded.pipeline, result.latents)
    assert decoded.dtype == torch.float32 and decoded.shape[:3] == (1, 3, CASES[family].frames)
    # the pipeline's "pt" output is (B, F, C, H, W) in [0, 1]
    assert torch.allclose((decoded.permute(0, 2, 1, 3, 4) + 1) / 2, result.pixels, atol=1e-5)


def _direct_latents(family: str, vae: Any, pixels: torch.Tensor) -> torch.Tensor:
    """The VAE's posterior mode, normalised and laid out as the family's sampler expects, written out here."""
    with torch.no_grad():
        if family == "wan":
            mean = torch.tensor(WAN_MEAN).view(1, 16, 1, 1, 1)
            std = torch.tensor(WAN_STD).view(1, 16, 1, 1, 1)
            return (vae.encode(pixels).latent_dist.mode() - mean) / std
        if family == "cogvideox":
            return (vae.encode(pixels).latent_dist.mode() * COGVIDEOX_SCALE).permute(0, 2, 1, 3, 4)
        frames = [vae.encode(pixels[:, :, f]).latent_dist.mode() * SD_VAE_SCALE for f in range(pixels.shape[2])]
        return torch.stack(frames, dim=2)


@pytest.mark.parametrize("family", FAMILIES)
def test_encode_videos_normalises_the_vae_mode_into_the_samplers_layout(family: str, model, run) -> None:
    loaded, spec, case = model(family), SPECS[family], CASES[family]
    vae = loaded.pipeline.vae
    if family == "wan":
        assert list(vae.config.latents_mean) == WAN_MEAN and list(vae.config.latents_std) == WAN_STD
    pixels = _video(case)
    latents = spec.encode_videos(loaded.pipeline, pixels)
    # the layout the pipeline samples in, batch first
    assert latents.shape == (2, *run(family).latents.shape[1:]) and latents.dtype == torch.float32
    assert torch.allclose(latents, _direct_latents(family, vae, pixels), atol=1e-5)
    # denormalising inverts the normalisation: decode(encode(x)) is the VAE's own reconstruction of its mode
    if family == "wan":
        raw = vae.encode(pixels).latent_dist.mode()
        reconstruction = vae.decode(raw).sample
    elif family == "cogvideox":
        reconstruction = vae.decode(vae.encode(pixels).latent_dist.mode()).sample
    else:
        frames = [vae.decode(vae.encode(pixels[:, :, f]).latent_dist.mode()).sample for f in range(case.frames)]
        reconstruction = torch.stack(frames, dim=2)
    decoded = spec.decode_latents(loaded.pipeline, latents)
    assert decoded.shape == pixels.shape
    assert torch.allclose(decoded, reconstruction.detach().clamp(-1, 1), atol=1e-5)


def test_wan_latents_with_a_bfloat16_transformer_and_float32_vae() -> None:
    loaded = load_model("builtin:tiny-wan", dtype=torch.bfloat16)
    spec = SPECS["wan"]
    latents = spec.encode_videos(loaded.pipeline, _video(CASES["wan"], batch=1))
    assert latents.dtype == torch.float32
    conditions = spec.encode_prompts(loaded.pipeline, [PROMPT])
    timesteps = torch.tensor([500.0])
    noised = spec.add_noise(loaded.pipeline, latents, torch.randn_like(latents), timesteps)
    prediction = spec.predict(loaded.pipeline.transformer, loaded.pipeline, noised.noisy, timesteps, conditions)
    assert prediction.dtype == torch.float32 and prediction.shape == noised.target.shape
    assert torch.isfinite(prediction).all()


# --- text ------------------------------------------------------------------------------------------------


def _pipeline_text(family: str, pipeline: Any, prompts: list[str]) -> torch.Tensor:
    with torch.no_grad():
        if family in ("wan", "cogvideox"):
            # max_sequence_length: the defaults of WanPipeline.__call__ (512) and CogVideoXPipeline.__call__ (226)
            length = 512 if family == "wan" else 226
            return pipeline.encode_prompt(prompts, do_classifier_free_guidance=False, max_sequence_length=length)[0]
        return pipeline.encode_prompt(prompts, torch.device("cpu"), 1, False)[0]


@pytest.mark.parametrize("family", FAMILIES)
def test_text_conditions_are_the_pipelines_prompt_embeddings(family: str, model) -> None:
    loaded, spec = model(family), SPECS[family]
    prompts = ["a cat playing the piano", "waves at sunset"]
    conditions = spec.encode_prompts(loaded.pipeline, prompts)
    states = conditions["encoder_hidden_states"]
    assert set(conditions) == {"encoder_hidden_states"} and states.device.type == "cpu"
    assert torch.equal(states, _pipeline_text(family, loaded.pipeline, prompts))
    # one row per prompt, in order: each row is what that prompt alone encodes to
    assert states.shape[0] == 2 and not torch.allclose(states[0], states[1])
    assert torch.allclose(spec.encode_prompts(loaded.pipeline, [prompts[1]])["encoder_hidden_states"][0], states[1], atol=1e-6)


# --- noising ---------------------------------------------------------------------------------------------


def test_flow_noising_and_velocity_target(model) -> None:
    pipeline = model("wan").pipeline
    spec = SPECS["wan"]
    assert pipeline.scheduler.config.shift == 3.0  # the tiny Wan's FlowMatchEulerDiscreteScheduler(shift=3.0)
    timesteps = spec.sample_timesteps(pipeline, 3, torch.Generator().manual_seed(3))
    sigma = torch.sigmoid(torch.randn(3, generator=torch.Generator().manual_seed(3)))
    shifted = 3.0 * sigma / (1 + 2.0 * sigma)
    assert torch.allclose(timesteps, shifted * 1000, atol=1e-3)
    x0 = torch.randn(3, 16, 3, 4, 4)
    noise = torch.randn(3, 16, 3, 4, 4)
    noised = spec.add_noise(pipeline, x0, noise, timesteps)
    s = shifted.view(3, 1, 1, 1, 1)
    assert torch.allclose(noised.noisy, (1 - s) * x0 + s * noise, atol=1e-5)
    assert torch.allclose(noised.target, noise - x0)
    assert torch.allclose(spec.normalized_time(pipeline, timesteps), shifted, atol=1e-6)


def _sd_alphas_cumprod(schedule: str) -> torch.Tensor:
    """alpha_bar of the tiny UNets' DDIM schedulers (beta 0.00085 -> 0.012 over 1000 steps)."""
    if schedule == "scaled_linear":
        betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    else:
        betas = torch.linspace(0.00085, 0.012, 1000, dtype=torch.float64)
    return torch.cumprod(1 - betas, dim=0)


@pytest.mark.parametrize("family", ["cogvideox", "unet3d", "animatediff"])
def test_ddpm_noising_and_targets(family: str, model) -> None:
    pipeline, spec = model(family).pipeline, SPECS[family]
    if family == "cogvideox":
        table = pipeline.scheduler.alphas_cumprod.double().cpu()
    else:
        table = _sd_alphas_cumprod("scaled_linear" if family == "unet3d" else "linear")
    timesteps = torch.tensor([0, 371, 999])
    shape = (3, 3, 4, 4, 6) if family == "cogvideox" else (3, 4, 4, 16, 24)
    x0, noise = torch.randn(shape), torch.randn(shape)
    noised = spec.add_noise(pipeline, x0, noise, timesteps)
    a = _per_sample(table[timesteps], x0)
    assert torch.allclose(noised.noisy, a.sqrt() * x0 + (1 - a).sqrt() * noise, atol=1e-5)
    expected = a.sqrt() * noise - (1 - a).sqrt() * x0 if family == "cogvideox" else noise
    assert torch.allclose(noised.target, expected, atol=1e-5)
    assert torch.allclose(spec.normalized_time(pipeline, timesteps), timesteps / 1000)


# --- denoiser calls --------------------------------------------------------------------------------------


def _replay(family: str, loaded: LoadedModel, calls: list[Any], spec: Any = None) -> None:
    """Feed every captured denoiser input through ``spec.predict`` and expect the captured output back."""
    spec = spec or SPECS[family]
    denoiser = getattr(loaded.pipeline, loaded.family.denoiser)
    conditions = spec.encode_prompts(loaded.pipeline, [PROMPT])
    assert calls
    for args, kwargs, out in calls:
        if family in ("wan", "cogvideox"):
            noisy, timestep = kwargs["hidden_states"], kwargs["timestep"]
            expected = out[0]
        else:
            noisy, timestep = args[0], args[1].reshape(1)
            expected = out[0] if isinstance(out, tuple) else out.sample
        if timestep.ndim == 2:  # Wan2.2's per-token timesteps, all equal in text-to-video
            assert (timestep == timestep[:, :1]).all()
            timestep = timestep[:, 0]
        prediction = spec.predict(denoiser, loaded.pipeline, noisy, timestep, conditions)
        assert prediction.shape == noisy.shape
        assert torch.allclose(prediction, expected, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_predict_calls_the_denoiser_as_the_pipeline_does(family: str, model, run) -> None:
    loaded, result = model(family), run(family)
    _replay(family, loaded, result.calls)
    # the target of latents in the spec's layout has the prediction's shape
    spec = SPECS[family]
    latents = spec.encode_videos(loaded.pipeline, _video(CASES[family], batch=1))
    timesteps = spec.sample_timesteps(loaded.pipeline, 1, torch.Generator().manual_seed(0))
    noised = spec.add_noise(loaded.pipeline, latents, torch.randn_like(latents), timesteps)
    prediction = spec.predict(
        getattr(loaded.pipeline, loaded.family.denoiser), loaded.pipeline, noised.noisy, timesteps,
        spec.encode_prompts(loaded.pipeline, [PROMPT]),
    )
    assert prediction.shape == noised.target.shape == result.latents.shape


@pytest.mark.parametrize("family", FAMILIES)
def test_predict_keeps_each_sample_with_its_own_text_and_timestep(family: str, model) -> None:
    """A batch predicts what its samples predict one by one (catches text or timesteps paired with the wrong
    sample, e.g. per-frame text states tiled instead of repeated frame by frame)."""
    loaded, spec = model(family), SPECS[family]
    denoiser = getattr(loaded.pipeline, loaded.family.denoiser)
    latents = spec.encode_videos(loaded.pipeline, _video(CASES[family], batch=2))
    timesteps = spec.sample_timesteps(loaded.pipeline, 2, torch.Generator().manual_seed(5))
    noisy = spec.add_noise(loaded.pipeline, latents, torch.randn_like(latents), timesteps).noisy
    text = spec.encode_prompts(loaded.pipeline, ["a cat playing the piano", "waves at sunset"])
    batch = spec.predict(denoiser, loaded.pipeline, noisy, timesteps, text)
    for i in range(2):
        single = spec.predict(
            denoiser, loaded.pipeline, noisy[i:i + 1], timesteps[i:i + 1],
            {key: value[i:i + 1] for key, value in text.items()},
        )
        assert torch.allclose(batch[i:i + 1], single, atol=1e-5)


def test_cogvideox_rotary_embeddings_are_passed_as_the_pipeline_passes_them(model) -> None:
    from diffusers import CogVideoXPipeline, CogVideoXTransformer3DModel

    base = model("cogvideox")
    torch.manual_seed(0)
    # CogVideoX-5b's T2V layout: rotary positions, sin-cos off; heads of 16 dims for RoPE's 1/4 + 3/8 + 3/8 split.
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=2, attention_head_dim=16, in_channels=4, out_channels=4, time_embed_dim=8, text_embed_dim=32,
        num_layers=1, patch_size=2, temporal_compression_ratio=4, sample_width=6, sample_height=4, sample_frames=9,
        max_text_seq_length=226, use_rotary_positional_embeddings=True,
    ).eval()
    pipeline = CogVideoXPipeline(**{**base.pipeline.components, "transformer": transformer})
    pipeline.set_progress_bar_config(disable=True)
    _, calls = _run(pipeline, transformer, CASES["cogvideox"], "latent")
    assert calls[0][1]["image_rotary_emb"] is not None
    _replay("cogvideox", dataclasses.replace(base, pipeline=pipeline), calls)


def test_wan22_per_token_timesteps_equal_one_per_sample(model) -> None:
    from diffusers import WanPipeline

    base = model("wan")
    pipeline = WanPipeline(**base.pipeline.components, expand_timesteps=True)
    pipeline.set_progress_bar_config(disable=True)
    _, calls = _run(pipeline, pipeline.transformer, CASES["wan"], "latent")
    assert calls[0][1]["timestep"].ndim == 2
    _replay("wan", dataclasses.replace(base, pipeline=pipeline), calls)


# --- timesteps -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_timestep_sampling_is_reproducible_and_in_range(family: str, model) -> None:
    pipeline, spec = model(family).pipeline, SPECS[family]
    first = spec.sample_timesteps(pipeline, 500, torch.Generator().manual_seed(11))
    again = spec.sample_timesteps(pipeline, 500, torch.Generator().manual_seed(11))
    other = spec.sample_timesteps(pipeline, 500, torch.Generator().manual_seed(12))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert first.shape == (500,) and first.device.type == "cpu"
    if family == "wan":
        assert first.dtype == torch.float32 and (first > 0).all() and (first < 1000).all()
    else:
        assert first.dtype == torch.int64 and first.min() >= 0 and first.max() <= 999
        assert len(first.unique()) > 300  # spread over the whole range, not a handful of values
    normalized = spec.normalized_time(pipeline, first)
    assert (normalized >= 0).all() and (normalized <= 1).all()


def test_logit_normal_concentrates_sigma_in_the_middle(model) -> None:
    pipeline = model("wan").pipeline

    def spread(sampling: str) -> float:
        spec = WanSpec(timestep_sampling=sampling)
        shifted = spec.normalized_time(pipeline, spec.sample_timesteps(pipeline, 4000, torch.Generator().manual_seed(0)))
        sigma = shifted / (3.0 - 2.0 * shifted)  # undo the shift 3s / (1 + 2s)
        return float((sigma - 0.5).abs().mean())

    uniform, logit_normal = spread("uniform"), spread("logit_normal")
    assert abs(uniform - 0.25) < 0.01  # E|U - 1/2| = 1/4
    assert abs(logit_normal - 0.175) < 0.01  # E|sigmoid(Z) - 1/2|, Z ~ N(0, 1)


def test_unknown_timestep_sampling_is_refused() -> None:
    with pytest.raises(VbenchPrefError, match="timestep sampling 'cosine'"):
        WanSpec(timestep_sampling="cosine")


# --- step precision --------------------------------------------------------------------------------------


def test_flow_step_precision_by_hand(model) -> None:
    # t = 0.5: s^2 = a^2 = 0.49, coefficient dt (1 + 0.49 * 0.5 / 1) = 0.02 * 1.245, variance 0.49 * 0.02
    expected = (0.02 * 1.245) ** 2 / (2 * 0.49 * 0.02)
    assert FLOW_DT == 1 / 50 and FLOW_NOISE_LEVEL == 0.7
    assert math.isclose(float(flow_step_precision(torch.tensor(0.5, dtype=torch.float64))), expected, rel_tol=1e-12)
    assert math.isclose(expected, 0.0316331632653, rel_tol=1e-9)
    pipeline, spec = model("wan").pipeline, SPECS["wan"]
    precision = spec.step_precision(pipeline, torch.tensor([500.0, 0.0, 1000.0]))
    assert precision.dtype == torch.float32 and precision.shape == (3,)
    assert math.isclose(float(precision[0]), expected, rel_tol=1e-5)
    everywhere = spec.step_precision(pipeline, torch.linspace(0, 1000, 1001))
    assert torch.isfinite(everywhere).all() and (everywhere > 0).all()
    # more noise, less information per step
    assert (everywhere[1:] <= everywhere[:-1]).all()


def test_ddpm_step_precision_by_hand(model) -> None:
    unet = model("unet3d").pipeline
    # t = 0 (a_{-1} = 1, b_0 = 1 - a_0 = 0.00085): coef = sqrt(b_0 / (1 - b_0)), so lambda = 1 / (2 (1 - b_0))
    assert math.isclose(float(SPECS["unet3d"].step_precision(unet, torch.tensor([0]))[0]), 1 / (2 * (1 - 0.00085)), rel_tol=1e-5)
    # t = 500 from the betas: lambda = a_{t-1} b_t / (2 a_t (1 - a_t)) for epsilon
    betas = unet.scheduler.betas.double()
    a_prev, a = torch.prod(1 - betas[:500]), torch.prod(1 - betas[:501])
    expected = float(a_prev * betas[500] / (2 * a * (1 - a)))
    assert math.isclose(float(SPECS["unet3d"].step_precision(unet, torch.tensor([500]))[0]), expected, rel_tol=1e-5)
    # v-prediction at t = 0: coef = sqrt(1 - a_0), lambda = (1 - a_0) / (2 b_0) = 1/2
    cog = model("cogvideox").pipeline
    assert math.isclose(float(SPECS["cogvideox"].step_precision(cog, torch.tensor([0]))[0]), 0.5, rel_tol=1e-5)
    # the same formula as a pure function
    value = ddpm_step_precision(torch.tensor([0.5], dtype=torch.float64), torch.tensor([0.6], dtype=torch.float64), "v")
    assert math.isclose(float(value[0]), 0.6 * (1 - 0.5 / 0.6) / (2 * 0.5), rel_tol=1e-12)
    for family in ("cogvideox", "unet3d", "animatediff"):
        pipeline = model(family).pipeline
        everywhere = SPECS[family].step_precision(pipeline, torch.arange(1000))
        assert everywhere.dtype == torch.float32 and everywhere.shape == (1000,)
        assert torch.isfinite(everywhere).all() and (everywhere > 0).all(), family


# --- which spec ------------------------------------------------------------------------------------------


def test_training_spec_per_family_and_refusals(model) -> None:
    for family in FAMILIES:
        assert training_spec(model(family)) is SPECS[family]
    assert {spec.prediction for spec in SPECS.values()} == {"flow", "v", "epsilon"}
    with pytest.raises(VbenchPrefError) as refused:
        training_spec(load_model("builtin:tiny-wan-i2v"))
    assert str(refused.value) == (
        "training image-to-video models is not supported yet; use the text-to-video pipeline of the family"
    )
    loaded = model("wan")
    stranger = dataclasses.replace(loaded, family=dataclasses.replace(loaded.family, name="mochi"))
    with pytest.raises(VbenchPrefError, match="training mochi models is not supported") as unknown:
        training_spec(stranger)
    assert "\n" not in str(unknown.value)
