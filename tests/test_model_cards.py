"""What ``--model`` loads from a folder it was handed: card paths stay inside it, defaults are checked, and
weights files holding pickled objects are refused in one line without running them."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from vbench_pref.errors import VbenchPrefError
from vbench_pref.generate.models import MODEL_CARD, ensure_builtin, load_model

pytest.importorskip("diffusers")
pytestmark = pytest.mark.usefixtures("tiny_model_cache")
BASE = "builtin:tiny-wan"


class Payload:
    """Unpickling this writes a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "the payload ran"))


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory, tiny_model_cache: Path) -> Path:
    """A real peft LoRA of the tiny Wan transformer, with non-zero B so that it changes the weights."""
    from peft import LoraConfig, get_peft_model

    transformer = load_model(BASE).pipeline.transformer
    torch.manual_seed(0)
    model = get_peft_model(transformer, LoraConfig(r=2, target_modules=["to_q"], init_lora_weights=False))
    folder = tmp_path_factory.mktemp("lora") / "adapter"
    model.save_pretrained(str(folder), save_embedding_layers=False)
    return folder


def write_card(folder: Path, **card) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MODEL_CARD).write_text(json.dumps({"base_model": BASE, **card}))
    return folder


def one_line(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text and "weights_only" not in text and "will likely succeed" not in text
    return text


@pytest.mark.parametrize("where", ["parent", "absolute", "symlink"])
def test_a_card_pointing_outside_its_folder_is_refused(tmp_path: Path, adapter: Path, where: str) -> None:
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    if where == "symlink":
        os.symlink(adapter, checkpoint / "adapter")
        path = "adapter"
    else:
        path = os.path.relpath(adapter, checkpoint) if where == "parent" else str(adapter)
    write_card(checkpoint, adapter=path)
    with pytest.raises(VbenchPrefError, match="lies outside") as refused:
        load_model(str(checkpoint))
    assert f"--model {adapter.resolve()} --base-model BASE" in one_line(refused)


def test_weights_named_explicitly_load_from_anywhere(tmp_path: Path, adapter: Path) -> None:
    inside = write_card(tmp_path / "checkpoint", adapter="adapter")
    (inside / "adapter").symlink_to(adapter)  # resolves outside, yet named by the user it loads
    explicit = load_model(str(adapter), base_model=BASE)
    base = load_model(BASE).pipeline.transformer.state_dict()
    changed = {n for n, p in explicit.pipeline.transformer.state_dict().items() if not torch.equal(p, base[n])}
    assert changed and all("to_q" in n for n in changed)


def test_a_denoiser_folder_named_explicitly_replaces_the_base_one(tmp_path: Path) -> None:
    transformer = load_model(BASE).pipeline.transformer
    with torch.no_grad():
        next(transformer.parameters()).add_(1.0)
    transformer.save_pretrained(str(tmp_path / "denoiser"))
    loaded = load_model(str(tmp_path / "denoiser"), base_model=BASE)
    assert loaded.source["kind"] == "denoiser"
    assert torch.equal(next(loaded.pipeline.transformer.parameters()), next(transformer.parameters()))


def test_unknown_or_mistyped_card_defaults_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(VbenchPrefError, match=r"unknown key 'stepz' in 'defaults' \(known: num_frames, .*steps") as e:
        load_model(str(write_card(tmp_path / "a", defaults={"stepz": 3})))
    one_line(e)
    with pytest.raises(VbenchPrefError, match="'defaults' steps = 'many' is not a valid steps"):
        load_model(str(write_card(tmp_path / "b", defaults={"steps": "many"})))
    with pytest.raises(VbenchPrefError, match="'defaults' must be an object"):
        load_model(str(write_card(tmp_path / "c", defaults=[1])))
    loaded = load_model(str(write_card(tmp_path / "d", defaults={"steps": 3, "negative_prompt": None})))
    assert loaded.defaults.steps == 3


def test_card_defaults_through_the_cli(run_cli, tmp_path: Path) -> None:
    write_card(tmp_path / "ckpt", defaults={"guidence": 5.0})
    result = run_cli(tmp_path, "generate", "--model", "ckpt", "--prompts", "demo", "--out", "videos")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "unknown key 'guidence'" in result.stderr and "guidance" in result.stderr


def test_a_pickled_adapter_bin_is_refused_and_never_runs(run_cli, tmp_path: Path, adapter: Path) -> None:
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text((adapter / "adapter_config.json").read_text())
    marker = tmp_path / "marker"
    torch.save({"base_model.model.x.lora_A.weight": Payload(marker)}, folder / "adapter_model.bin")
    with pytest.raises(VbenchPrefError, match=r"adapter_model.bin \(adapter weights\) holds pickled objects") as e:
        load_model(str(folder), base_model=BASE)
    one_line(e)
    result = run_cli(tmp_path, "generate", "--model", "adapter", "--base-model", BASE, "--prompts", "demo",
                     "--out", "videos")
    # a slow load may print its "loading ... (so far)" heartbeat first; the error itself is one line, the last
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and [l for l in lines if l.startswith("error:")] == lines[-1:], result.stderr
    assert "pickled objects" in result.stderr and "weights_only" not in result.stderr
    assert not marker.exists()


def test_a_weights_only_adapter_bin_loads_like_its_safetensors(tmp_path: Path, adapter: Path) -> None:
    from safetensors.torch import load_file

    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text((adapter / "adapter_config.json").read_text())
    torch.save(load_file(str(adapter / "adapter_model.safetensors")), folder / "adapter_model.bin")
    a = load_model(str(folder), base_model=BASE).pipeline.transformer.state_dict()
    b = load_model(str(adapter), base_model=BASE).pipeline.transformer.state_dict()
    assert all(torch.equal(v, b[k]) for k, v in a.items())
    assert sorted(p.name for p in folder.iterdir()) == ["adapter_config.json", "adapter_model.bin"]


@pytest.mark.parametrize("where", ["checkpoint denoiser", "pipeline text encoder"])
def test_a_pickled_bin_diffusers_or_transformers_read_is_one_line_and_never_runs(tmp_path: Path, where: str) -> None:
    builtin = ensure_builtin("tiny-wan")
    if where == "checkpoint denoiser":
        model = write_card(tmp_path / "checkpoint", denoiser="denoiser")
        (model / "denoiser").mkdir()
        shutil.copy(builtin / "transformer" / "config.json", model / "denoiser")
        weights = model / "denoiser" / "diffusion_pytorch_model.bin"
    else:
        model = tmp_path / "pipeline"
        shutil.copytree(builtin, model)
        (model / "text_encoder" / "model.safetensors").unlink()
        weights = model / "text_encoder" / "pytorch_model.bin"
    marker = tmp_path / "marker"
    torch.save({"x": Payload(marker)}, weights)
    with pytest.raises(VbenchPrefError, match="could not be loaded") as e:
        load_model(str(model))
    one_line(e)
    assert not marker.exists()


@pytest.mark.parametrize("reader", ["flow", "openclip"])
def test_every_torch_load_refuses_pickles_in_one_line(tmp_path: Path, reader: str) -> None:
    from vbench_pref import flow, openclip

    marker = tmp_path / "marker"
    torch.save({"x": Payload(marker)}, tmp_path / "weights.pth")
    read = flow._load_state_dict_file if reader == "flow" else openclip.read_state_dict
    with pytest.raises(VbenchPrefError, match="holds pickled objects besides tensors") as e:
        read(tmp_path / "weights.pth")
    one_line(e)
    assert not marker.exists()

