"""FID Inception-v3: the published key layout, loading through the manifest, clean-fid's and pytorch-fid's
preprocessing rebuilt from their primitives, per-frame features by video."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from vbench_pref import weights as weight_files
from vbench_pref.distribution import inception as I
from vbench_pref.errors import VbenchPrefError, WeightsMissingError

DATA = Path(__file__).parent / "data"
SEED = 3


@pytest.fixture(scope="module")
def published() -> dict:
    return json.loads(gzip.open(DATA / "fid_inception_keys.json.gz", "rt").read())["fid_inception"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    # not named like the published file: that name's sha256 is pinned
    path = tmp_path_factory.mktemp("fid") / "inception-random.pth"
    return path, I.write_random_checkpoint(path, seed=SEED)


@pytest.fixture(scope="module")
def model(checkpoint) -> I.FIDInceptionV3:
    return I.load_inception(checkpoint[0])


def frames(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Gradients, a hard black-on-white square (bicubic overshoots at its edges) and noise."""
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) % 256], -1)[None] + 7 * np.arange(n)[:, None, None, None]
    out = np.clip(base % 256 + g.integers(-20, 20, (n, h, w, 3)), 0, 255).astype(np.uint8)
    out[:, h // 4 : h // 2, w // 4 : w // 2] = 255
    out[:, h // 3 : h // 2, w // 3 : w // 2] = 0
    return out


def pil_clean_resize(frame: np.ndarray) -> np.ndarray:
    """clean-fid's resize from PIL primitives: each channel as raw float32 bytes in mode F, bicubic, clip."""
    h, w, _ = frame.shape
    planes = []
    for c in range(3):
        image = Image.frombytes("F", (w, h), frame[:, :, c].astype("<f4").tobytes())
        resized = image.resize((299, 299), resample=Image.BICUBIC)
        planes.append(np.frombuffer(resized.tobytes(), dtype="<f4").reshape(299, 299))
    return np.clip(np.stack(planes), 0, 255)


# ------------------------------------------------------------------------------------------------ layout
def test_full_size_keys_and_shapes_equal_the_published_checkpoint(published) -> None:
    expected = {k: tuple(v) for k, v in published["shapes"].items()}
    got = I.expected_shapes()
    assert got == expected and list(got) == list(expected)
    assert published["file"] == I.FID_INCEPTION_WEIGHTS.filename
    assert published["url"] == I.FID_INCEPTION_WEIGHTS.source
    assert I.FID_INCEPTION_WEIGHTS.filename.split("-")[-1] == I.FID_INCEPTION_WEIGHTS.sha256 + ".pth"
    assert got["fc.weight"] == (1008, 2048) and not any(k.startswith("AuxLogits") for k in got)


def test_random_checkpoint_in_the_published_layout_loads_back_exactly(checkpoint, model) -> None:
    path, saved = checkpoint
    raw = torch.load(path, weights_only=True)
    assert list(raw) == list(I.expected_shapes())  # flat, in the published order
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[key]), key
    assert all(not t.is_inference() and t.dtype in (torch.float32, torch.int64) for t in model.state_dict().values())
    assert not model.training
    with torch.inference_mode():
        got = model(I.preprocess(frames(1, 40, 56), "clean"))
    assert got.shape == (1, I.FEATURE_DIM)
    assert 0.01 < got.abs().mean() < 100  # the seeded random weights keep features in a usable range


def test_the_manifest_path_verifies_and_loads_and_missing_weights_name_the_pull_command(checkpoint, own_caches, monkeypatch) -> None:
    path, saved = checkpoint
    monkeypatch.delenv(I.FID_INCEPTION_WEIGHTS.env_var, raising=False)
    with pytest.raises(WeightsMissingError) as err:
        I.load_fid_inception(evaluator="fid", option="weights")
    line = str(err.value)
    assert "\n" not in line and "`vbench-pref weights pull fid-inception-weights`" in line
    assert "-O fid.weights=" in line and I.FID_INCEPTION_WEIGHTS.env_var in line
    # the published name's pinned prefix refuses a file of other bytes
    with pytest.raises(VbenchPrefError, match="the manifest expects 6726825d") as err:
        I.load_fid_inception(path)
    assert "\n" not in str(err.value)
    # an entry pinning this file's digest finds it in the download cache and verifies it
    spec = dataclasses.replace(I.FID_INCEPTION_WEIGHTS, sha256=weight_files.sha256_file(path)[:8])
    cached = weight_files.url_cache_path(spec)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(path.read_bytes())
    net, resolved = I.load_fid_inception(spec=spec)
    assert resolved.path == cached and resolved.verified_by == "manifest sha256"
    assert torch.equal(net.state_dict()["Mixed_7c.branch_pool.bn.running_var"], saved["Mixed_7c.branch_pool.bn.running_var"])


def test_a_file_without_batch_counters_loads_and_other_networks_are_refused_in_one_line(checkpoint, tmp_path) -> None:
    path, saved = checkpoint
    old = tmp_path / "old.pth"
    torch.save({k: v for k, v in saved.items() if not k.endswith("num_batches_tracked")}, old)
    assert torch.equal(I.load_inception(old).state_dict()["fc.bias"], saved["fc.bias"])
    # torchvision's ImageNet Inception: 1000 classes and an auxiliary head
    other = dict(saved, **{"fc.weight": torch.zeros(1000, 2048), "AuxLogits.fc.weight": torch.zeros(1000, 768)})
    wrong = tmp_path / "torchvision.pth"
    torch.save(other, wrong)
    with pytest.raises(VbenchPrefError) as err:
        I.load_inception(wrong)
    message = str(err.value)
    assert "\n" not in message and "not the FID Inception-v3 checkpoint" in message
    assert "unexpected (AuxLogits.fc.weight)" in message and "fc.weight (1000, 2048) not (1008, 2048)" in message


def test_tensorflow_pools_ignore_padding_and_the_last_block_max_pools(model) -> None:
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    avg = I._same_pool(x, "avg")
    assert avg[0, 0, 0, 0] == (0 + 1 + 4 + 5) / 4  # the corner averages its 4 real neighbours, not 9
    assert avg[0, 0, 1, 1] == x[0, 0, :3, :3].mean()
    assert I._same_pool(-x, "max")[0, 0, 0, 0] == 0  # zero padding never wins a max
    pools = {name: block.pool for name, block in model.named_children() if isinstance(block, I.InceptionE)}
    assert pools == {"Mixed_7b": "avg", "Mixed_7c": "max"}


# ------------------------------------------------------------------------------------------------ inputs
@pytest.mark.parametrize("size", [(37, 53), (320, 400), (299, 299)])
def test_clean_resize_equals_pil_float_bicubic_per_channel(size) -> None:
    video = frames(2, *size, seed=1)
    got = I.clean_resize(video)
    assert got.shape == (2, 3, 299, 299) and got.dtype == torch.float32
    for i, frame in enumerate(video):
        assert np.array_equal(got[i].numpy(), pil_clean_resize(frame))
    if size != (299, 299):
        assert got.min() == 0 and got.max() == 255  # overshoot at the square's edges is clipped ...
        assert not torch.equal(got, got.round())  # ... and nothing is rounded


def test_pytorch_fid_resize_equals_to_tensor_then_bilinear() -> None:
    from torchvision.transforms.functional import to_tensor

    video = frames(2, 48, 80)
    reference = F.interpolate(torch.stack([to_tensor(Image.fromarray(f)) for f in video]), size=(299, 299),
                              mode="bilinear", align_corners=False)
    assert torch.equal(I.pytorch_fid_resize(video), reference)
    assert torch.equal(I.preprocess(video, "pytorch_fid"), 2 * reference - 1)


def test_each_convention_scales_to_the_networks_range() -> None:
    flat = np.zeros((1, 8, 8, 3), np.uint8)
    flat[..., 1] = 255
    clean, pf = I.preprocess(flat, "clean"), I.preprocess(flat, "pytorch_fid")
    # clean-fid feeds the graph (x - 128) / 128, pytorch-fid 2 x - 1 on [0, 1]: 255 gives 127/128 and 1
    assert torch.equal(clean[0, :, 0, 0], torch.tensor([-1.0, 127 / 128, -1.0]))
    assert torch.equal(pf[0, :, 0, 0], torch.tensor([-1.0, 1.0, -1.0]))
    with pytest.raises(VbenchPrefError, match="unknown FID preprocessing convention 'tf'"):
        I.preprocess(flat, "tf")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="uint8 N x H x W x 3"):
        I.preprocess(flat.astype(np.float32), "clean")


