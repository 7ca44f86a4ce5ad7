"""Flow utilities (warping, occlusion, warping error), RAFT loading, and the two RAFT evaluators (CPU, tiny)."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from vbench_pref import flow
from vbench_pref.errors import ScoreError, VbenchPrefError, WeightsMissingError
from vbench_pref.evaluator import VideoSample
from vbench_pref.evaluators.dynamic_degree import (
    DynamicDegree,
    is_dynamic,
    stride_indices,
    top_fraction_mean,
    vbench_params,
)
from vbench_pref.evaluators.warp_flicker import WarpFlicker
from vbench_pref.flow import (
    backward_warp,
    build_raft,
    flow_between,
    occlusion_mask,
    raft_input_size,
    warping_error,
)
from vbench_pref.weights import sha256_file


def _const_flow(n: int, h: int, w: int, dx: float, dy: float) -> torch.Tensor:
    f = torch.zeros(n, 2, h, w)
    f[:, 0] = dx
    f[:, 1] = dy
    return f


# ----------------------------------------------------------------------------- numpy references
def _np_bilinear(img: np.ndarray, sx: np.ndarray, sy: np.ndarray) -> np.ndarray:
    """img C x H x W sampled at (sx, sy) (H x W each), pixel centres at integers; caller masks outside."""
    _, h, w = img.shape
    x0 = np.clip(np.floor(sx), 0, w - 1).astype(int)
    y0 = np.clip(np.floor(sy), 0, h - 1).astype(int)
    x1 = np.clip(x0 + 1, 0, w - 1)
    y1 = np.clip(y0 + 1, 0, h - 1)
    ax = np.clip(sx - x0, 0, 1)
    ay = np.clip(sy - y0, 0, 1)
    return (
        img[:, y0, x0] * (1 - ax) * (1 - ay)
        + img[:, y0, x1] * ax * (1 - ay)
        + img[:, y1, x0] * (1 - ax) * ay
        + img[:, y1, x1] * ax * ay
    )


def _np_sundaram(fw: np.ndarray, bw: np.ndarray, motion_boundaries: bool = False):
    """Non-occluded mask (H x W) and the test's margin (for excluding float ties), fw/bw 2 x H x W."""
    _, h, w = fw.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    sx, sy = xs + fw[0], ys + fw[1]
    inside = (sx >= 0) & (sx <= w - 1) & (sy >= 0) & (sy <= h - 1)
    b = _np_bilinear(bw, sx, sy)
    lhs = ((fw + b) ** 2).sum(0)
    rhs = 0.01 * ((fw**2).sum(0) + (b**2).sum(0)) + 0.5
    occ = lhs > rhs
    margin = np.abs(lhs - rhs)
    if motion_boundaries:
        du = np.zeros_like(fw)
        dv = np.zeros_like(fw)
        du[:, :, :-1] = fw[:, :, :-1] - fw[:, :, 1:]
        dv[:, :-1, :] = fw[:, :-1, :] - fw[:, 1:, :]
        g = (du**2 + dv**2).sum(0)
        r2 = 0.01 * (fw**2).sum(0) + 0.002
        occ |= g > r2
        margin = np.minimum(margin, np.abs(g - r2))
    return (~occ & inside).astype(np.float64), margin


