"""Model loading (built-ins, pipeline folders, hub ids, adapters, trainer checkpoints) and the generator."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vbench_pref.errors import VbenchPrefError
from vbench_pref.generate import runner
from vbench_pref.generate.models import MODEL_CARD, ensure_builtin, load_model, write_model_card
from vbench_pref.generate.prompts import load_suite
from vbench_pref.generate.runner import generate
from vbench_pref.video import decode_video

pytest.importorskip("diffusers")
pytestmark = pytest.mark.usefixtures("tiny_model_cache")


def _frames(path: Path) -> np.ndarray:
    decoded = decode_video(path)
    return decoded.view(next(iter(decoded.specs)))[0].numpy()


def _suite(tmp_path: Path, lines: str, name: str = "p.txt"):
    file = tmp_path / name
    file.write_text(lines, encoding="utf-8")
    return load_suite(file)


# --- loading ---------------------------------------------------------------------------------------------


def test_builtin_is_saved_once_and_loaded_from_disk() -> None:
    folder = ensure_builtin("tiny-wan")
    assert (folder / "model_index.json").is_file() and (folder / "transformer" / "config.json").is_file()
    card = json.loads((folder / MODEL_CARD).read_text())
    assert card["random_weights"] is True and card["defaults"]["num_frames"] == 9
    stamp = (folder / "model_index.json").stat().st_mtime_ns
    assert ensure_builtin("tiny-wan") == folder and (folder / "model_index.json").stat().st_mtime_ns == stamp
    loaded = load_model("builtin:tiny-wan")
    assert loaded.family.name == "wan" and loaded.random_weights and loaded.label == "builtin:tiny-wan (random weights)"
    assert loaded.defaults.negative_prompt is None
    # the same folder given as a path loads through the same code
    by_path = load_model(str(folder))
    assert by_path.family.name == "wan" and by_path.random_weights


def test_vae_stays_float32_under_bfloat16() -> None:
    loaded = load_model("builtin:tiny-wan", dtype=torch.bfloat16)
    assert loaded.pipeline.vae.dtype == torch.float32
    assert loaded.pipeline.transformer.dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no/such/dir/", "no such folder, not a built-in"),
        ("builtin:nope", "unknown built-in model builtin:nope"),
        ("someorg/somemodel", r"not in the Hugging Face cache .*`hf download someorg/somemodel`"),
    ],
)
def test_unknown_models_say_what_was_looked_for(spec: str, message: str) -> None:
    with pytest.raises(VbenchPrefError, match=message):
        load_model(spec)


def test_folder_that_is_no_model(tmp_path: Path) -> None:
    with pytest.raises(VbenchPrefError, match="none of model_index.json .* adapter_config.json"):
        load_model(str(tmp_path))
    (tmp_path / "x.safetensors").write_bytes(b"")
    with pytest.raises(VbenchPrefError, match="is a file"):
        load_model(str(tmp_path / "x.safetensors"))


def _save_lora(folder: Path, base: str) -> torch.nn.Module:
    """A LoRA on the tiny Wan transformer with non-zero B (so it changes predictions), saved by peft."""
    from peft import LoraConfig, get_peft_model

    transformer = load_model(base).pipeline.transformer
    model = get_peft_model(transformer, LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5, generator=torch.Generator().manual_seed(len(name)))
    model.peft_config["default"].base_model_name_or_path = base
    model.save_pretrained(str(folder), save_embedding_layers=False)
    return model


def _prediction(transformer: torch.nn.Module) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 16, 3, 8, 8, generator=g)
    text = torch.randn(1, 7, 32, generator=g)
    with torch.no_grad():
        return transformer(latents, timestep=torch.tensor([500]), encoder_hidden_states=text, return_dict=False)[0]


def test_adapter_folder_loads_on_its_base(tmp_path: Path) -> None:
    peft_model = _save_lora(tmp_path / "lora", "builtin:tiny-wan")
    assert json.loads((tmp_path / "lora" / "adapter_config.json").read_text())["base_model_name_or_path"] == "builtin:tiny-wan"
    expected = _prediction(peft_model)  # base + adapter, computed by peft directly
    with peft_model.disable_adapter():
        base = _prediction(peft_model)
    loaded = load_model(str(tmp_path / "lora"))
    assert loaded.source["kind"] == "adapter"
    got = _prediction(loaded.pipeline.transformer)
    assert torch.allclose(got, expected, atol=1e-5) and not torch.allclose(got, base, atol=1e-3)


def test_adapter_whose_base_is_missing(tmp_path: Path) -> None:
    _save_lora(tmp_path / "lora", "builtin:tiny-wan")
    config = tmp_path / "lora" / "adapter_config.json"
    data = json.loads(config.read_text())
    data["base_model_name_or_path"] = str(tmp_path / "gone")
    config.write_text(json.dumps(data))
    with pytest.raises(VbenchPrefError, match=r"base model of .*lora could not be loaded: --model .*gone: no such folder"):
        load_model(str(tmp_path / "lora"))
    data["base_model_name_or_path"] = None
    config.write_text(json.dumps(data))
    with pytest.raises(VbenchPrefError, match="does not name its base model .* pass --base-model"):
        load_model(str(tmp_path / "lora"))
    assert load_model(str(tmp_path / "lora"), base_model="builtin:tiny-wan").family.name == "wan"


def test_trainer_checkpoint_with_adapter_or_denoiser(tmp_path: Path) -> None:
    peft_model = _save_lora(tmp_path / "ckpt" / "adapter", "builtin:tiny-wan")
    expected = _prediction(peft_model)
    write_model_card(tmp_path / "ckpt", {"base_model": "builtin:tiny-wan", "adapter": "adapter", "method": "pgdpo", "step": 10})
    loaded = load_model(str(tmp_path / "ckpt"))
    assert loaded.source["method"] == "pgdpo" and loaded.random_weights
    assert torch.allclose(_prediction(loaded.pipeline.transformer), expected, atol=1e-5)
    # full denoiser weights instead of an adapter
    merged = peft_model.merge_and_unload()
    merged.save_pretrained(str(tmp_path / "full" / "transformer"))
    write_model_card(tmp_path / "full", {"base_model": "builtin:tiny-wan", "denoiser": "transformer", "method": "sft"})
    assert torch.allclose(_prediction(load_model(str(tmp_path / "full")).pipeline.transformer), expected, atol=1e-5)


# --- generation ------------------------------------------------------------------------------------------


def test_generate_writes_videos_manifest_and_resumes(tmp_path: Path) -> None:
    model = load_model("builtin:tiny-wan")
    suite = _suite(tmp_path, "a-1\ta red ball\na-2\ta blue cube\n")
    out = tmp_path / "videos"
    result = generate(model, suite, out, model.defaults, n=2, seed=7)
    assert result.generated == 4
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [e["video"] for e in manifest] == ["a-1-0.mp4", "a-1-1.mp4", "a-2-0.mp4", "a-2-1.mp4"]
    assert manifest[1]["seed"] == runner.generation_seed(7, "a-1", 1) and manifest[0]["random_weights"] is True
    decoded = decode_video(out / "a-2-1.mp4")
    assert decoded.fps == pytest.approx(16.0) and len(decoded.timestamps) == 9
    assert _frames(out / "a-2-1.mp4").shape == (9, 64, 64, 3)

    again = generate(model, suite, out, model.defaults, n=2, seed=7)
    assert again.generated == 0 and again.reused == 4
    # a lost video, a video whose journal line never made it, a leftover temp file, a torn journal line
    (out / "a-1-0.mp4").unlink()
    journal = out / ".journal-0.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(line for line in lines if '"a-2-0.mp4"' not in line) + '{"video": "a-')
    (out / ".a-1-1.mp4.abc.tmp").write_bytes(b"partial")
    third = generate(model, suite, out, model.defaults, n=2, seed=7)
    assert third.generated == 2 and third.reused == 2
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 4
    assert all(json.loads(line) for line in journal.read_text().splitlines())


def test_any_video_regenerates_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = load_model("builtin:tiny-wan")
    both = _suite(tmp_path, "a-1\ta red ball\na-2\ta blue cube\n", "both.txt")
    generate(model, both, tmp_path / "all", model.defaults, n=2, seed=3)
    alone = _suite(tmp_path, "a-2\ta blue cube\n", "alone.txt")
    generate(model, alone, tmp_path / "alone", model.defaults, n=2, seed=3)
    pixels = {
        (folder, entry["video"]): entry["frames_sha256"]
        for folder in ("all", "alone")
        for entry in map(json.loads, (tmp_path / folder / "manifest.jsonl").read_text().splitlines())
    }
    assert pixels["all", "a-2-1.mp4"] == pixels["alone", "a-2-1.mp4"]
    assert pixels["all", "a-2-0.mp4"] == pixels["alone", "a-2-0.mp4"] != pixels["alone", "a-2-1.mp4"]
    # batching changes the floating-point order: the written pixels may differ by a rounding step, no more
    written: dict[str, np.ndarray] = {}
    real_write = runner.write_video

    def keep(path, frames, fps):
        written[Path(path).parent.name] = np.array(frames)
        return real_write(path, frames, fps)

    monkeypatch.setattr(runner, "write_video", keep)
    generate(model, alone, tmp_path / "single", model.defaults, n=2, seed=3)  # a-2-1 is written last
    generate(model, both, tmp_path / "batched", model.defaults, n=2, seed=3, batch_size=2)  # a-2-1 beside a-2-0
    assert np.abs(written["single"].astype(int) - written["batched"]).max() <= 1


def test_other_settings_are_refused(tmp_path: Path) -> None:
    model = load_model("builtin:tiny-wan")
    suite = _suite(tmp_path, "a red ball\n")
    generate(model, suite, tmp_path / "v", model.defaults)
    with pytest.raises(VbenchPrefError, match=r"other settings \(settings differ\)"):
        generate(model, suite, tmp_path / "v", model.defaults.with_overrides(steps=2))
    with pytest.raises(VbenchPrefError, match="--frames 10 is not valid for wan: use 4k\\+1 frames, e.g. 9 or 13"):
        generate(model, suite, tmp_path / "w", model.defaults.with_overrides(num_frames=10))


def test_disk_full_keeps_what_finished(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = load_model("builtin:tiny-wan")
    suite = _suite(tmp_path, "a\nb\nc\n")
    real_write = runner.write_video
    calls = {"n": 0}

    def failing_write(path, frames, fps):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, frames, fps)

    monkeypatch.setattr(runner, "write_video", failing_write)
    with pytest.raises(VbenchPrefError, match="disk full while writing .*: the videos finished before it are kept"):
        generate(model, suite, tmp_path / "v", model.defaults)
    assert len(runner.read_journal(tmp_path / "v")) == 2
    monkeypatch.setattr(runner, "write_video", real_write)
    assert generate(model, suite, tmp_path / "v", model.defaults).generated == 1


def test_image_to_video(tmp_path: Path) -> None:
    model = load_model("builtin:tiny-wan-i2v")
    assert model.image_to_video
    bundled = load_suite("i2v")
    lines = [json.dumps({"id": e.id, "prompt": e.prompt, "image": str(e.image)}) for e in bundled.entries[:2]]
    suite = _suite(tmp_path, "\n".join(lines) + "\n", "i2v.jsonl")
    result = generate(model, suite, tmp_path / "v", model.defaults, batch_size=4)
    assert result.generated == 2
    manifest = [json.loads(line) for line in (tmp_path / "v" / "manifest.jsonl").read_text().splitlines()]
    assert manifest[0]["image"] == str(bundled.entries[0].image)
    with pytest.raises(VbenchPrefError, match="needs text prompts without images"):
        generate(load_model("builtin:tiny-wan"), suite, tmp_path / "w", model.defaults)
    with pytest.raises(VbenchPrefError, match="needs images"):
        generate(model, _suite(tmp_path, "a cat\n"), tmp_path / "x", model.defaults)


def test_settings_from_options() -> None:
    import dataclasses

    from vbench_pref.evaluate import GenerationOptions, settings_for
    from vbench_pref.generate.families.wan import FAMILY, WAN_NEGATIVE_PROMPT

    model = dataclasses.replace(load_model("builtin:tiny-wan"), defaults=FAMILY.defaults)
    options = GenerationOptions(model="m", prompts="demo", steps=7)
    assert settings_for(model, options) == dataclasses.replace(FAMILY.defaults, steps=7)
    assert settings_for(model, options).negative_prompt == WAN_NEGATIVE_PROMPT
    assert settings_for(model, dataclasses.replace(options, negative_prompt="blurry")).negative_prompt == "blurry"
    assert settings_for(model, dataclasses.replace(options, negative_prompt="")).negative_prompt is None
