"""DOVER / FAST-VQA networks: published key layouts, strict loading, formula checks, branch fusion by name."""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from vbench_pref.errors import VbenchPrefError
from vbench_pref.vqa.convnext3d import GRN, ChannelsFirstLayerNorm
from vbench_pref.vqa.heads import VQAHead, pool_clips
from vbench_pref.vqa.models import (
    FAMILIES,
    DOVER_FUSION,
    dover_overall,
    empty_network,
    expected_shapes,
    load_network,
    random_network,
    write_random_checkpoint,
)
from vbench_pref.vqa.swin3d import WindowAttention3D, fit_window, fragment_gate, shift_mask, window_partition

DATA = Path(__file__).parent / "data"
TINY_INPUT = (3, 8, 64, 64)  # channels, frames, height, width of the tiny networks' views
# FAST-VQA's adaptive window scales with the input against 32 x 224 x 224: half that size gives a sub-window
TINY_ADAPTIVE_INPUT = (3, 16, 112, 112)


@pytest.fixture(scope="module")
def published() -> dict:
    return json.loads(gzip.open(DATA / "vqa_keys.json.gz", "rt").read())


def tiny_views(name: str, videos: int = 1, clips: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {b.name: torch.randn(videos, clips, *(TINY_ADAPTIVE_INPUT if getattr(b.backbone, "adaptive_window", False)
                                                  else TINY_INPUT), generator=g)
            for b in empty_network(name, "tiny").branches}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_full_size_keys_and_shapes_equal_the_published_checkpoints(name, published) -> None:
    expected = {k: tuple(v) for k, v in published[name]["shapes"].items()}
    assert expected_shapes(name) == expected
    assert published[name]["layout"] == FAMILIES[name].layout


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_tiny_random_checkpoint_in_the_published_layout_loads_and_scores(name, tmp_path) -> None:
    path = tmp_path / FAMILIES[name].file
    saved = write_random_checkpoint(name, path, seed=3)
    raw = torch.load(path, weights_only=True)
    assert (list(raw) == ["state_dict"]) == (FAMILIES[name].layout == "state_dict")
    model = load_network(name, path, size="tiny")
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[key]), key
    views = tiny_views(name)
    with torch.no_grad():
        got = model(views)
        again = random_network(name, "tiny", seed=3)(views)
        other = random_network(name, "tiny", seed=4)(views)
    assert set(got) == {b.name for b in model.branches}
    for branch in got:
        assert got[branch].shape == (1,)
        assert torch.equal(got[branch], again[branch])
        assert not torch.allclose(got[branch], other[branch])


def test_a_checkpoint_of_another_network_is_refused_in_one_line(tmp_path) -> None:
    path = tmp_path / "DOVER.pth"
    write_random_checkpoint("dover", path)
    with pytest.raises(VbenchPrefError) as err:
        load_network("fast_vqa_b", path, size="tiny")
    message = str(err.value)
    assert "\n" not in message and "not a fast_vqa_b checkpoint" in message
    assert "missing (fragments_backbone." in message and "unexpected (technical_backbone." in message


def test_a_tensor_of_another_shape_is_refused(tmp_path) -> None:
    path = tmp_path / "FAST_VQA_B_1_4.pth"
    state = write_random_checkpoint("fast_vqa_b", path)
    state["vqa_head.fc_hid.weight"] = torch.zeros(5, 64, 1, 1, 1)
    torch.save({"state_dict": state}, path)
    with pytest.raises(VbenchPrefError, match=r"1 with other shapes \(vqa_head\.fc_hid\.weight \(5, 64, 1, 1, 1\) not"):
        load_network("fast_vqa_b", path, size="tiny")


def test_the_trainers_wrapping_with_validation_results_loads(tmp_path) -> None:
    path = tmp_path / "DOVER_plus_plus.pth"
    state = write_random_checkpoint("dover_plus_plus", path)
    torch.save({"state_dict": state, "validation_results": [0.91, 0.88]}, path)
    model = load_network("dover_plus_plus", path, size="tiny")
    assert torch.equal(model.state_dict()["technical_head.fc_last.bias"], state["technical_head.fc_last.bias"])


def test_a_file_that_is_not_a_state_dict_is_refused(tmp_path) -> None:
    path = tmp_path / "DOVER.pth"
    torch.save({"state_dict": {}, "epoch": 3}, path)
    with pytest.raises(VbenchPrefError, match="not a state dict of tensors"):
        load_network("dover", path, size="tiny")


