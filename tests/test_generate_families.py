"""Every pipeline family end to end on its tiny random model: save, load from disk, generate, validate settings."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from vbench_pref.errors import VbenchPrefError
from vbench_pref.generate.families import FAMILIES, family_of
from vbench_pref.generate.families.base import GenerationSettings, ModelFamily

# (family, image_to_video) for every pipeline a family can build tiny.
T2V_CASES = [(name, False) for name in ("wan", "cogvideox", "unet3d", "animatediff")]
I2V_CASES = [("wan", True), ("cogvideox", True)]
TEXT_ONLY = ["unet3d", "animatediff"]
PROMPTS = ["a red fox walking through snow", "a dog running on a beach"]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    # Kernels on these tensors are too small to split; with several threads, OpenMP hand-offs on a busy 2-core
    # runner made a 0.2 s generation take up to 8 s.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _case_id(case: tuple[str, bool]) -> str:
    return f"{case[0]}-{'i2v' if case[1] else 't2v'}"


def _cases(cases: list[tuple[str, bool]]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("loaded", cases, indirect=True, ids=_case_id)


@pytest.fixture(scope="module")
def loaded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelFamily, Any]:
    """The tiny pipeline after a round trip through disk, as a user's checkpoint would arrive."""
    from diffusers import DiffusionPipeline

    name, image_to_video = request.param
    family = FAMILIES[name]
    assert family.tiny is not None
    path = tmp_path_factory.mktemp(_case_id(request.param))
    family.tiny(image_to_video).save_pretrained(path)
    pipeline = DiffusionPipeline.from_pretrained(path)
    pipeline.set_progress_bar_config(disable=True)
    return family, pipeline


def _generators(*seeds: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed) for seed in seeds]


def _image(settings: GenerationSettings) -> Image.Image:
    ramp = np.linspace(0, 255, settings.width, dtype=np.uint8)
    return Image.fromarray(np.stack([np.tile(ramp, (settings.height, 1))] * 3, axis=-1))


def _generate(
    family: ModelFamily, pipeline: Any, prompts: list[str], seeds: tuple[int, ...], images: list[Any] | None = None
) -> np.ndarray:
    assert family.tiny_defaults is not None
    kwargs = family.call_kwargs(pipeline, prompts, family.tiny_defaults, _generators(*seeds), images)
    return pipeline(**kwargs).frames


def _assert_videos(frames: Any, count: int, settings: GenerationSettings) -> None:
    assert isinstance(frames, np.ndarray) and np.issubdtype(frames.dtype, np.floating)
    assert frames.shape == (count, settings.num_frames, settings.height, settings.width, 3)
    assert frames.min() >= 0.0 and frames.max() <= 1.0


@_cases(T2V_CASES + I2V_CASES)
def test_loaded_pipeline_maps_to_its_family(loaded: tuple[ModelFamily, Any]) -> None:
    family, pipeline = loaded
    assert family_of(pipeline) is family
    assert type(pipeline).__name__ in family.pipelines
    assert hasattr(pipeline, family.denoiser)
    assert family.takes_image(pipeline) == (type(pipeline).__name__ in family.image_pipelines)


@_cases(T2V_CASES + I2V_CASES)
def test_call_kwargs_are_all_named_parameters(loaded: tuple[ModelFamily, Any]) -> None:
    # AnimateDiffPipeline.__call__ takes **kwargs and silently ignores unknown names, so check against the
    # named parameters: anything else would be dropped without effect.
    family, pipeline = loaded
    assert family.tiny_defaults is not None
    images = [_image(family.tiny_defaults)] if family.takes_image(pipeline) else None
    kwargs = family.call_kwargs(pipeline, PROMPTS[:1], family.tiny_defaults, _generators(1), images)
    assert set(kwargs) <= set(inspect.signature(type(pipeline).__call__).parameters)


@_cases(T2V_CASES)
def test_batch_videos_do_not_depend_on_batch_composition(loaded: tuple[ModelFamily, Any]) -> None:
    family, pipeline = loaded
    assert family.tiny_defaults is not None
    batch = _generate(family, pipeline, PROMPTS, (1, 2))
    _assert_videos(batch, 2, family.tiny_defaults)
    alone = _generate(family, pipeline, PROMPTS[1:], (2,))
    np.testing.assert_allclose(alone[0], batch[1], atol=1e-4, rtol=0)
    assert not np.allclose(batch[0], batch[1], atol=1e-3)