# ----------------------------------------------------------------------------- warping on a known shift
@pytest.mark.parametrize("dx,dy", [(3, -2), (-4, 1), (0, 5)])
def test_backward_warp_and_occlusion_on_integer_translation(dx: int, dy: int) -> None:
    g = torch.Generator().manual_seed(0)
    h, w = 24, 32
    i_t = torch.rand(1, 3, h, w, generator=g)
    # Content moves by (dx, dy): I_{t+1}(x) = I_t(x - d); the wrapped-around band is garbage on purpose.
    i_t1 = torch.roll(i_t, shifts=(dy, dx), dims=(2, 3))
    fw = _const_flow(1, h, w, dx, dy)
    bw = _const_flow(1, h, w, -dx, -dy)

    warped, valid = backward_warp(i_t1, fw)
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    expected_valid = ((xs + dx >= 0) & (xs + dx <= w - 1) & (ys + dy >= 0) & (ys + dy <= h - 1)).float()
    assert torch.equal(valid[0, 0], expected_valid)
    inside = expected_valid.bool()
    assert torch.allclose(warped[0][:, inside], i_t[0][:, inside], atol=1e-5, rtol=0)

    nonocc = occlusion_mask(fw, bw)
    assert torch.equal(nonocc[0, 0], expected_valid)  # exactly the out-of-frame band is occluded
    if dx or dy:
        assert nonocc.sum() < h * w

    assert warping_error(i_t, i_t1, fw, bw).item() < 1e-10
    wrong = _const_flow(1, h, w, dx + 1, dy)
    wrong_bw = _const_flow(1, h, w, -dx - 1, -dy)
    assert warping_error(i_t, i_t1, wrong, wrong_bw).item() > 1e-2


def test_backward_warp_fractional_flow_is_bilinear() -> None:
    img = torch.arange(12.0).reshape(1, 1, 3, 4)
    out, valid = backward_warp(img, _const_flow(1, 3, 4, 0.5, 0.0))
    assert torch.allclose(out[0, 0, :, :3], img[0, 0, :, :3] + 0.5)
    assert valid[0, 0, :, :3].all() and not valid[0, 0, :, 3].any()


