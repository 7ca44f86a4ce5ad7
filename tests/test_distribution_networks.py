"""FVD feature networks (I3D, VideoMAE-v2): published key layouts, loading through the manifest, preprocessing."""

from __future__ import annotations

import argparse
import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vbench_pref.distribution import i3d, videomae
from vbench_pref.distribution.weights import ALL_WEIGHTS, I3D_WEIGHTS, VIDEOMAE_WEIGHTS
from vbench_pref.errors import VbenchPrefError, WeightsMissingError

DATA = Path(__file__).parent / "data"
PUBLISHED = {"i3d": "i3d_pretrained_400", "videomae": "vit_g_hybrid_pt_1200e_ssv2_ft"}


@pytest.fixture(scope="module")
def published() -> dict:
    return json.loads(gzip.open(DATA / "distribution_keys.json.gz", "rt").read())


@pytest.fixture(autouse=True)
def isolated(own_caches, tmp_path, monkeypatch) -> None:
    """No weight file of the user's machine is found: caches, torch.hub and the variables point into tmp."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for spec in ALL_WEIGHTS:
        monkeypatch.delenv(spec.env_var, raising=False)


def clips(videos: int, frames: int = 16, height: int = 24, width: int = 40, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (videos, frames, height, width, 3), generator=g, dtype=torch.uint8)


# --- published layouts --------------------------------------------------------------------------------

def test_full_size_i3d_keys_and_shapes_equal_the_published_checkpoint(published) -> None:
    expected = {k: tuple(v) for k, v in published[PUBLISHED["i3d"]]["shapes"].items()}
    assert i3d.published_shapes() == expected
    assert len(expected) == 287 and expected["logits.conv3d.weight"] == (400, 1024, 1, 1, 1)
    assert sum(math.prod(s) for s in expected.values()) == 12_711_824


def test_full_size_videomae_keys_and_shapes_equal_the_published_checkpoint(published) -> None:
    expected = {k: tuple(v) for k, v in published[PUBLISHED["videomae"]]["shapes"].items()}
    assert videomae.published_shapes("full") == expected
    assert expected["fc_norm.weight"] == (videomae.VIDEOMAE_FEATURES,) and expected["head.weight"] == (174, 1408)
    assert "pos_embed" not in expected  # a fixed table, rebuilt rather than read
    assert videomae.empty_videomae().pos_embed.shape == (1, 2048, 1408)


# --- I3D: loading -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def i3d_file(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    path = tmp_path_factory.mktemp("i3d") / I3D_WEIGHTS.filename
    return path, i3d.write_random_i3d(path, seed=3)


def test_random_i3d_in_the_published_layout_loads_through_the_manifest(i3d_file, monkeypatch) -> None:
    path, saved = i3d_file
    raw = torch.load(path, weights_only=True)
    assert set(raw) == set(i3d.published_shapes()) and not any("num_batches_tracked" in k for k in raw)
    monkeypatch.setenv(I3D_WEIGHTS.env_var, str(path.parent))  # a folder holding the file
    model = i3d.load_i3d()
    state = model.state_dict()
    for key, value in saved.items():
        assert torch.equal(state[key], value), key
    assert not model.training and all(p.dtype == torch.float32 for p in state.values() if p.is_floating_point())
    with torch.no_grad():
        features = model(i3d.preprocess_i3d(clips(1)))
        assert features.shape == (1, i3d.I3D_FEATURES) and torch.isfinite(features).all()
        # the trunk at a small size: a batch maps as each clip alone, other weights map otherwise
        x = i3d.preprocess_i3d(clips(2), size=32)
        got = model.trunk(x)
        alone = model.trunk(x[1:])
        other = i3d.random_i3d(seed=4).trunk(x)
    assert got.shape == (2, i3d.I3D_POOL_FEATURES, 2, 1, 1)
    torch.testing.assert_close(alone[0], got[1], atol=1e-5, rtol=0)
    assert not torch.allclose(got[0], got[1]) and not torch.allclose(got, other)


def test_an_i3d_state_dict_with_batch_counters_also_loads(tmp_path) -> None:
    path = tmp_path / "i3d.pt"
    state = i3d.random_i3d(seed=5).state_dict()
    torch.save(state, path)
    assert any(k.endswith("num_batches_tracked") for k in state)
    loaded = i3d.load_i3d(path).state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_missing_i3d_weights_fail_in_one_line_naming_the_pull_command() -> None:
    with pytest.raises(WeightsMissingError) as err:
        i3d.load_i3d()
    message = str(err.value)
    assert "\n" not in message and "i3d_pretrained_400.pt" in message
    assert "`vbench-pref weights pull i3d-kinetics400-weights`" in message


def test_another_networks_checkpoint_is_refused_in_one_line(tmp_path) -> None:
    path = tmp_path / "vit.pth"
    videomae.write_random_videomae(path, size="tiny", wrapper=None)
    with pytest.raises(VbenchPrefError) as err:
        i3d.load_i3d(path)
    message = str(err.value)
    assert "\n" not in message and "is not a Kinetics-400 I3D checkpoint" in message
    assert "missing (logits.conv3d.weight" in message or "missing (Conv3d_1a_7x7" in message


def test_a_pickled_object_is_never_unpickled(tmp_path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"weights": Path("/")}, path)  # any class outside the weights-only allow-list
    with pytest.raises(VbenchPrefError, match="not loaded since they can run code"):
        i3d.load_i3d(path)


# --- I3D: network formula -----------------------------------------------------------------------------

@pytest.mark.parametrize(("size", "kernel", "stride", "want"), [
    (16, 7, 2, (2, 3)),  # TensorFlow SAME: k - s = 5 in total, the odd one at the end
    (7, 2, 2, (0, 1)),  # 7 % 2 = 1: k - 1
    (224, 3, 1, (1, 1)),
    (8, 1, 1, (0, 0)),
])
def test_same_padding_is_tensorflows(size, kernel, stride, want) -> None:
    pads = i3d.same_padding((size, size, size), (kernel,) * 3, (stride,) * 3)
    assert pads == want * 3
    assert (size + sum(want) - kernel) // stride + 1 == math.ceil(size / stride)


def test_unit_and_pool_equal_pad_conv_norm_relu() -> None:
    torch.manual_seed(0)
    unit = i3d.Unit3D(3, 4, (3, 5, 5), (2, 2, 2)).eval()
    torch.nn.init.normal_(unit.bn.running_mean)
    torch.nn.init.uniform_(unit.bn.running_var, 0.5, 2)
    x = torch.randn(2, 3, 5, 9, 10)
    with torch.no_grad():
        # (T, H, W) = (5, 9, 10), stride 2: totals (2, 4, 3) -> before (1, 2, 1), after (1, 2, 2)
        padded = F.pad(x, (1, 2, 2, 2, 1, 1))
        conv = F.conv3d(padded, unit.conv3d.weight, stride=2)
        bn = unit.bn
        want = torch.relu((conv - bn.running_mean.view(1, -1, 1, 1, 1)) / torch.sqrt(bn.running_var.view(1, -1, 1, 1, 1) + 1e-5)
                          * bn.weight.view(1, -1, 1, 1, 1) + bn.bias.view(1, -1, 1, 1, 1))
        torch.testing.assert_close(unit(x), want, atol=1e-5, rtol=1e-5)
        pool = i3d.MaxPool3dSame((1, 3, 3), (1, 2, 2))
        torch.testing.assert_close(pool(x.relu()), F.max_pool3d(F.pad(x.relu(), (0, 1, 1, 1, 0, 0)), (1, 3, 3), (1, 2, 2)))


def test_logits_average_the_time_steps_of_the_pool() -> None:
    model = i3d.random_i3d(seed=1)
    pooled = torch.randn(2, i3d.I3D_POOL_FEATURES, 3, 1, 1)  # e.g. 32 frames leave 3 pooled time steps
    with torch.no_grad():
        w, b = model.logits.conv3d.weight.flatten(1), model.logits.conv3d.bias
        want = (torch.einsum("oc,nct->not", w, pooled.flatten(2)) + b[:, None]).mean(-1)
        torch.testing.assert_close(model.classify(pooled), want, atol=1e-5, rtol=1e-5)


def test_i3d_refuses_inputs_of_another_size() -> None:
    model = i3d.random_i3d()
    with pytest.raises(VbenchPrefError, match="224 x 224"):
        model(torch.zeros(1, 3, 16, 256, 256))
    with pytest.raises(VbenchPrefError, match="batch, 3, frames"):
        model(torch.zeros(3, 16, 224, 224))


# --- preprocessing against an independent bilinear resize ---------------------------------------------

def bilinear_axis(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of a half-pixel-centred linear resize without antialiasing (edges clamped)."""
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        src = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
        lo = min(int(np.floor(src)), n_in - 1)
        hi = min(lo + 1, n_in - 1)
        frac = src - lo
        m[i, lo] += 1 - frac
        m[i, hi] += frac
    return m