@_cases(I2V_CASES)
def test_image_to_video_generates_reproducibly(loaded: tuple[ModelFamily, Any]) -> None:
    # One prompt and one image per call, so batch composition cannot matter; same seed, same video must.
    family, pipeline = loaded
    assert family.takes_image(pipeline)
    assert family.tiny_defaults is not None
    images = [_image(family.tiny_defaults)]
    first = _generate(family, pipeline, PROMPTS[:1], (3,), images)
    _assert_videos(first, 1, family.tiny_defaults)
    np.testing.assert_allclose(_generate(family, pipeline, PROMPTS[:1], (3,), images), first, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="one prompt and one image"):
        family.call_kwargs(pipeline, PROMPTS, family.tiny_defaults, _generators(1, 2), images * 2)


@pytest.mark.parametrize("name", TEXT_ONLY)
def test_text_only_families_refuse_image_to_video(name: str) -> None:
    tiny = FAMILIES[name].tiny
    assert tiny is not None
    with pytest.raises(ValueError, match="no image-to-video"):
        tiny(True)


def test_registry_lists_every_family_with_wan_first() -> None:
    assert list(FAMILIES) == ["wan", "cogvideox", "unet3d", "animatediff"]
    pipelines = [p for family in FAMILIES.values() for p in family.pipelines]
    assert len(pipelines) == len(set(pipelines))
    with pytest.raises(VbenchPrefError, match="not a supported video pipeline"):
        family_of(object())


@pytest.mark.parametrize("name", list(FAMILIES))
def test_check_accepts_the_families_own_settings(name: str) -> None:
    family = FAMILIES[name]
    assert family.tiny_defaults is not None
    family.check(family.defaults)
    family.check(family.tiny_defaults)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_check_names_a_valid_frame_count(name: str) -> None:
    family = FAMILIES[name]
    a, b = family.frames_rule
    bad = family.defaults.num_frames + 1 if a > 1 else 0
    with pytest.raises(VbenchPrefError, match="--frames") as error:
        family.check(family.defaults.with_overrides(num_frames=bad))
    if a > 1:
        suggested = [int(n) for n in str(error.value).split("e.g. ")[1].split(" or ")]
        assert suggested and all(n % a == b for n in suggested)
        family.check(family.defaults.with_overrides(num_frames=suggested[0]))
    else:
        assert "at least 1" in str(error.value)


@pytest.mark.parametrize("name", list(FAMILIES))
@pytest.mark.parametrize("dimension", ["height", "width"])
def test_check_names_the_size_multiple(name: str, dimension: str) -> None:
    family = FAMILIES[name]
    bad = getattr(family.defaults, dimension) + family.size_multiple // 2
    with pytest.raises(VbenchPrefError, match=f"--{dimension} {bad} .* multiple of {family.size_multiple}"):
        family.check(family.defaults.with_overrides(**{dimension: bad}))


def test_size_multiples_follow_the_latent_grids() -> None:
    # CogVideoX and Wan patchify an 8x-downsampled latent 2x2; the UNet families only need the VAE's 8.
    assert {name: family.size_multiple for name, family in FAMILIES.items()} == {
        "wan": 16, "cogvideox": 16, "unet3d": 8, "animatediff": 8
    }


@pytest.mark.parametrize("name", list(FAMILIES))
def test_call_kwargs_drop_arguments_the_pipeline_does_not_take(name: str) -> None:
    family = FAMILIES[name]

    def narrow_call(self, prompt, num_frames, generator, output_type="np"):  # pragma: no cover - never called
        raise AssertionError

    # A stand-in of the family's text-to-video class whose __call__ lacks guidance, size, steps and negatives.
    stand_in = type(family.pipelines[0], (), {"__call__": narrow_call})()
    assert family.tiny_defaults is not None
    kwargs = family.call_kwargs(stand_in, PROMPTS, family.tiny_defaults, _generators(1, 2))
    assert set(kwargs) == {"prompt", "num_frames", "generator", "output_type"}
    assert kwargs["prompt"] == PROMPTS and len(kwargs["generator"]) == 2


def test_tiny_pipelines_start_in_inference_mode() -> None:
    # Dropout left on would make unsaved tiny pipelines random call to call.
    for name in ("cogvideox", "unet3d", "animatediff"):
        tiny = FAMILIES[name].tiny
        assert tiny is not None
        pipeline = tiny(False)
        assert not any(c.training for c in pipeline.components.values() if isinstance(c, torch.nn.Module))