# ----------------------------------------------------------------------------- occlusion vs numpy
@pytest.mark.parametrize("motion_boundaries", [False, True])
def test_occlusion_mask_matches_numpy_sundaram(motion_boundaries: bool) -> None:
    rng = np.random.default_rng(1)
    n, h, w = 3, 20, 28
    ys, xs = np.mgrid[0:h, 0:w] / 15.0
    # Smooth flows (so the motion-boundary test does not fire everywhere) plus noise; the backward flow
    # is consistent (~ -fw) on the right and random on the left so both outcomes occur.
    fw = np.stack([2.5 * np.sin(xs + k) * np.cos(ys) for k in range(2 * n)]).reshape(n, 2, h, w)
    fw = fw + rng.normal(0, 0.01, size=fw.shape)
    bw = -fw + rng.normal(0, 0.4, size=fw.shape)
    bw[:, :, :, : w // 3] = rng.uniform(-4, 4, size=(n, 2, h, w // 3))
    got = occlusion_mask(torch.from_numpy(fw).float(), torch.from_numpy(bw).float(), motion_boundaries)
    assert got.shape == (n, 1, h, w)
    for k in range(n):
        as32 = [x.astype(np.float32).astype(np.float64) for x in (fw[k], bw[k])]
        ref, margin = _np_sundaram(*as32, motion_boundaries)
        sure = margin > 1e-3  # float32 vs float64 may flip exact ties only
        assert sure.mean() > 0.9
        np.testing.assert_array_equal(got[k, 0].numpy()[sure], ref[sure])
        assert 0.05 < ref.mean() < 0.95


# ----------------------------------------------------------------------------- warping error vs numpy
def test_warping_error_matches_numpy_with_integer_flows() -> None:
    rng = np.random.default_rng(2)
    n, h, w = 2, 16, 20
    i_t = rng.random((n, 3, h, w))
    i_t1 = rng.random((n, 3, h, w))
    fw = rng.integers(-2, 3, size=(n, 2, h, w)).astype(np.float64)
    bw = -fw.copy()
    flip = rng.random((n, 1, h, w)) < 0.3
    bw = np.where(flip, rng.integers(-2, 3, size=(n, 2, h, w)), bw).astype(np.float64)

    got = warping_error(*(torch.from_numpy(a).float() for a in (i_t, i_t1, fw, bw)))

    ys, xs = np.mgrid[0:h, 0:w]
    for k in range(n):
        sx = xs + fw[k, 0].astype(int)
        sy = ys + fw[k, 1].astype(int)
        inside = (sx >= 0) & (sx < w) & (sy >= 0) & (sy < h)
        cx, cy = np.clip(sx, 0, w - 1), np.clip(sy, 0, h - 1)
        b = bw[k][:, cy, cx]
        occ = ((fw[k] + b) ** 2).sum(0) > 0.01 * ((fw[k] ** 2).sum(0) + (b**2).sum(0)) + 0.5
        nonocc = (~occ & inside).astype(np.float64)
        sq = ((i_t1[k][:, cy, cx] - i_t[k]) ** 2).mean(0)
        expected = (sq * nonocc).sum() / nonocc.sum()
        assert 0 < nonocc.sum() < h * w
        assert abs(got[k].item() - expected) < 1e-6


def test_warping_error_fully_occluded_pair_is_zero() -> None:
    img = torch.rand(1, 3, 8, 8)
    far = _const_flow(1, 8, 8, 100.0, 0.0)
    assert warping_error(img, img.flip(-1), far, -far).item() == 0.0


# ----------------------------------------------------------------------------- sizes
def test_raft_input_size_policy() -> None:
    assert raft_input_size(64, 64) == (128, 128)  # tiny videos are upsampled to RAFT's minimum
    assert raft_input_size(480, 832) == (296, 512)
    assert raft_input_size(1080, 1920) == (288, 512)
    assert raft_input_size(320, 512) == (320, 512)  # never upscaled for the cap
    assert raft_input_size(100, 1000) == (128, 1280)  # the minimum wins over the cap
    assert raft_input_size(480, 832, max_side=0) == (480, 832)
    for h, w in [(17, 333), (720, 1280), (129, 131)]:
        rh, rw = raft_input_size(h, w)
        assert rh % 8 == 0 and rw % 8 == 0 and min(rh, rw) >= 128


def test_raft_input_size_agrees_with_the_decoder() -> None:
    video = pytest.importorskip("vbench_pref.video")
    plan = getattr(video, "_resize_plan", None)
    if plan is None:
        pytest.skip("vbench_pref.video has no _resize_plan")
    for max_side in (512, 256, 0):
        spec = flow.raft_frame_spec(max_side)
        for h, w in [(480, 832), (720, 1280), (64, 64), (299, 601), (1000, 100), (333, 517), (256, 256)]:
            assert plan(spec, h, w)[0] == raft_input_size(h, w, max_side), (max_side, h, w)


def test_raft_minimum_size_is_128() -> None:
    model, _ = build_raft("raft_small", "random")
    x = torch.rand(1, 3, 128, 128)
    assert torch.isfinite(flow_between(model, x, x, iters=1)).all()
    with torch.no_grad(), pytest.raises(ValueError, match="too small"):
        model(torch.rand(1, 3, 120, 128), torch.rand(1, 3, 120, 128), num_flow_updates=1)
    with pytest.raises(ValueError):
        flow_between(model, torch.rand(1, 3, 128, 132), torch.rand(1, 3, 128, 132), iters=1)


# ----------------------------------------------------------------------------- build_raft
def _tv_state_shapes(variant: str) -> dict[str, tuple[int, ...]]:
    from torchvision.models.optical_flow import raft_large, raft_small

    model = raft_large(weights=None) if variant == "raft_large" else raft_small(weights=None)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    hub = tmp_path / "hub"
    hub.mkdir()
    monkeypatch.setattr(torch.hub, "_hub_dir", str(hub))
    monkeypatch.delenv(flow.RAFT_ENV_VAR, raising=False)

    def fail(entry: object) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(flow, "_download_official", fail)
    return hub


def test_build_raft_random_and_local_file(
    tmp_path: Path, offline_hub: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    model, prov = build_raft("raft_small", "random")
    assert prov["weights"] == "random" and prov["sha256"] is None
    assert not model.training
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == _tv_state_shapes("raft_small")

    path = tmp_path / "my_raft_small.pth"
    torch.save(model.state_dict(), path)
    loaded, prov2 = build_raft("raft_small", str(path))
    assert prov2["weights"] == "local" and prov2["file"] == str(path)
    assert prov2["sha256"] == sha256_file(path)
    assert {k: tuple(v.shape) for k, v in loaded.state_dict().items()} == shapes
    a, b = torch.rand(2, 1, 3, 128, 128)
    assert torch.equal(flow_between(model, a, b, iters=2), flow_between(loaded, a, b, iters=2))

    # A file whose name carries its own correct torchvision-style hash prefix is accepted.
    named = tmp_path / f"raft_small_custom-{sha256_file(path)[:8]}.pth"
    named.write_bytes(path.read_bytes())
    build_raft("raft_small", str(named))

    # The env var supplies the file behind "official".
    monkeypatch.setenv(flow.RAFT_ENV_VAR, str(path))
    _, prov3 = build_raft("raft_small", "official")
    assert prov3["file"] == str(path)
    assert WarpFlicker(model="raft_small", weights=str(path)).missing_weights() is None

    with pytest.raises(VbenchPrefError, match="not a torchvision raft_large state dict"):
        build_raft("raft_large", str(path))


def test_build_raft_large_random_matches_torchvision() -> None:
    model, _ = build_raft("raft_large", "random")
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == _tv_state_shapes("raft_large")


def test_build_raft_refuses_wrong_hash_prefix(tmp_path: Path, offline_hub: Path) -> None:
    model, _ = build_raft("raft_small", "random")
    wrong = tmp_path / "raft_small_C_T_V2-01064c6d.pth"  # torchvision's name, but not its content
    torch.save(model.state_dict(), wrong)
    with pytest.raises(VbenchPrefError, match="sha256"):
        build_raft("raft_small", str(wrong))
    # The same check applies to a file found in torch.hub's cache.
    (offline_hub / "checkpoints").mkdir()
    (offline_hub / "checkpoints" / wrong.name).write_bytes(wrong.read_bytes())
    with pytest.raises(VbenchPrefError, match="sha256"):
        build_raft("raft_small", "official")


def test_build_raft_official_offline_is_one_line(offline_hub: Path) -> None:
    with pytest.raises(WeightsMissingError) as info:
        build_raft("raft_large", "official")
    message = str(info.value)
    assert "\n" not in message
    assert "raft_large_C_T_SKHT_V2-ff5fadd5.pth" in message
    assert "https://download.pytorch.org/models/raft_large_C_T_SKHT_V2-ff5fadd5.pth" in message
    assert str(offline_hub / "checkpoints") in message
    assert flow.RAFT_ENV_VAR in message and "weights=" in message
    # The evaluators report the same without trying a download, so default runs skip them.
    reason = WarpFlicker().missing_weights()
    assert reason and "\n" not in reason and "-O warp_flicker.weights=" in reason
    assert "raft_small_C_T_V2-01064c6d.pth" in (DynamicDegree(model="raft_small").missing_weights() or "")
    assert WarpFlicker(weights="random").missing_weights() is None
    with pytest.raises(WeightsMissingError, match="raft_small_C_T_V1-ad48884c.pth"):
        build_raft("raft_small", "C_T_V1")
    with pytest.raises(WeightsMissingError, match="neither"):
        build_raft("raft_small", "/no/such/file.pth")


# ----------------------------------------------------------------------------- evaluators
def _video(name: str, frames: np.ndarray, fps: float = 8.0) -> VideoSample:
    t = frames.shape[0]
    return VideoSample(video=name, frames=torch.from_numpy(frames), timestamps=np.arange(t) / fps, fps=fps)


def _moving_square(t: int, h: int, w: int, step: int) -> np.ndarray:
    rng = np.random.default_rng(3)
    background = (rng.random((h, w, 3)) * 80).astype(np.uint8)
    out = np.repeat(background[None], t, axis=0)
    for k in range(t):
        x = 4 + k * step
        out[k, 10:30, x : x + 20] = 230
    return out


def test_warp_flicker_end_to_end_random_weights() -> None:
    torch.manual_seed(0)
    ev = WarpFlicker(model="raft_small", weights="random", iters=2, pair_batch=2)
    assert ev.uses_random_weights
    ev.load("cpu")
    assert ev.weight_provenance()[0]["weights"] == "random"
    rng = np.random.default_rng(4)
    batch = [
        _video("square", _moving_square(4, 64, 64, 3)),
        _video("noise", (rng.random((4, 64, 64, 3)) * 255).astype(np.uint8)),
        _video("wide", _moving_square(3, 48, 80, 2)),  # another size: its own RAFT group
    ]
    scores = ev.score(batch)["warp_flicker"]
    assert scores.shape == (3,) and np.isfinite(scores).all() and (scores <= 1.0).all()
    assert scores[1] < scores[0]  # independent noise frames flicker more than a moving square
    alone = ev.score(batch[2:])["warp_flicker"]
    assert abs(alone[0] - scores[2]) < 1e-5  # batching does not change a video's score
    with pytest.raises(ScoreError, match="needs at least 2 frames"):
        ev.score([_video("still", _moving_square(1, 64, 64, 0))])


def test_warp_flicker_card_and_options() -> None:
    ev = WarpFlicker()
    assert not ev.uses_random_weights and ev.weight_provenance() == []
    spec = ev.frame_spec()
    got = (spec.sampling, spec.resize, spec.size, spec.min_side, spec.multiple_of, spec.interpolation)
    assert got == ("all", "max_side", 512, 128, 8, "bilinear")
    assert WarpFlicker(max_side="256").frame_spec().size == 256
    with pytest.raises(VbenchPrefError):
        WarpFlicker(max_side=100)
    with pytest.raises(VbenchPrefError):
        WarpFlicker(model="raft_huge")


def test_dynamic_degree_params() -> None:
    assert vbench_params(320, 512, 16) == (7.5, 4)
    assert vbench_params(256, 256, 2) == (6.0, 0)  # round(0.5) == 0, as in VBench
    assert vbench_params(256, 256, 6)[1] == 2  # round(1.5) == 2
    assert vbench_params(256, 256, 10)[1] == 2  # round(2.5) == 2 (half to even)
    assert vbench_params(128, 512, 33) == (3.0, 8)


def test_dynamic_degree_top_fraction_mean() -> None:
    f = torch.zeros(2, 2, 20, 20)  # 400 pixels -> top int(400*0.05) = 20
    f[0, 0].view(-1)[:20] = 3.0
    f[0, 1].view(-1)[:20] = 4.0  # 20 pixels of magnitude 5
    f[0, 0].view(-1)[20:60] = 1.0  # smaller motion outside the top 5%
    f[1, 0].view(-1)[:10] = -5.0
    f[1, 1].view(-1)[10:25] = 1.0  # 10 x 5 and 15 x 1 -> top 20 = (50 + 10) / 20
    got = top_fraction_mean(f)
    assert torch.allclose(got, torch.tensor([5.0, 3.0]))


def test_dynamic_degree_decision_rule() -> None:
    assert is_dynamic([7.6, 1.0, 8.0, 9.0, 2.0, 10.0], 7.5, 4)
    assert not is_dynamic([7.5, 8.0, 9.0, 10.0], 7.5, 4)  # strictly greater than thres
    assert is_dynamic([0.0], 6.0, 0)  # VBench's loop: count_num 0 is met after the first pair
    assert not is_dynamic([], 6.0, 0)
    assert stride_indices(30, 30.0) == list(range(0, 30, 4))
    assert stride_indices(10, 24.0) == [0, 3, 6, 9]
    assert stride_indices(5, 3.0) == [0, 1, 2, 3, 4]


def test_dynamic_degree_end_to_end_random_weights() -> None:
    torch.manual_seed(0)
    ev = DynamicDegree(model="raft_small", weights="random", iters=2, sampling="stride")
    assert ev.uses_random_weights and ev.frame_spec().sampling == "all"
    assert DynamicDegree().frame_spec().sampling == "all"  # VBench's stride rule by default
    assert DynamicDegree.frames == DynamicDegree().frame_spec()
    fps_spec = DynamicDegree(sampling="fps").frame_spec()
    assert fps_spec.sampling == "fps" and fps_spec.fps == 8.0
    ev.load("cpu")
    batch = [_video("a", _moving_square(5, 64, 64, 3), fps=16.0), _video("b", _moving_square(3, 64, 64, 0))]
    values = ev.score(batch)["dynamic_degree"]
    assert values.shape == (2,) and set(values.tolist()) <= {0.0, 1.0}
    with pytest.raises(ScoreError):
        ev.score([_video("one", _moving_square(2, 64, 64, 1), fps=24.0)])  # stride 3 keeps 1 frame


# ----------------------------------------------------------------------------- evaluator wiring with exact flow
class _OracleTranslationFlow(torch.nn.Module):
    """Stands in for RAFT on globally translating videos: the best integer shift from a to b, per pair."""

    def __init__(self, radius: int = 6) -> None:
        super().__init__()
        self.radius = radius

    def forward(self, a: torch.Tensor, b: torch.Tensor, num_flow_updates: int = 12) -> list[torch.Tensor]:
        r = self.radius
        out = torch.zeros(a.shape[0], 2, *a.shape[-2:])
        for i in range(a.shape[0]):
            best, arg = float("inf"), (0, 0)
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    # b(x) = a(x - d): compare away from the wrapped border band.
                    diff = (torch.roll(a[i], (dy, dx), dims=(1, 2)) - b[i])[:, r:-r, r:-r].abs().mean().item()
                    if diff < best:
                        best, arg = diff, (dx, dy)
            out[i, 0], out[i, 1] = arg
        return [out]


def _translating(t: int, size: int, step: tuple[int, int], seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = torch.from_numpy(rng.random((3, size, size))).float()
    base = torch.nn.functional.avg_pool2d(base[None], 3, 1, 1)[0]  # some smoothness, still textured
    frames = [torch.roll(base, (k * step[1], k * step[0]), dims=(1, 2)) for k in range(t)]
    return (torch.stack(frames).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)


def test_warp_flicker_with_exact_flow_is_near_one_and_sees_flicker() -> None:
    ev = WarpFlicker(pair_batch=3)
    ev._model = _OracleTranslationFlow()  # exact flow: tests the pair/direction wiring, not RAFT
    smooth = _translating(5, 128, (2, -1))
    flicker = smooth.astype(np.int16)
    flicker[1::2] += 40  # brightness flicker on every other frame
    flicker = np.clip(flicker, 0, 255).astype(np.uint8)
    scores = ev.score([_video("smooth", smooth), _video("flicker", flicker)])["warp_flicker"]
    assert scores[0] > 0.9999  # uint8 rounding only
    assert scores[1] < scores[0] - 0.01


def test_dynamic_degree_with_exact_flow() -> None:
    ev = DynamicDegree()
    ev._model = _OracleTranslationFlow()
    moving = _translating(8, 128, (5, 0))  # 5 px per frame > thres 6 * 128 / 256 = 3
    slow = _translating(8, 128, (2, 0))  # 2 px per frame < 3
    still = _translating(8, 128, (0, 0))
    values = ev.score([_video("moving", moving), _video("slow", slow), _video("still", still)])["dynamic_degree"]
    assert values.tolist() == [1.0, 0.0, 0.0]