def test_branch_order_in_the_checkpoint_never_swaps_the_fused_branches(tmp_path) -> None:
    views = tiny_views("dover", videos=2)
    scores = []
    for order in (("technical", "aesthetic"), ("aesthetic", "technical")):
        path = tmp_path / f"{order[0]}_first.pth"
        write_random_checkpoint("dover", path, branch_order=order, seed=5)
        assert next(iter(torch.load(path, weights_only=True))).startswith(order[0])
        with torch.no_grad():
            scores.append(load_network("dover", path, size="tiny")(views))
    for name in ("technical", "aesthetic"):
        assert torch.equal(scores[0][name], scores[1][name])
    t, a = scores[0]["technical"], scores[0]["aesthetic"]
    assert not torch.allclose(t, a)
    direct = torch.sigmoid(0.6104 * (t - 0.1107) / 0.07355 + 0.3896 * (a + 0.08285) / 0.03774)
    reversed_dict = {"aesthetic": a, "technical": t}
    torch.testing.assert_close(dover_overall(scores[0]), direct)
    torch.testing.assert_close(dover_overall(reversed_dict), direct)
    swapped = torch.sigmoid(0.6104 * (a - 0.1107) / 0.07355 + 0.3896 * (t + 0.08285) / 0.03774)
    assert not torch.allclose(direct, swapped)
    assert set(DOVER_FUSION) == {"technical", "aesthetic"}


@pytest.mark.parametrize("name", ["dover", "dover_mobile", "fast_vqa_b"])
def test_a_batch_of_videos_scores_as_each_video_alone(name) -> None:
    model = random_network(name, "tiny", seed=1)
    views = tiny_views(name, videos=3, clips=2, seed=7)
    with torch.no_grad():
        batched = model(views)
        alone = [model({k: v[i:i + 1] for k, v in views.items()}) for i in range(3)]
    for branch, values in batched.items():
        torch.testing.assert_close(values, torch.cat([a[branch] for a in alone]), atol=1e-5, rtol=0)
        assert len(set(values.tolist())) == 3  # different videos, different scores


def test_views_must_be_named_by_branch() -> None:
    model = random_network("dover", "tiny")
    views = tiny_views("dover")
    with pytest.raises(VbenchPrefError, match="do not match the branches"):
        model({"fragments": views["technical"]})


def test_autocast_runs_close_to_float32() -> None:
    model = random_network("dover", "tiny", seed=2)
    views = tiny_views("dover")
    assert all(p.dtype == torch.float32 for p in model.state_dict().values() if p.is_floating_point())
    with torch.no_grad():
        full = model(views)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model(views)
    for branch in full:
        assert half[branch].dtype == torch.float32
        torch.testing.assert_close(half[branch], full[branch], atol=0.05, rtol=0.05)


# --- independent computations of the formula steps ---------------------------------------------------

def naive_gated_bias(attn: WindowAttention3D, padded, window, shift) -> torch.Tensor:
    """(windows, heads, n, n) gated relative position bias, one token pair at a time."""
    full = attn.window
    frags = (1, window[1], window[2])

    def frag(axis: int, pos: int) -> int:  # nearest-neighbour fragment of a position along an axis
        return min(int(pos * frags[axis] / padded[axis]), frags[axis] - 1)

    starts = itertools.product(*(range(0, p, w) for p, w in zip(padded, window)))
    out = []
    for start in starts:
        tokens = [tuple(s + o for s, o in zip(start, off)) for off in itertools.product(*(range(w) for w in window))]
        n = len(tokens)
        bias = torch.zeros(attn.num_heads, n, n)
        for i, j in itertools.product(range(n), range(n)):
            offset = [tokens[i][a] - tokens[j][a] for a in range(3)]
            index = ((offset[0] + full[0] - 1) * (2 * full[1] - 1) + offset[1] + full[1] - 1) * (2 * full[2] - 1) + offset[2] + full[2] - 1
            # positions in the rolled map come from (position + shift) mod size of the unrolled one
            src = [[(t[a] + shift[a]) % padded[a] for a in range(3)] for t in (tokens[i], tokens[j])]
            gate = sum(abs(frag(a, src[0][a]) - frag(a, src[1][a])) for a in range(3))
            rpb = attn.relative_position_bias_table[index]
            fpb = attn.fragment_position_bias_table[index]
            bias[:, i, j] = rpb * gate + fpb * (1 - gate)
        out.append(bias)
    return torch.stack(out)


@pytest.mark.parametrize("shift", [(0, 0, 0), (1, 2, 2)])
def test_gated_relative_position_bias_equals_the_pairwise_formula(shift) -> None:
    torch.manual_seed(0)
    attn = WindowAttention3D(dim=8, window=(2, 4, 4), num_heads=2, frag_bias=True, adaptive=True)
    torch.nn.init.normal_(attn.relative_position_bias_table)
    torch.nn.init.normal_(attn.fragment_position_bias_table)
    padded, window = (2, 8, 8), (2, 4, 4)
    gate = fragment_gate(padded, window, shift, torch.device("cpu"))
    with torch.no_grad():
        got = attn.attention_mask(window, gate, None)
    torch.testing.assert_close(got, naive_gated_bias(attn, padded, window, shift), atol=1e-6, rtol=1e-6)


