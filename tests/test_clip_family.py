"""CLIP score, HPS v2 and the LAION aesthetic predictor on tiny open_clip models saved in official formats.

Every number is checked against an independent computation done with open_clip directly (its own
checkpoint loader, its own tokenizer) on the same decoded frames.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import open_clip
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from torchvision.transforms import Normalize

from vbench_pref import weights as weight_files
from vbench_pref.errors import VbenchPrefError
from vbench_pref.evaluator import SharedModels, VideoSample
from vbench_pref.openclip import ClipBackbone, build_clip, read_state_dict
from vbench_pref.registry import get
from vbench_pref.scoring import ScoreOptions, run_scoring
from vbench_pref.synthetic import smooth_motion
from vbench_pref.video import FrameSpec, decode_video, write_video

TINY = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
PROMPTS = ["a red fox running through snow", "an astronaut riding a horse on the moon", "a calm lake at dawn"]
TOL = 1e-5


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "vbench_pref", *args], capture_output=True, text=True, env=env)


@pytest.fixture(autouse=True)
def private_caches(tmp_path, monkeypatch) -> None:
    """Digest memos and caches of these tests stay in their temporary folder, never in the user's home."""
    monkeypatch.setenv("VBENCH_PREF_CACHE", str(tmp_path / "vbench_pref_cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf_cache"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """A tiny architecture file, its random weights in each official layout, both aesthetic heads, videos."""
    root = tmp_path_factory.mktemp("tiny")
    arch = root / "tiny-clip.json"
    arch.write_text(json.dumps(TINY))
    open_clip.add_model_config(arch)
    torch.manual_seed(1)
    model = open_clip.create_model("tiny-clip", force_quick_gelu=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    (root / "openclip").mkdir()
    save_file(state, str(root / "openclip" / "open_clip_model.safetensors"))  # timm/*.openai on the hub
    torch.save(state, root / "open_clip_pytorch_model.bin")  # open_clip's .bin layout
    torch.manual_seed(2)
    hps = open_clip.create_model("tiny-clip")  # HPS: GELU, whole model wrapped in {"state_dict": ...}
    # Custom names: a file named like a published one is held to the manifest's sha256.
    torch.save({"epoch": 1, "name": "hps", "state_dict": hps.state_dict()}, root / "tiny_hps_v2.1.pt")
    torch.manual_seed(3)
    torch.save(nn.Linear(16, 1).state_dict(), root / "tiny_aesthetic_linear.pth")
    torch.save(ReferenceMlp(16).state_dict(), root / "tiny_aesthetic_mlp.pth")
    videos = root / "videos"
    videos.mkdir()
    for i, prompt in enumerate(PROMPTS):
        write_video(videos / f"v{i}.mp4", smooth_motion(5 + i, 40, 56 + 8 * i, seed=i), fps=8, lossless=True)
    (videos / "prompts.txt").write_text("\n".join(PROMPTS) + "\n")
    return {
        "root": root, "arch": arch, "safetensors": root / "openclip" / "open_clip_model.safetensors",
        "bin": root / "open_clip_pytorch_model.bin", "hps": root / "tiny_hps_v2.1.pt",
        "v1": root / "tiny_aesthetic_linear.pth", "v2": root / "tiny_aesthetic_mlp.pth",
        "videos": videos,
    }


class ReferenceMlp(nn.Module):
    """improved-aesthetic-predictor's MLP as written upstream (simple_inference.py)."""

    def __init__(self, input_size: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(input_size, 1024), nn.Dropout(0.2), nn.Linear(1024, 128), nn.Dropout(0.2),
            nn.Linear(128, 64), nn.Dropout(0.1), nn.Linear(64, 16), nn.Linear(16, 1),
        )

    def forward(self, x):
        return self.layers(x)


# ------------------------------------------------------------------------------- independent references
def reference_model(weights: Path, quick_gelu: bool) -> nn.Module:
    """open_clip's own loader (create_model with a local checkpoint), nothing of ours."""
    return open_clip.create_model("tiny-clip", pretrained=str(weights), force_quick_gelu=quick_gelu).eval()


def frames_of(path: Path, spec: FrameSpec) -> torch.Tensor:
    return decode_video(path, [spec]).view(spec)[0]


def reference_image_features(model: nn.Module, frames: torch.Tensor) -> torch.Tensor:
    x = frames.permute(0, 3, 1, 2).float()
    x = x / 255.0 if frames.dtype == torch.uint8 else x  # float views are already in [0, 1]
    x = Normalize(open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD)(x)
    with torch.no_grad():
        return model.encode_image(x, normalize=True)


def reference_text_features(model: nn.Module, prompt: str) -> torch.Tensor:
    with torch.no_grad():
        return model.encode_text(open_clip.get_tokenizer("tiny-clip")([prompt]), normalize=True)[0]


def score(evaluator_name: str, videos: Path, out: Path, **options) -> pd.DataFrame:
    opts = ScoreOptions(videos=videos, prompts=videos / "prompts.txt", out=out, evaluators=[evaluator_name],
                        evaluator_options={evaluator_name: options}, device="cpu", batch_size=2)
    result = run_scoring(opts)
    assert result.exit_code == 0
    return pd.read_csv(out / "scores.csv").set_index("video")


# ------------------------------------------------------------------------------------------ formats
def test_every_checkpoint_layout_loads_to_the_same_tensors(tiny) -> None:
    from_safetensors = read_state_dict(tiny["safetensors"])
    from_bin = read_state_dict(tiny["bin"])
    assert from_safetensors.keys() == from_bin.keys()
    assert all(torch.equal(from_safetensors[k], from_bin[k]) for k in from_bin)
    hps = read_state_dict(tiny["hps"])  # unwrapped from {"state_dict": ...}
    assert hps.keys() == from_bin.keys()
    wrapped = tiny["root"] / "dataparallel.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in from_bin.items()}}, wrapped)
    assert read_state_dict(wrapped).keys() == from_bin.keys()


def test_hps_checkpoint_tensors_map_onto_open_clip_vit_h_14() -> None:
    """The published HPS checkpoints are whole open_clip ViT-H-14 models: 686 tensors with these shapes."""
    model = open_clip.create_model("ViT-H-14", device="meta")
    state = model.state_dict()
    assert len(state) == 686
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert shapes["visual.proj"] == (1280, 1024)
    assert shapes["text_projection"] == (1024, 1024)
    assert shapes["token_embedding.weight"] == (49408, 1024)
    assert shapes["positional_embedding"] == (77, 1024)
    assert shapes["visual.positional_embedding"] == (257, 1280)
    assert shapes["visual.conv1.weight"] == (1280, 3, 14, 14)
    assert shapes["logit_scale"] == ()
    assert sum(k.startswith("visual.transformer.resblocks.") for k in state) == 32 * 12
    assert sum(k.startswith("transformer.resblocks.") for k in state) == 24 * 12


def test_aesthetic_head_files_have_the_upstream_keys(tiny) -> None:
    v1 = torch.load(tiny["v1"], weights_only=True)
    assert {k: tuple(v.shape) for k, v in v1.items()} == {"weight": (1, 16), "bias": (1,)}
    v2 = torch.load(tiny["v2"], weights_only=True)
    assert sorted(v2) == sorted(f"layers.{i}.{p}" for i in (0, 2, 4, 6, 7) for p in ("weight", "bias"))
    from vbench_pref.evaluators.aesthetic import build_head

    for kind, path in (("v1", tiny["v1"]), ("v2", tiny["v2"])):  # strict loads: same names and shapes
        build_head(kind, 16).load_state_dict(torch.load(path, weights_only=True), strict=True)


def test_wrong_architecture_and_torchscript_are_refused_in_one_line(tiny) -> None:
    other = tiny["root"] / "other-clip.json"
    other.write_text(json.dumps({**TINY, "embed_dim": 8}))
    open_clip.add_model_config(other)
    with pytest.raises(VbenchPrefError, match=r"does not fit open_clip other-clip: tensors .*other shapes") as info:
        build_clip("other-clip", tiny["bin"], quick_gelu=True)
    assert "\n" not in str(info.value)
    jit_file = tiny["root"] / "ViT-B-32.pt"  # laid out as torch.jit.save writes OpenAI's CLIP files
    with zipfile.ZipFile(jit_file, "w") as archive:
        archive.writestr("ViT-B-32/code/__torch__.py", "class CLIP: pass\n")
        archive.writestr("ViT-B-32/constants.pkl", b"")
    with pytest.raises(VbenchPrefError, match="TorchScript archive"):
        read_state_dict(jit_file)


# ------------------------------------------------------------------------------------------- parity
def test_clip_score_matches_open_clip_directly(tiny, tmp_path) -> None:
    table = score("clip_score", tiny["videos"], tmp_path / "run", model=str(tiny["arch"]), weights=str(tiny["bin"]))
    reference = reference_model(tiny["bin"], quick_gelu=True)
    spec = get("clip_score")(model=str(tiny["arch"])).frame_spec()
    assert spec == FrameSpec(resize="short_side_crop", size=32, interpolation="bicubic", resampler="pil")
    for i, prompt in enumerate(PROMPTS):
        frames = frames_of(tiny["videos"] / f"v{i}.mp4", spec)
        assert frames.shape[0] == 5 + i  # every frame
        cos = reference_image_features(reference, frames) @ reference_text_features(reference, prompt)
        row = table.loc[f"v{i}.mp4"]
        assert abs(row["clip_score.cosine"] - cos.mean().item()) <= TOL
        assert abs(row["clip_score.hessel"] - (2.5 * cos.clamp(min=0)).mean().item()) <= TOL


def test_hpsv2_matches_the_hps_computation_on_open_clip(tiny, tmp_path) -> None:
    table = score("hpsv2", tiny["videos"], tmp_path / "run", model=str(tiny["arch"]), weights=str(tiny["hps"]))
    reference = reference_model(tiny["hps"], quick_gelu=False)  # open_clip reads {"state_dict": ...} itself
    spec = get("hpsv2")(model=str(tiny["arch"])).frame_spec()
    assert spec.resize == "longest_pad" and spec.size == 32
    for i, prompt in enumerate(PROMPTS):
        frames = frames_of(tiny["videos"] / f"v{i}.mp4", spec)
        # img_score.py: diag(image_features @ text_features.T) of normalised features, no logit scale
        logits = reference_image_features(reference, frames) @ reference_text_features(reference, prompt)[:, None]
        assert abs(table.loc[f"v{i}.mp4", "hpsv2"] - logits.squeeze(1).mean().item()) <= TOL
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    (provenance,) = run["evaluators"]
    assert provenance["options"]["version"] == "v2.1"
    assert provenance["weights"][0]["hps_version"] == "v2.1"


@pytest.mark.parametrize("head", ["v1", "v2"])
def test_aesthetic_matches_the_laion_predictor(tiny, tmp_path, head) -> None:
    table = score("aesthetic", tiny["videos"], tmp_path / "run", model=str(tiny["arch"]),
                  clip_weights=str(tiny["safetensors"]), head=head, head_weights=str(tiny[head]))
    reference = reference_model(tiny["safetensors"], quick_gelu=True)
    if head == "v1":
        predictor: nn.Module = nn.Linear(16, 1)
    else:
        predictor = ReferenceMlp(16)
    predictor.load_state_dict(torch.load(tiny[head], weights_only=True))
    predictor.eval()
    spec = get("aesthetic")(model=str(tiny["arch"])).frame_spec()
    for i in range(len(PROMPTS)):
        features = reference_image_features(reference, frames_of(tiny["videos"] / f"v{i}.mp4", spec))
        with torch.no_grad():
            values = predictor(F.normalize(features, dim=-1, p=2)).squeeze(-1)
        expected = (values / 10 if head == "v1" else values).mean().item()  # VBench: /10, unclamped
        assert abs(table.loc[f"v{i}.mp4", "aesthetic"] - expected) <= TOL


# ------------------------------------------------------------------------------------- shared backbone
def test_clip_score_and_aesthetic_embed_each_frame_once(tiny) -> None:
    shared = SharedModels()
    clip = get("clip_score")(model=str(tiny["arch"]), weights=str(tiny["safetensors"]), view="tensor")
    aesthetic = get("aesthetic")(model=str(tiny["arch"]), clip_weights=str(tiny["safetensors"]), head_weights=str(tiny["v1"]))
    hps = get("hpsv2")(model=str(tiny["arch"]), weights=str(tiny["hps"]))
    for evaluator in (clip, aesthetic, hps):
        evaluator.load("cpu", torch.float32, shared)
    assert clip.backbone is aesthetic.backbone and hps.backbone is not clip.backbone
    assert clip.residency_key() == aesthetic.residency_key() != hps.residency_key()
    spec = clip.frame_spec()
    assert spec == aesthetic.frame_spec()  # view=tensor: VBench's clip_transform, aesthetic's view
    batch = [
        VideoSample(f"v{i}.mp4", frames_of(tiny["videos"] / f"v{i}.mp4", spec), np.zeros(1), 8.0, prompt)
        for i, prompt in enumerate(PROMPTS)
    ]
    clip.score(batch)
    aesthetic.score(batch)
    assert clip.backbone.frames_embedded == sum(int(s.frames.shape[0]) for s in batch)
    clip.chunk_done()
    aesthetic.score(batch)
    assert clip.backbone.frames_embedded == 2 * sum(int(s.frames.shape[0]) for s in batch)


def test_bfloat16_autocast_stays_close_to_float32(tiny) -> None:
    values = {}
    for dtype in (torch.float32, torch.bfloat16):
        evaluator = get("clip_score")(model=str(tiny["arch"]), weights=str(tiny["bin"]))
        evaluator.load("cpu", dtype)
        spec = evaluator.frame_spec()
        sample = VideoSample("v0.mp4", frames_of(tiny["videos"] / "v0.mp4", spec), np.zeros(1), 8.0, PROMPTS[0])
        values[dtype] = evaluator.score([sample])["cosine"][0]
    assert abs(values[torch.float32] - values[torch.bfloat16]) < 0.05


# ---------------------------------------------------------------------------------- weights, end to end
def _manifest_entry(name: str, path: Path, filename: str, **extra) -> weight_files.WeightSpec:
    return weight_files.WeightSpec(name=name, source=path.as_uri(), filename=filename,
                                   sha256=weight_files.sha256_file(path), licence="test", **extra)


def test_weights_pulled_through_the_manifest_are_used(tiny, tmp_path, monkeypatch) -> None:
    from vbench_pref.evaluators import aesthetic, hpsv2

    from vbench_pref import openclip

    monkeypatch.setenv("VBENCH_PREF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    clip_entry = _manifest_entry("clip-tiny", tiny["safetensors"], "open_clip_model.safetensors")
    hps_entry = _manifest_entry("hps-tiny", tiny["hps"], "HPS_v2.1_compressed.pt")
    head_entry = _manifest_entry("aesthetic-tiny", tiny["v1"], "sa_0_4_vit_l_14_linear.pth")
    monkeypatch.setitem(openclip.OPENAI_CLIP_WEIGHTS, "tiny-clip", clip_entry)
    monkeypatch.setitem(hpsv2.HPS_WEIGHTS, "v2.1", hps_entry)
    monkeypatch.setitem(aesthetic.HEAD_WEIGHTS, "v1", head_entry)
    arch = str(tiny["arch"])
    assert get("clip_score")(model=arch).missing_weights() is not None
    for entry in (clip_entry, hps_entry, head_entry):
        pulled = weight_files.pull(entry)
        assert pulled.path.is_relative_to(tmp_path / "cache") and pulled.verified_by == "manifest sha256"
    assert get("clip_score")(model=arch).missing_weights() is None
    opts = ScoreOptions(videos=tiny["videos"], prompts=tiny["videos"] / "prompts.txt", out=tmp_path / "run",
                        evaluators=["clip_score", "hpsv2", "aesthetic"], device="cpu",
                        evaluator_options={"clip_score": {"model": arch}, "hpsv2": {"model": arch},
                                           "aesthetic": {"model": arch}})
    assert run_scoring(opts).exit_code == 0
    table = pd.read_csv(tmp_path / "run" / "scores.csv").set_index("video")
    local = score("clip_score", tiny["videos"], tmp_path / "local", model=arch, weights=str(tiny["safetensors"]))
    assert np.allclose(table["clip_score.cosine"], local["clip_score.cosine"], atol=1e-7)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    recorded = {w["name"]: w for e in run["evaluators"] for w in e["weights"]}
    assert set(recorded) == {"clip-tiny", "hps-tiny", "aesthetic-tiny"}
    assert recorded["clip-tiny"]["sha256"] == clip_entry.sha256


def test_a_file_with_the_wrong_sha256_is_refused(tiny, tmp_path, monkeypatch) -> None:
    from vbench_pref import openclip

    wrong = weight_files.WeightSpec(name="clip-tiny", source=tiny["bin"].as_uri(), filename="open_clip_pytorch_model.bin",
                                    sha256="0" * 64, licence="test")
    monkeypatch.setitem(openclip.OPENAI_CLIP_WEIGHTS, "tiny-clip", wrong)
    opts = ScoreOptions(videos=tiny["videos"], prompts=tiny["videos"] / "prompts.txt", out=tmp_path / "run",
                        evaluators=["clip_score"], device="cpu",
                        evaluator_options={"clip_score": {"model": str(tiny["arch"]), "weights": str(tiny["bin"])}})
    with pytest.raises(VbenchPrefError, match="sha256") as info:
        run_scoring(opts)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "run" / "scores.csv").exists()


@pytest.mark.parametrize(
    ("evaluator", "file", "pull"),
    [
        ("clip_score", "open_clip_model.safetensors", "clip-vit-b-32-openai"),
        ("hpsv2", "HPS_v2.1_compressed.pt", "hpsv2.1"),
        ("aesthetic", "open_clip_model.safetensors", "clip-vit-l-14-openai"),
    ],
)
def test_offline_without_weights_each_evaluator_fails_in_one_line(tiny, tmp_path, evaluator, file, pull) -> None:
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hf"), "VBENCH_PREF_CACHE": str(tmp_path / "c")}
    process = cli("score", "--videos", str(tiny["videos"]), "--prompts", str(tiny["videos"] / "prompts.txt"),
                  "--out", str(tmp_path / "run"), "-e", evaluator, "--device", "cpu", env=env)
    assert process.returncode == 2, process.stderr
    lines = [line for line in process.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, process.stderr
    assert file in lines[0] and f"vbench-pref weights pull {pull}" in lines[0]
    assert not (tmp_path / "run" / "scores.csv").exists()


def test_cli_scores_all_three_with_local_files(tiny, tmp_path) -> None:
    arch = str(tiny["arch"])
    process = cli(
        "score", "--videos", str(tiny["videos"]), "--prompts", str(tiny["videos"] / "prompts.txt"),
        "--out", str(tmp_path / "run"), "--device", "cpu", "-e", "clip_score", "-e", "hpsv2", "-e", "aesthetic",
        "-O", f"clip_score.model={arch}", "-O", f"clip_score.weights={tiny['root'] / 'openclip'}",
        "-O", f"hpsv2.model={arch}", "-O", f"hpsv2.weights={tiny['hps']}",
        "-O", f"aesthetic.model={arch}", "-O", f"aesthetic.clip_weights={tiny['safetensors']}",
        "-O", f"aesthetic.head_weights={tiny['v1']}",
    )
    assert process.returncode == 0, process.stderr
    table = pd.read_csv(tmp_path / "run" / "scores.csv")
    for column in ("clip_score.cosine", "clip_score.hessel", "hpsv2", "aesthetic"):
        assert table[column].notna().all(), column
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["random_weights"] == []


def test_random_weights_are_explicit_and_labelled(tiny, tmp_path) -> None:
    table = score("clip_score", tiny["videos"], tmp_path / "run", model=str(tiny["arch"]), weights="random")
    assert table["clip_score.cosine"].notna().all()
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert set(run["random_weights"]) == {"clip_score.cosine", "clip_score.hessel"}


def test_backbone_memo_is_per_video_and_view(tiny) -> None:
    backbone = ClipBackbone.shared(None, "tiny-clip", tiny["bin"], True)
    spec = FrameSpec(resize="short_side_crop", size=32)
    frames = frames_of(tiny["videos"] / "v1.mp4", spec)
    sample = VideoSample("v1.mp4", frames, np.zeros(1), 8.0, PROMPTS[1])
    first = backbone.video_features([sample], spec)[0]
    again = backbone.video_features([sample], spec)[0]
    assert first is again and backbone.frames_embedded == frames.shape[0]
    other = FrameSpec(sampling="count", count=2, resize="short_side_crop", size=32)
    backbone.video_embeddings([VideoSample("v1.mp4", frames[:2], np.zeros(1), 8.0)], other)
    assert backbone.frames_embedded == frames.shape[0] + 2
    texts = backbone.text_embeddings([PROMPTS[0], PROMPTS[0], PROMPTS[1]])
    assert torch.equal(texts[0], texts[1]) and texts.shape == (3, 16)
