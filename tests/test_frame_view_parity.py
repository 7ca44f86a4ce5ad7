"""Each CLIP-family frame view equals its reference's transform chain, value for value.

The references are re-implemented here from torchvision and PIL primitives, step by step as their code
runs them (nothing of ours is called to make them):

- ``aesthetic``: VBench ``load_video`` (``torch.Tensor`` of the frames: float32 0-255) + ``clip_transform``
  (``Resize(224, BICUBIC, antialias=False)``, ``CenterCrop``, ``/ 255``), in VBench's batches of 32.
- ``clip_score``: VBench ``appearance_style``: ``Image.fromarray`` per frame + ``clip_transform_Image``
  (``Resize`` on the PIL image, ``CenterCrop``, ``ToTensor``).
- ``hpsv2``: HPSv2 ``preprocess_val`` on a PIL image: RGB, ``ToTensor``, ``ResizeMaxSize`` (bicubic
  ``F.resize`` of the float tensor with torchvision's default antialias, black pad split ``pad // 2``).

Content is hard-edged and saturated (checkerboards, pure colours), where rounding and clamping show most,
on wide, tall, odd and enlarged sizes. Pixels agree to 1e-6 and scores (tiny random open_clip models
loaded by open_clip itself) to 1e-5.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import open_clip
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image
from torch import nn
from torchvision.transforms import CenterCrop, InterpolationMode, Normalize, Resize, ToTensor

from vbench_pref.openclip import Compute, resolve_compute
from vbench_pref.registry import get
from vbench_pref.scoring import ScoreOptions, run_scoring
from vbench_pref.video import FrameView, write_video

BICUBIC = InterpolationMode.BICUBIC
PIXEL_TOL = 1e-6
SCORE_TOL = 1e-5
TINY = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


# ------------------------------------------------------------------------------------------- content
def checkerboard(h: int, w: int, cell: int, t: int = 0) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.where(((yy // cell + xx // cell + t) % 2 == 0)[..., None], 255, 0).astype(np.uint8).repeat(3, axis=2)


def colour_bars(h: int, w: int, t: int = 0) -> np.ndarray:
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0], [255, 255, 0]], np.uint8)
    index = (np.arange(w) * len(colours) // w + t) % len(colours)
    return np.broadcast_to(colours[index][None], (h, w, 3)).copy()


def clip(kind: str, h: int, w: int, frames: int = 3) -> np.ndarray:
    if kind == "checker1":
        return np.stack([checkerboard(h, w, 1, t) for t in range(frames)])
    if kind == "checker4":
        return np.stack([checkerboard(h, w, 4, t) for t in range(frames)])
    return np.stack([colour_bars(h, w, t) for t in range(frames)])


KINDS = ("checker1", "checker4", "colours")
SIZES = ((40, 120), (120, 40), (45, 71), (17, 23), (224, 300))  # wide, tall, odd, enlarged, ~input size


# -------------------------------------------------------------------------------------- references
def vbench_clip_transform(frames: np.ndarray, n_px: int) -> torch.Tensor:
    """VBench load_video + clip_transform up to the division by 255 (Normalize is the model's)."""
    images = torch.Tensor(frames).permute(0, 3, 1, 2)  # load_video: float32, (T, C, H, W)
    out = []
    for i in range(0, len(images), 32):  # aesthetic_quality.py's batch_size
        batch = Resize(n_px, interpolation=BICUBIC, antialias=False)(images[i : i + 32])
        batch = CenterCrop(n_px)(batch)
        out.append(batch.float().div(255.0))
    return torch.cat(out)


def vbench_clip_transform_image(frames: np.ndarray, n_px: int) -> torch.Tensor:
    """VBench appearance_style: clip_transform_Image on Image.fromarray of each frame, up to ToTensor."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "antialias is always applied for PIL images": VBench passes False
        return torch.stack([
            ToTensor()(CenterCrop(n_px)(Resize(n_px, interpolation=BICUBIC, antialias=False)(Image.fromarray(f))))
            for f in frames
        ])


def hps_preprocess_val(frames: np.ndarray, max_size: int) -> torch.Tensor:
    """HPSv2 image_transform(is_train=False, resize_longest_max=True) up to Normalize."""
    out = []
    for frame in frames:
        image = ToTensor()(Image.fromarray(frame).convert("RGB"))
        height, width = image.shape[1:]
        scale = max_size / float(max(height, width))
        if scale != 1.0:
            new_size = tuple(round(dim * scale) for dim in (height, width))
            image = TF.resize(image, list(new_size), BICUBIC)
            pad_h, pad_w = max_size - new_size[0], max_size - new_size[1]
            image = TF.pad(image, [pad_w // 2, pad_h // 2, pad_w - pad_w // 2, pad_h - pad_h // 2], fill=0)
        out.append(image)
    return torch.stack(out)


REFERENCES = {"aesthetic": vbench_clip_transform, "clip_score": vbench_clip_transform_image, "hpsv2": hps_preprocess_val}


def our_view(evaluator: str, frames: np.ndarray, **options) -> torch.Tensor:
    spec = get(evaluator)(**options).frame_spec()
    view = FrameView(list(frames), spec).frames()
    pixels = view.permute(0, 3, 1, 2).float()
    return pixels / 255.0 if view.dtype == torch.uint8 else pixels


# ------------------------------------------------------------------------------------------- pixels
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("evaluator", list(REFERENCES))
def test_view_equals_the_reference_transform(evaluator, kind, size) -> None:
    frames = clip(kind, *size)
    ours = our_view(evaluator, frames)  # the evaluator's defaults: 224 px (ViT-B-32 / ViT-L-14 / ViT-H-14)
    reference = REFERENCES[evaluator](frames, 224)
    assert ours.shape == reference.shape
    assert (ours - reference).abs().max().item() <= PIXEL_TOL


def test_float_views_keep_the_bicubic_overshoot() -> None:
    """A black/white edge rings past 0 and 1; the references keep that (rounding to uint8 would not)."""
    frames = clip("checker4", 45, 71)
    for evaluator in ("aesthetic", "hpsv2"):
        view = our_view(evaluator, frames)
        assert view.min().item() < -1e-3 and view.max().item() > 1 + 1e-3, evaluator
        assert not torch.allclose(view * 255, (view * 255).round(), atol=1e-3), evaluator


def test_a_frame_view_derives_slices_equal_to_the_whole() -> None:
    frames = clip("checker1", 45, 71, frames=9)
    for evaluator in REFERENCES:
        view = FrameView(list(frames), get(evaluator)().frame_spec())
        whole = view.frames()
        assert len(view) == 9 and tuple(whole.shape) == view.shape and whole.dtype == view.dtype
        assert torch.equal(view.frames(2, 7), whole[2:7])
        assert view.nbytes == whole.numel() * whole.element_size()
        assert view.source_nbytes == frames.nbytes


def test_pil_views_refuse_float_pixels_and_no_antialias() -> None:
    from vbench_pref.video import FrameSpec

    with pytest.raises(ValueError, match="pil"):
        FrameSpec(resize="short_side_crop", size=8, resampler="pil", pixels="float_0_1")
    with pytest.raises(ValueError, match="pil"):
        FrameSpec(resize="short_side_crop", size=8, resampler="pil", antialias=False)
    with pytest.raises(ValueError, match="pixels"):
        FrameSpec(pixels="float16")


# ------------------------------------------------------------------------------------------- scores
@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Tiny random open_clip weights in the published layouts and lossless hard-edged videos."""
    root = tmp_path_factory.mktemp("parity")
    arch = root / "tiny-parity-clip.json"
    arch.write_text(json.dumps(TINY))
    open_clip.add_model_config(arch)
    torch.manual_seed(11)
    clip_model = open_clip.create_model("tiny-parity-clip", force_quick_gelu=True)
    torch.save(clip_model.state_dict(), root / "open_clip_pytorch_model.bin")
    torch.manual_seed(12)
    hps = open_clip.create_model("tiny-parity-clip")
    torch.save({"state_dict": hps.state_dict()}, root / "tiny_hps.pt")
    torch.manual_seed(13)
    torch.save(nn.Linear(16, 1).state_dict(), root / "tiny_head.pth")
    videos = root / "videos"
    videos.mkdir()
    names = []
    for i, (kind, size) in enumerate([("checker1", (40, 120)), ("colours", (120, 40)), ("checker4", (45, 71))]):
        name = f"v{i}_{kind}.mp4"
        write_video(videos / name, clip(kind, *size, frames=4), fps=8, lossless=True)  # decodes to the same arrays
        names.append(name)
    (videos / "prompts.txt").write_text("a chessboard\na row of coloured bars\na black and white pattern\n")
    return {"root": root, "arch": arch, "clip": root / "open_clip_pytorch_model.bin", "hps": root / "tiny_hps.pt",
            "head": root / "tiny_head.pth", "videos": videos, "names": names,
            "frames": {n: clip(k, *s, frames=4) for n, (k, s) in zip(names, [("checker1", (40, 120)), ("colours", (120, 40)),
                                                                               ("checker4", (45, 71))])}}


def run_one(tiny, out: Path, evaluator: str, **options) -> tuple[pd.DataFrame, dict]:
    opts = ScoreOptions(videos=tiny["videos"], prompts=tiny["videos"] / "prompts.txt", out=out, evaluators=[evaluator],
                        evaluator_options={evaluator: {"model": str(tiny["arch"]), **options}}, device="cpu", batch_size=2)
    assert run_scoring(opts).exit_code == 0
    return pd.read_csv(out / "scores.csv").set_index("video"), json.loads((out / "run.json").read_text())


def reference_features(weights: Path, quick_gelu: bool, pixels: torch.Tensor, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
    model = open_clip.create_model("tiny-parity-clip", pretrained=str(weights), force_quick_gelu=quick_gelu).eval()
    x = Normalize(open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD)(pixels)
    with torch.no_grad():
        image = model.encode_image(x)
        text = model.encode_text(open_clip.get_tokenizer("tiny-parity-clip")([prompt]))
    return image, text


def test_scores_equal_the_references_on_hard_edged_videos(tiny, tmp_path) -> None:
    prompts = (tiny["videos"] / "prompts.txt").read_text().splitlines()
    clip_table, _ = run_one(tiny, tmp_path / "clip", "clip_score", weights=str(tiny["clip"]))
    aesthetic_table, _ = run_one(tiny, tmp_path / "aes", "aesthetic", clip_weights=str(tiny["clip"]),
                                 head_weights=str(tiny["head"]))
    hps_table, _ = run_one(tiny, tmp_path / "hps", "hpsv2", weights=str(tiny["hps"]))
    head = nn.Linear(16, 1)
    head.load_state_dict(torch.load(tiny["head"], weights_only=True))
    for name, prompt in zip(tiny["names"], prompts):
        frames = tiny["frames"][name]
        # appearance_style: logits_per_text / 100 of normalised features, i.e. the cosine, per frame
        image, text = reference_features(tiny["clip"], True, vbench_clip_transform_image(frames, 32), prompt)
        cos = F.normalize(image, dim=-1) @ F.normalize(text, dim=-1)[0]
        assert abs(clip_table.loc[name, "clip_score.cosine"] - cos.mean().item()) <= SCORE_TOL
        # aesthetic_quality: head(normalize(encode_image(x).float())) / 10, mean over frames
        image, _ = reference_features(tiny["clip"], True, vbench_clip_transform(frames, 32), prompt)
        with torch.no_grad():
            aesthetic = (head(F.normalize(image.float(), dim=-1, p=2)).squeeze(-1) / 10).mean().item()
        assert abs(aesthetic_table.loc[name, "aesthetic"] - aesthetic) <= SCORE_TOL
        # img_score.py: diagonal of normalised image @ text features (no logit scale)
        image, text = reference_features(tiny["hps"], False, hps_preprocess_val(frames, 32), prompt)
        hps = (F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).T)[:, 0].mean().item()
        assert abs(hps_table.loc[name, "hpsv2"] - hps) <= SCORE_TOL


# ---------------------------------------------------------------------------------------- precision
def test_reference_precision_by_device() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    # VBench (OpenAI clip.load): float16 weights except on the CPU, where clip.load calls model.float()
    assert resolve_compute("reference", "openai_clip", cuda, torch.float32) == Compute(half_weights=True)
    assert resolve_compute("reference", "openai_clip", cpu, torch.float32) == Compute()
    # HPSv2: torch.cuda.amp.autocast(), which does nothing off CUDA
    assert resolve_compute("reference", "cuda_amp", cuda, torch.float32) == Compute(autocast=torch.float16)
    assert resolve_compute("reference", "cuda_amp", cpu, torch.bfloat16) == Compute()
    assert resolve_compute("run", "cuda_amp", cpu, torch.bfloat16) == Compute(autocast=torch.bfloat16)
    assert resolve_compute("float32", "openai_clip", cuda, torch.float16) == Compute()


def test_precision_option_is_recorded_and_reference_is_float32_on_the_cpu(tiny, tmp_path) -> None:
    options = {"clip_weights": str(tiny["clip"]), "head_weights": str(tiny["head"])}
    reference, run = run_one(tiny, tmp_path / "reference", "aesthetic", precision="reference", **options)
    float32, _ = run_one(tiny, tmp_path / "float32", "aesthetic", precision="float32", **options)
    (provenance,) = run["evaluators"]
    assert provenance["options"]["precision"] == "reference"
    assert provenance["precision"] == "float32"  # what ran: VBench itself runs float32 on the CPU
    assert np.array_equal(reference["aesthetic"].to_numpy(), float32["aesthetic"].to_numpy())
    _, bf16_run = run_one(tiny, tmp_path / "bf16", "hpsv2", weights=str(tiny["hps"]), precision="run")
    assert bf16_run["evaluators"][0]["precision"] == "float32"
    with pytest.raises(Exception, match="precision"):
        get("hpsv2")(precision="float16")


def test_float16_reference_path_equals_open_clips_fp16_model_and_openai_forward(tiny) -> None:
    """What precision=reference runs on a GPU for clip_score, checked here on the CPU (float16 works there too):
    open_clip's "fp16" model (OpenAI's convert_weights), float16 input, and CLIP.forward's float16 logits."""
    from vbench_pref.evaluator import VideoSample
    from vbench_pref.openclip import ClipBackbone

    evaluator = get("clip_score")(model=str(tiny["arch"]), weights=str(tiny["clip"]))
    evaluator.load("cpu", torch.float32)
    evaluator.compute = Compute(half_weights=True)  # what resolve_compute gives on CUDA
    evaluator.backbone = ClipBackbone.shared(None, "tiny-parity-clip", tiny["clip"], True, half_weights=True)
    name = tiny["names"][0]
    frames = tiny["frames"][name]
    spec = evaluator.frame_spec()
    sample = VideoSample(name, FrameView(list(frames), spec), np.zeros(len(frames)), 8.0, "a chessboard")
    cosine = evaluator.score([sample])["cosine"][0]

    model = open_clip.create_model("tiny-parity-clip", pretrained=str(tiny["clip"]), force_quick_gelu=True,
                                   precision="fp16").eval()
    pixels = Normalize(open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD)(vbench_clip_transform_image(frames, 32))
    with torch.no_grad():
        image = model.encode_image(pixels.half())
        text = model.encode_text(open_clip.get_tokenizer("tiny-parity-clip")(["a chessboard"]))
    assert image.dtype == text.dtype == torch.float16
    image = image / image.norm(dim=1, keepdim=True)
    text = text / text.norm(dim=1, keepdim=True)
    logits = torch.tensor(100.0) * image @ text.t()  # OpenAI weights' logit scale; appearance_style / 100
    assert logits.dtype == torch.float16
    assert abs(cosine - (logits[:, 0].double() / 100).mean().item()) <= 1e-6