def test_windowed_attention_equals_explicit_softmax() -> None:
    torch.manual_seed(1)
    attn = WindowAttention3D(dim=8, window=(2, 4, 4), num_heads=2, frag_bias=True, adaptive=True)
    torch.nn.init.normal_(attn.relative_position_bias_table)
    torch.nn.init.normal_(attn.fragment_position_bias_table)
    padded, window, shift = (2, 8, 8), (2, 4, 4), (1, 2, 2)
    mask = attn.attention_mask(window, fragment_gate(padded, window, shift, torch.device("cpu")),
                               shift_mask(padded, window, shift, torch.device("cpu")))
    batch, windows, n = 2, 4, 32
    x = torch.randn(batch * windows, n, 8)
    with torch.no_grad():
        got = attn(x, batch, mask)
        q, k, v = attn.qkv(x).view(batch * windows, n, 3, 2, 4).permute(2, 0, 3, 1, 4)
        logits = (q * 4 ** -0.5) @ k.transpose(-1, -2) + mask.repeat(batch, 1, 1, 1)
        want = attn.proj((logits.softmax(-1) @ v).transpose(1, 2).reshape(batch * windows, n, 8))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_shift_mask_separates_the_rolled_regions() -> None:
    mask = shift_mask((4, 8, 8), (2, 4, 4), (1, 2, 2), torch.device("cpu"))
    assert mask.shape == (8, 32, 32)
    assert torch.all(mask[0] == 0)  # the first window lies inside one region
    last = mask[-1]  # the corner window mixes 8 regions of 4 tokens each
    assert int((last == 0).sum()) == 8 * 4 * 4 and set(last.unique().tolist()) == {-100.0, 0.0}


def test_small_windows_read_the_bias_as_each_network_does() -> None:
    adaptive = WindowAttention3D(dim=8, window=(2, 4, 4), num_heads=1, frag_bias=False, adaptive=True)
    fixed = WindowAttention3D(dim=8, window=(2, 4, 4), num_heads=1, frag_bias=False, adaptive=False)
    small = (1, 2, 2)
    coords = list(itertools.product(*(range(w) for w in small)))
    want = torch.tensor([[((a[0] - b[0] + 1) * 7 + a[1] - b[1] + 3) * 7 + a[2] - b[2] + 3 for b in coords] for a in coords])
    assert torch.equal(adaptive.bias_index(small), want)  # FAST-VQA: the sub-window's own offsets
    assert torch.equal(fixed.bias_index(small), fixed.relative_position_index[:4, :4])  # DOVER: first n of the window
    assert fit_window((4, 2, 8), (2, 4, 4), (1, 2, 2)) == ((2, 2, 4), (1, 0, 2))


def test_window_partition_keeps_each_window_contiguous() -> None:
    x = torch.arange(2 * 4 * 4).view(1, 2, 4, 4, 1)
    windows = window_partition(x, (2, 2, 2))
    assert windows[0, :, 0].tolist() == [0, 1, 4, 5, 16, 17, 20, 21]


def test_head_map_and_pooling_equal_the_formula() -> None:
    torch.manual_seed(2)
    head = VQAHead(in_channels=6, hidden_channels=3)
    feats = torch.randn(4, 6, 2, 3, 3)  # 2 videos x 2 clips
    with torch.no_grad():
        maps = head(feats)
        hidden = torch.einsum("nc...,hc->nh...", feats, head.fc_hid.weight.view(3, 6)) + head.fc_hid.bias.view(1, 3, 1, 1, 1)
        hidden = 0.5 * hidden * (1 + torch.erf(hidden / 2 ** 0.5))
        out = torch.einsum("nh...,h->n...", hidden, head.fc_last.weight.view(3)) + head.fc_last.bias
    torch.testing.assert_close(maps[:, 0], out, atol=1e-6, rtol=0)
    torch.testing.assert_close(pool_clips(maps, 2), out.view(2, -1).mean(1))


def test_convnext_norms_equal_their_formulas() -> None:
    torch.manual_seed(3)
    x = torch.randn(2, 5, 3, 4, 6)
    norm = ChannelsFirstLayerNorm(5)
    torch.nn.init.normal_(norm.weight)
    with torch.no_grad():
        want = F.layer_norm(x.permute(0, 2, 3, 4, 1), (5,), norm.weight, norm.bias, 1e-6).permute(0, 4, 1, 2, 3)
        torch.testing.assert_close(norm(x), want, atol=1e-5, rtol=0)
        grn = GRN(6)
        torch.nn.init.normal_(grn.gamma)
        torch.nn.init.normal_(grn.beta)
        y = torch.randn(2, 3, 4, 5, 6)  # N, T, H, W, C: the norm runs over T and H only, as published
        g = y.pow(2).sum((1, 2), keepdim=True).sqrt()
        want = grn.gamma * (y * g / (g.mean(-1, keepdim=True) + 1e-6)) + grn.beta + y
        torch.testing.assert_close(grn(y), want, atol=1e-5, rtol=0)