def reference_resize(videos: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """(B, T, H, W, C) -> (B, T, out_h, out_w, C) in float64, one separable matrix product per axis."""
    rows, cols = bilinear_axis(videos.shape[2], out_h), bilinear_axis(videos.shape[3], out_w)
    return np.einsum("ih,bthwc,jw->btijc", rows, videos.astype(np.float64), cols)


def test_i3d_preprocessing_is_cd_fvds() -> None:
    videos = clips(2, frames=3, height=24, width=40)
    got = i3d.preprocess_i3d(videos, size=32)
    want = reference_resize(videos.numpy(), 32, 32) * 2 / 255 - 1
    assert got.shape == (2, 3, 3, 32, 32) and got.dtype == torch.float32
    np.testing.assert_allclose(got.permute(0, 2, 3, 4, 1).numpy(), want, atol=1e-5, rtol=0)
    assert got.min() >= -1 and got.max() <= 1


def test_i3d_short_side_crop_is_videogpts() -> None:
    videos = clips(1, frames=2, height=24, width=40)
    got = i3d.preprocess_i3d(videos, size=16, resize="short_side_crop")
    # short side 24 -> 16, long side ceil(40 * 16 / 24) = 27, centre crop from column (27 - 16) // 2 = 5
    want = reference_resize(videos.numpy(), 16, 27)[:, :, :, 5:21] * 2 / 255 - 1
    # float32 source coordinates: ~1e-3 of a grey level where neighbouring pixels differ by 255
    np.testing.assert_allclose(got.permute(0, 2, 3, 4, 1).numpy(), want, atol=1e-5, rtol=0)
    with pytest.raises(VbenchPrefError, match="unknown I3D resize"):
        i3d.preprocess_i3d(videos, resize="letterbox")


def test_videomae_preprocessing_is_cd_fvds() -> None:
    videos = clips(2, frames=3, height=40, width=24)
    got = videomae.preprocess_videomae(videos, size=32)
    want = reference_resize(videos.numpy(), 32, 32) / 255  # [0, 1], no mean/std
    np.testing.assert_allclose(got.permute(0, 2, 3, 4, 1).numpy(), want, atol=1e-6, rtol=0)
    with pytest.raises(VbenchPrefError, match="batch, frames, height, width, 3"):
        videomae.preprocess_videomae(videos[0])


# --- VideoMAE -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("wrapper", ["module", "model", None])
def test_random_videomae_in_the_published_layout_loads_through_the_manifest(wrapper, tmp_path, monkeypatch) -> None:
    path = tmp_path / Path(VIDEOMAE_WEIGHTS.filename).name
    saved = videomae.write_random_videomae(path, size="tiny", seed=2, wrapper=wrapper)
    monkeypatch.setenv(VIDEOMAE_WEIGHTS.env_var, str(path))
    model = videomae.load_videomae(size="tiny")
    state = model.state_dict()
    assert set(state) == set(saved) and all(torch.equal(state[k], v) for k, v in saved.items())
    x = videomae.preprocess_videomae(clips(2))
    with torch.no_grad():
        got = model(x)
        again = videomae.random_videomae("tiny", seed=2)(x)
        other = videomae.random_videomae("tiny", seed=3)(x)
        alone = model(x[1:])
    assert got.shape == (2, videomae.VIT_TINY_TEST.embed_dim)
    assert torch.equal(got, again) and not torch.allclose(got, other)
    torch.testing.assert_close(alone[0], got[1], atol=1e-5, rtol=0)
    assert not torch.allclose(got[0], got[1])


def test_a_trainers_checkpoint_with_its_options_loads(tmp_path) -> None:
    path = tmp_path / "checkpoint.pth"
    state = videomae.random_videomae("tiny", seed=1).state_dict()
    torch.save({"model": state, "epoch": 29, "args": argparse.Namespace(model="vit_giant_patch14_224", lr=1e-3)}, path)
    loaded = videomae.load_videomae(path, size="tiny").state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_a_videomae_checkpoint_of_another_size_is_refused(tmp_path) -> None:
    path = tmp_path / "tiny.pth"
    videomae.write_random_videomae(path, size="tiny")
    with pytest.raises(VbenchPrefError, match=r"not a VideoMAE-v2 \(full\) checkpoint: tensors .*with other shapes"):
        videomae.load_videomae(path, size="full")


def test_missing_videomae_weights_fail_in_one_line_naming_the_pull_command() -> None:
    with pytest.raises(WeightsMissingError) as err:
        videomae.load_videomae()
    message = str(err.value)
    assert "\n" not in message and "vbench-pref weights pull videomae-v2-g-ssv2-weights" in message


def test_sinusoid_table_equals_the_formula() -> None:
    table = videomae.sinusoid_table(7, 6)[0].double()
    for pos in range(7):
        for j in range(6):
            angle = pos / 10000 ** (2 * (j // 2) / 6)
            want = math.sin(angle) if j % 2 == 0 else math.cos(angle)
            assert abs(table[pos, j].item() - want) < 1e-6


def test_attention_equals_explicit_softmax() -> None:
    torch.manual_seed(0)
    attn = videomae.Attention(dim=12, num_heads=3)
    torch.nn.init.normal_(attn.q_bias)
    torch.nn.init.normal_(attn.v_bias)
    x = torch.randn(2, 5, 12)
    with torch.no_grad():
        w = attn.qkv.weight
        q = (x @ w[:12].T + attn.q_bias).view(2, 5, 3, 4).transpose(1, 2)
        k = (x @ w[12:24].T).view(2, 5, 3, 4).transpose(1, 2)  # no k bias
        v = (x @ w[24:].T + attn.v_bias).view(2, 5, 3, 4).transpose(1, 2)
        weights = torch.softmax(q @ k.transpose(-1, -2) / 2.0, dim=-1)  # scale head_dim ** -0.5 = 1/2
        want = attn.proj((weights @ v).transpose(1, 2).reshape(2, 5, 12))
        torch.testing.assert_close(attn(x), want, atol=1e-5, rtol=0)


def test_features_are_fc_norm_of_the_mean_token() -> None:
    model = videomae.random_videomae("tiny", seed=4)
    x = videomae.preprocess_videomae(clips(1))
    with torch.no_grad():
        tokens = model.patch_embed(x) + model.pos_embed
        for block in model.blocks:
            tokens = block(tokens)
        want = F.layer_norm(tokens.mean(1), (32,), model.fc_norm.weight, model.fc_norm.bias, 1e-6)
        torch.testing.assert_close(model(x), want, atol=1e-6, rtol=0)
        assert model.logits(x).shape == (1, videomae.VIT_TINY_TEST.num_classes)


def test_other_clip_lengths_stretch_the_position_table_in_time() -> None:
    model = videomae.random_videomae("tiny", seed=4)
    table = model.position_table(8)  # 4 temporal tokens from the 8-token grid
    assert table.shape == (1, 4 * 16 * 16, 32)
    grid = model.pos_embed.view(1, 8, 256, 32)
    # scale (4 + 0.1) / 8 without align_corners: output step t reads input position (t + 0.5) * 8 / 4.1 - 0.5
    for t in range(4):
        src = (t + 0.5) * 8 / 4.1 - 0.5
        lo, frac = int(src), src - int(src)
        want = grid[0, lo] * (1 - frac) + grid[0, lo + 1] * frac
        torch.testing.assert_close(table.view(4, 256, 32)[t], want, atol=1e-6, rtol=0)
    assert model.position_table(16) is model.pos_embed
    with torch.no_grad():
        assert model(videomae.preprocess_videomae(clips(1, frames=8))).shape == (1, 32)


@pytest.mark.parametrize("preprocess", [i3d.preprocess_i3d, videomae.preprocess_videomae])
def test_clips_of_different_sizes_preprocess_as_each_alone(preprocess) -> None:
    small, large = clips(1, frames=2, height=24, width=40)[0], clips(1, frames=2, height=36, width=20, seed=1)[0]
    got = preprocess([small, large], size=16)
    assert got.shape == (2, 3, 2, 16, 16)
    assert torch.equal(got[0], preprocess(small[None], size=16)[0])
    assert torch.equal(got[1], preprocess(large[None], size=16)[0])
    with pytest.raises(VbenchPrefError, match="no clips"):
        preprocess([])