def test_frame_selection_by_stride_and_cap() -> None:
    assert I.select_frames(8).tolist() == list(range(8))
    assert I.select_frames(8, stride=3).tolist() == [0, 3, 6]
    assert I.select_frames(8, stride=2, max_frames=3).tolist() == [0, 2, 4]
    assert I.select_frames(2, max_frames=5).tolist() == [0, 1]
    for bad in ({"stride": 0}, {"max_frames": 0}):
        with pytest.raises(VbenchPrefError, match="must be >= 1"):
            I.select_frames(8, **bad)
        with pytest.raises(VbenchPrefError, match="must be >= 1"):
            I.extractor_settings("clean", **bad)


def test_extractor_settings_differ_with_every_choice_that_changes_features() -> None:
    base = I.extractor_settings()
    assert base["convention"] == "clean" and base["frame_stride"] == 1 and base["max_frames"] is None
    others = [I.extractor_settings("pytorch_fid"), I.extractor_settings(stride=2), I.extractor_settings(max_frames=16)]
    assert all(other != base for other in others)
    assert json.loads(json.dumps(base)) == base  # stored beside reference statistics as it is


# ------------------------------------------------------------------------------------------------ features
def test_features_of_a_tiny_batch_are_deterministic_and_batched_across_videos(model) -> None:
    a, b = frames(3, 32, 48, seed=2), frames(1, 40, 40, seed=3)
    first = I.frame_features(model, a[:1])
    assert first.shape == (1, I.FEATURE_DIM) and first.dtype == torch.float32 and not first.is_inference()
    assert torch.equal(first, I.frame_features(model, a[:1]))
    # frames 0 and 2 of a and frame 0 of b (a tensor), in batches of two that straddle the videos
    per_video = I.video_features(model, [a, torch.from_numpy(b)], stride=2, batch_size=2)
    assert [tuple(f.shape) for f in per_video] == [(2, I.FEATURE_DIM), (1, I.FEATURE_DIM)]
    alone = I.frame_features(model, [a[0], a[2], b[0]], batch_size=3)
    assert torch.allclose(torch.cat(per_video), alone, atol=1e-5, rtol=0)
    assert torch.allclose(per_video[0][0], first[0], atol=1e-5, rtol=0)
    assert not torch.allclose(per_video[0][0], per_video[0][1])
    assert I.video_features(model, [a[:0]])[0].shape == (0, I.FEATURE_DIM)
