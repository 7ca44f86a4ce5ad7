"""Video I/O: sampling, resizing, fps round trips, backend agreement, odd sources and every decode error."""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vbench_pref import synthetic
from vbench_pref.errors import VideoDecodeError
from vbench_pref.video import (
    DECODES,
    BackendUnavailable,
    DecodedVideo,
    FrameSpec,
    available_backends,
    decode_video,
    exact_fps,
    write_video,
)

try:
    import decord  # noqa: F401

    HAVE_DECORD = True
except ImportError:  # pragma: no cover - depends on the platform
    HAVE_DECORD = False

needs_decord = pytest.mark.skipif(not HAVE_DECORD, reason="decord is not installed")

ALL = FrameSpec()


def _indexed_frames(T: int, H: int = 32, W: int = 40, seed: int = 0) -> np.ndarray:
    """Textured frames that differ from each other everywhere, so a frame's identity is unambiguous.

    Not 48 wide: decord 0.6 fails on a few widths (16, 24, 48, 72 seen) with a buffer size check.
    """
    return synthetic.smooth_motion(T, H, W, seed, velocity=(1.0, 2.0))


def _write_pyav(path: Path, frames: np.ndarray, pts: list[int], time_base: Fraction, codec: str,
                pix_fmt: str, in_format: str, options: dict[str, str] | None = None) -> None:
    """A video with chosen pts (variable frame rate) or a codec write_video does not offer."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=1 / time_base if time_base.denominator <= 100 else 25)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = pix_fmt
        stream.codec_context.time_base = time_base
        stream.time_base = time_base
        if options:
            stream.options = options
        for frame_array, p in zip(frames, pts):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_array), format=in_format)
            frame.pts = p
            frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _assert_one_line(exc: VideoDecodeError, path: Path, *words: str) -> None:
    msg = str(exc)
    assert "\n" not in msg and "\r" not in msg, msg
    assert str(path) in msg, msg
    for word in words:
        assert word in msg, msg


# ------------------------------------------------------------------------------------------- sampling


def test_sampling_all_and_count_pick_exact_frames(tmp_path: Path) -> None:
    src = _indexed_frames(10)
    path = write_video(tmp_path / "v.mp4", src, 16, lossless=True)
    specs = [ALL, FrameSpec("count", count=4), FrameSpec("count", count=3), FrameSpec("count", count=50)]
    video = decode_video(path, specs)
    assert video.n_frames == 10 and video.backend == "pyav"
    assert (video.width, video.height) == (40, 32)
    np.testing.assert_allclose(video.timestamps, np.arange(10) / 16, atol=1e-12)

    frames, stamps = video.view(ALL)
    assert frames.dtype == torch.uint8 and tuple(frames.shape) == (10, 32, 40, 3)
    assert np.array_equal(frames.numpy(), src)
    np.testing.assert_allclose(stamps, np.arange(10) / 16, atol=1e-12)

    for spec, expected in [(specs[1], [0, 3, 6, 9]), (specs[2], [0, 4, 9]), (specs[3], list(range(10)))]:
        frames, stamps = video.view(spec)
        assert list(video.frame_indices(spec)) == expected
        assert np.array_equal(frames.numpy(), src[expected])
        np.testing.assert_allclose(stamps, np.array(expected) / 16, atol=1e-12)


def _expected_fps_indices(pts_ms: list[int], fps: Fraction) -> list[int]:
    """Independent reference: exact rational sample times, linear scan for the frame on screen."""
    times = [Fraction(p, 1000) for p in pts_ms]
    chosen, k = [], 0
    while times[0] + k / fps <= times[-1]:
        t = times[0] + k / fps
        chosen.append(max(i for i, ts in enumerate(times) if ts <= t))
        k += 1
    return chosen


PTS_MS = [0, 40, 90, 100, 250, 260, 400, 410, 420, 700, 701, 1000, 1250]


@pytest.mark.parametrize("fps", [Fraction(10), Fraction(4), Fraction(25), Fraction(3, 2)])
def test_fps_sampling_follows_real_timestamps_of_vfr_video(tmp_path: Path, fps: Fraction) -> None:
    src = _indexed_frames(len(PTS_MS))
    path = tmp_path / "vfr.mp4"
    _write_pyav(path, src, PTS_MS, Fraction(1, 1000), "libx264rgb", "rgb24", "rgb24", {"qp": "0"})
    spec = FrameSpec("fps", fps=float(fps))
    video = decode_video(path, [spec, ALL])
    np.testing.assert_allclose(video.timestamps, np.array(PTS_MS) / 1000, atol=1e-9)
    assert np.array_equal(video.view(ALL)[0].numpy(), src)  # frame identities are known

    expected = _expected_fps_indices(PTS_MS, fps)
    assert list(video.frame_indices(spec)) == expected
    frames, stamps = video.view(spec)
    assert np.array_equal(frames.numpy(), src[expected])
    np.testing.assert_allclose(stamps, np.array(PTS_MS)[expected] / 1000, atol=1e-9)
    # a variable-rate video's fps is its average, not the first interval's
    assert 1.0 < video.fps < 25.0


def test_fps_sampling_on_constant_rate_video(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.mp4", _indexed_frames(16), 8, lossless=True)
    video = decode_video(path, [FrameSpec("fps", fps=2), FrameSpec("fps", fps=16)])
    assert list(video.frame_indices(FrameSpec("fps", fps=2))) == [0, 4, 8, 12]
    # sampling faster than the video repeats the frame on screen
    assert list(video.frame_indices(FrameSpec("fps", fps=16))) == [i // 2 for i in range(31)]


def test_fps_sampling_matches_independent_reference_on_random_vfr_timestamps() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        pts = np.cumsum(np.r_[0, rng.integers(1, 200, size=rng.integers(0, 30))]).tolist()
        fps = Fraction(int(rng.integers(1, 60)), int(rng.integers(1, 4)))
        spec = FrameSpec("fps", fps=float(fps))
        got = spec.frame_indices(np.array(pts, dtype=np.float64) / 1000)
        assert list(got) == _expected_fps_indices(pts, fps)


# --------------------------------------------------------------------------------------------- resize


@pytest.mark.parametrize(
    ("spec", "hw", "expected"),
    [
        (FrameSpec(resize="short_side_crop", size=24), (40, 64), (24, 24)),
        (FrameSpec(resize="short_side_crop", size=24), (64, 40), (24, 24)),
        (FrameSpec(resize="max_side", size=32), (40, 64), (20, 32)),
        (FrameSpec(resize="max_side", size=32), (30, 20), (30, 20)),  # never enlarged
        (FrameSpec(resize="max_side", size=32, multiple_of=8), (40, 64), (24, 32)),  # 20 -> 24
        (FrameSpec(resize="max_side", size=32, multiple_of=8), (27, 13), (24, 16)),
        (FrameSpec(resize="max_side", size=128, min_side=32), (20, 30), (32, 48)),
        (FrameSpec(resize="max_side", size=64, min_side=32), (20, 100), (32, 160)),  # min_side wins
        (FrameSpec(resize="max_side", size=None, multiple_of=8), (33, 47), (32, 48)),
        (FrameSpec(resize="max_side", size=16, multiple_of=32), (40, 64), (32, 32)),  # at least multiple_of
    ],
)
def test_resize_output_sizes(spec: FrameSpec, hw: tuple[int, int], expected: tuple[int, int]) -> None:
    assert spec.output_size(*hw) == expected


def test_resize_view_sizes_on_real_video(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.mp4", _indexed_frames(5, 40, 64), 8)
    specs = [
        FrameSpec(resize="short_side_crop", size=24),
        FrameSpec("count", count=2, resize="max_side", size=32, multiple_of=8, interpolation="bilinear"),
        FrameSpec(resize="max_side", size=128),
    ]
    video = decode_video(path, specs)
    assert tuple(video.view(specs[0])[0].shape) == (5, 24, 24, 3)
    assert tuple(video.view(specs[1])[0].shape) == (2, 24, 32, 3)
    native = decode_video(path)
    # no resize needed -> pixels untouched, not resampled
    assert torch.equal(video.view(specs[2])[0], native.view(ALL)[0])


@pytest.mark.parametrize(
    ("interpolation", "antialias"), [("bicubic", True), ("bilinear", True), ("bicubic", False)]
)
@pytest.mark.parametrize("hw", [(40, 64), (64, 44), (33, 47)])
def test_short_side_crop_equals_torchvision(tmp_path: Path, interpolation: str, antialias: bool,
                                            hw: tuple[int, int]) -> None:
    tv = pytest.importorskip("torchvision.transforms")
    src = synthetic.noise(3, *hw, seed=1)
    path = write_video(tmp_path / "v.mp4", src, 8, lossless=True)
    spec = FrameSpec(resize="short_side_crop", size=24, interpolation=interpolation, antialias=antialias)
    video = decode_video(path, [spec])
    got = video.view(spec)[0]

    mode = tv.InterpolationMode.BICUBIC if interpolation == "bicubic" else tv.InterpolationMode.BILINEAR
    transform = tv.Compose([tv.Resize(24, interpolation=mode, antialias=antialias), tv.CenterCrop(24)])
    chw = torch.from_numpy(src).permute(0, 3, 1, 2)
    ref = transform(chw.float()).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    assert torch.equal(got, ref)
    # torchvision on the uint8 tensor itself (its own uint8 kernels) agrees to one level
    ref8 = transform(chw).permute(0, 2, 3, 1)
    assert (got.int() - ref8.int()).abs().max() <= 1


# ------------------------------------------------------------------------------------- fps metadata


@pytest.mark.parametrize("fps", [16, 24, 29.97, 8, 12.5, Fraction(30000, 1001)])
def test_fps_metadata_round_trip(tmp_path: Path, fps: float) -> None:
    path = write_video(tmp_path / "v.mp4", _indexed_frames(9), fps)
    video = decode_video(path)
    assert abs(video.fps - float(fps)) <= 1e-6 * float(fps)
    with av.open(str(path)) as container:
        assert container.streams.video[0].average_rate == exact_fps(fps)
    np.testing.assert_allclose(np.diff(video.timestamps), 1 / float(fps), rtol=1e-6)


def test_exact_fps_fractions() -> None:
    assert exact_fps(16) == Fraction(16)
    assert exact_fps(29.97) == Fraction(2997, 100)
    assert exact_fps(30000 / 1001) == Fraction(30000, 1001)
    assert exact_fps(Fraction(24000, 1001)) == Fraction(24000, 1001)
    with pytest.raises(ValueError):
        exact_fps(0)


# ---------------------------------------------------------------------------------- backend agreement


@needs_decord
@pytest.mark.parametrize(
    ("hw", "lossless"), [((48, 64), False), ((33, 47), False), ((32, 40), True), ((35, 65), True)]
)
def test_pyav_and_decord_give_identical_frames(tmp_path: Path, hw: tuple[int, int], lossless: bool) -> None:
    path = write_video(tmp_path / "v.mp4", synthetic.smooth_motion(12, *hw, seed=2), 24, lossless=lossless)
    specs = [ALL, FrameSpec("count", count=5), FrameSpec("fps", fps=7, resize="short_side_crop", size=16)]
    a = decode_video(path, specs, backend="pyav")
    b = decode_video(path, specs, backend="decord")
    assert b.backend == "decord"
    assert (a.n_frames, a.width, a.height, a.fps) == (b.n_frames, b.width, b.height, b.fps)
    np.testing.assert_allclose(a.timestamps, b.timestamps, atol=1e-5)
    for spec in specs:
        assert list(a.frame_indices(spec)) == list(b.frame_indices(spec))
        assert torch.equal(a.view(spec)[0], b.view(spec)[0]), spec.describe()


@needs_decord
def test_pyav_and_decord_agree_on_vfr(tmp_path: Path) -> None:
    path = tmp_path / "vfr.mp4"
    _write_pyav(path, _indexed_frames(len(PTS_MS)), PTS_MS, Fraction(1, 1000), "libx264", "yuv420p", "rgb24")
    spec = FrameSpec("fps", fps=10)
    a = decode_video(path, [spec, ALL], backend="pyav")
    b = decode_video(path, [spec, ALL], backend="decord")
    np.testing.assert_allclose(b.timestamps, np.array(PTS_MS) / 1000, atol=1e-5)
    expected = _expected_fps_indices(PTS_MS, Fraction(10))
    assert list(a.frame_indices(spec)) == list(b.frame_indices(spec)) == expected
    assert torch.equal(a.view(ALL)[0], b.view(ALL)[0])


# ----------------------------------------------------------------------------------- unusual sources


def test_odd_size_keeps_content_and_size(tmp_path: Path) -> None:
    src = synthetic.smooth_motion(6, 33, 47, seed=4)
    path = write_video(tmp_path / "odd.mp4", src, 8)
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv444p"
    video = decode_video(path)
    frames = video.view(ALL)[0].numpy()
    assert frames.shape == (6, 33, 47, 3) and (video.width, video.height) == (47, 33)
    assert np.abs(frames.astype(int) - src).mean() < 3  # lossy, but the same picture


def test_lossy_even_size_is_yuv420p_and_close(tmp_path: Path) -> None:
    src = synthetic.smooth_motion(6, 32, 48, seed=4)
    path = write_video(tmp_path / "even.mp4", torch.from_numpy(src), 8)  # torch input accepted
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"
    # ~3.4 of this is 4:2:0 chroma subsampling of a texture with fine colour detail
    assert np.abs(decode_video(path).view(ALL)[0].numpy().astype(int) - src).mean() < 6


@pytest.mark.parametrize("hw", [(32, 48), (33, 47), (2, 2)])
def test_lossless_round_trip_is_bit_exact(tmp_path: Path, hw: tuple[int, int]) -> None:
    src = synthetic.noise(5, *hw, seed=5)  # incompressible: any loss would show
    path = write_video(tmp_path / "ll.mp4", src, 16, lossless=True)
    assert np.array_equal(decode_video(path).view(ALL)[0].numpy(), src)


def test_grey_source_gives_three_identical_channels(tmp_path: Path) -> None:
    grey = synthetic.noise(4, 31, 45, seed=6)[..., 0]
    path = tmp_path / "grey.mkv"
    _write_pyav(path, grey, list(range(4)), Fraction(1, 8), "ffv1", "gray", "gray")
    frames = decode_video(path).view(ALL)[0].numpy()
    assert frames.shape == (4, 31, 45, 3)
    for c in range(3):
        assert np.array_equal(frames[..., c], grey)


@pytest.mark.parametrize(("codec", "pix_fmt"), [("png", "rgba"), ("qtrle", "argb")])
def test_alpha_is_dropped_not_composited(tmp_path: Path, codec: str, pix_fmt: str) -> None:
    rgba = synthetic.noise(3, 30, 44, seed=7)
    alpha = np.random.default_rng(8).integers(0, 256, size=(3, 30, 44, 1), dtype=np.uint8)
    rgba = np.concatenate([rgba, alpha], axis=-1)
    path = tmp_path / f"alpha_{codec}.mov"
    _write_pyav(path, rgba, list(range(3)), Fraction(1, 8), codec, pix_fmt, "rgba")
    frames = decode_video(path).view(ALL)[0].numpy()
    assert np.array_equal(frames, rgba[..., :3])


@pytest.mark.parametrize("backend", ["pyav", pytest.param("decord", marks=needs_decord)])
def test_one_frame_video(tmp_path: Path, backend: str) -> None:
    src = _indexed_frames(1)
    path = write_video(tmp_path / "one.mp4", src, 16, lossless=True)
    specs = [ALL, FrameSpec("count", count=4), FrameSpec("fps", fps=8)]
    video = decode_video(path, specs, backend=backend)
    assert video.n_frames == 1 and video.fps == pytest.approx(16)
    for spec in specs:
        frames, stamps = video.view(spec)
        assert np.array_equal(frames.numpy(), src) and len(stamps) == 1


# ------------------------------------------------------------------------------------------- errors


def _truncated(tmp_path: Path, faststart: bool) -> Path:
    good = write_video(tmp_path / f"good_{faststart}.mp4", synthetic.noise(49, 64, 64, seed=9), 16,
                       faststart=faststart)
    data = good.read_bytes()
    cut = tmp_path / f"cut_{faststart}.mp4"
    cut.write_bytes(data[: len(data) // 2])
    return cut


@pytest.mark.parametrize("backend", ["pyav", pytest.param("decord", marks=needs_decord)])
def test_decode_errors_are_one_line_and_name_the_file(tmp_path: Path, backend: str) -> None:
    missing = tmp_path / "missing.mp4"
    with pytest.raises(VideoDecodeError) as info:
        decode_video(missing, backend=backend)
    _assert_one_line(info.value, missing, "not found")

    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoDecodeError) as info:
        decode_video(empty, backend=backend)
    _assert_one_line(info.value, empty, "empty file (0 bytes)")

    text = tmp_path / "text.mp4"
    text.write_text("this is not a video\n" * 20)
    with pytest.raises(VideoDecodeError) as info:
        decode_video(text, backend=backend)
    _assert_one_line(info.value, text)

    for faststart in (False, True):
        cut = _truncated(tmp_path, faststart)
        with pytest.raises(VideoDecodeError) as info:
            decode_video(cut, backend=backend)
        _assert_one_line(info.value, cut)


def test_truncated_mp4_messages_say_truncated(tmp_path: Path) -> None:
    cut = _truncated(tmp_path, faststart=True)  # index up front: demuxing stops early
    with pytest.raises(VideoDecodeError) as info:
        decode_video(cut)
    _assert_one_line(info.value, cut, "truncated or corrupt: decoded", "of 49 frames")
    cut = _truncated(tmp_path, faststart=False)  # index at the end: it is what got cut off
    with pytest.raises(VideoDecodeError) as info:
        decode_video(cut)
    _assert_one_line(info.value, cut, "truncated or corrupt")


def test_damaged_frames_mid_stream_fail_the_video(tmp_path: Path) -> None:
    good = write_video(tmp_path / "good.mp4", synthetic.noise(49, 64, 64, seed=9), 16)
    data = bytearray(good.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 2000] = b"\xff" * 2000  # same size, garbage inside the frame data
    bad = tmp_path / "damaged.mp4"
    bad.write_bytes(bytes(data))
    with pytest.raises(VideoDecodeError) as info:
        decode_video(bad)
    _assert_one_line(info.value, bad, "truncated or corrupt", "damaged")


@pytest.mark.parametrize("backend", ["pyav", pytest.param("decord", marks=needs_decord)])
def test_audio_only_file_has_no_video_stream(tmp_path: Path, backend: str) -> None:
    path = tmp_path / "audio.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), dtype=np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        frame.pts = 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(VideoDecodeError) as info:
        decode_video(path, backend=backend)
    _assert_one_line(info.value, path, "no video stream")


def test_unknown_backend_and_bad_specs_are_programming_errors(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.mp4", _indexed_frames(2), 8)
    with pytest.raises(ValueError):
        decode_video(path, backend="opencv")
    with pytest.raises(ValueError):
        FrameSpec("count")
    with pytest.raises(ValueError):
        FrameSpec("fps", fps=0)
    with pytest.raises(ValueError):
        FrameSpec(resize="short_side_crop")


def test_missing_decord_is_a_clear_fatal_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_video(tmp_path / "v.mp4", _indexed_frames(2), 8)
    monkeypatch.setitem(sys.modules, "decord", None)  # import decord -> ImportError
    assert available_backends() == ("pyav",)
    with pytest.raises(BackendUnavailable, match="pip install"):
        decode_video(path, backend="decord")
    assert decode_video(path).n_frames == 2


# -------------------------------------------------------------------------------- decode bookkeeping


@pytest.mark.parametrize("backend", ["pyav", pytest.param("decord", marks=needs_decord)])
def test_decodes_counts_one_per_call(tmp_path: Path, backend: str) -> None:
    path = write_video(tmp_path / "v.mp4", _indexed_frames(4), 8)
    key = str(path)
    before = DECODES[key]
    video = decode_video(path, [ALL, FrameSpec("count", count=2), FrameSpec(resize="max_side", size=16)],
                         backend=backend)
    assert DECODES[key] == before + 1
    for _ in range(3):  # views never decode again
        video.view(ALL)
        video.view(FrameSpec(resize="max_side", size=16))
    assert DECODES[key] == before + 1
    decode_video(path, backend=backend)
    assert DECODES[key] == before + 2
    missing = tmp_path / "missing.mp4"
    with pytest.raises(VideoDecodeError):
        decode_video(missing, backend=backend)
    assert DECODES[str(missing)] == 1  # a failed decode is still one decode


def test_view_requires_a_decoded_spec_and_is_deterministic(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.mp4", _indexed_frames(6), 8)
    spec = FrameSpec("count", count=3, resize="short_side_crop", size=16)
    video = decode_video(path, [spec])
    assert isinstance(video, DecodedVideo) and video.specs == (spec,)
    with pytest.raises(ValueError, match="not kept"):
        video.view(ALL)
    with pytest.raises(ValueError):
        video.view(FrameSpec("count", count=4, resize="short_side_crop", size=16))
    first, stamps = video.view(spec)
    first[:] = 0  # a view is the caller's to modify
    same = FrameSpec("count", count=3, resize="short_side_crop", size=16)  # equal, not the same object
    again, stamps2 = video.view(same)
    assert not torch.equal(first, again) and again.float().mean() > 0
    assert torch.equal(again, video.view(spec)[0]) and np.array_equal(stamps, stamps2)


def test_only_needed_frames_are_kept(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.mp4", _indexed_frames(20), 8)
    video = decode_video(path, [FrameSpec("count", count=3), FrameSpec("count", count=2)])
    assert video.n_frames == 20 and len(video.timestamps) == 20
    assert sorted(video._frames) == [0, 10, 19]  # union of [0, 10, 19] and [0, 19]
    assert video.nbytes == 3 * 32 * 40 * 3


def test_describe() -> None:
    assert ALL.describe() == "all frames, native resolution"
    spec = FrameSpec("count", count=16, resize="short_side_crop", size=224)
    assert spec.describe() == "16 frames evenly spaced, short side 224 + center crop (bicubic, antialias)"
    assert FrameSpec("fps", fps=2.5).describe() == "frames at 2.5 fps, native resolution"
    spec = FrameSpec(resize="max_side", size=512, min_side=128, multiple_of=8, interpolation="bilinear")
    assert spec.describe() == "all frames, max side 512, min side 128, multiple of 8 (bilinear, antialias)"
    assert hash(spec) == hash(FrameSpec(resize="max_side", size=512, min_side=128, multiple_of=8,
                                        interpolation="bilinear"))


# -------------------------------------------------------------------------------------------- write


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "v.mp4"
    write_video(target, _indexed_frames(3), 8)
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]  # no temporary left behind
    original = target.read_bytes()

    calls = {"n": 0}
    real = av.VideoFrame.from_ndarray

    def dying(*args: object, **kwargs: object) -> av.VideoFrame:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the process being stopped mid-write
        return real(*args, **kwargs)

    monkeypatch.setattr(av.VideoFrame, "from_ndarray", dying)
    with pytest.raises(KeyboardInterrupt):
        write_video(target, _indexed_frames(6, seed=1), 8)
    calls["n"] = 0
    with pytest.raises(KeyboardInterrupt):
        write_video(tmp_path / "new.mp4", _indexed_frames(6, seed=1), 8)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]
    assert target.read_bytes() == original


def test_write_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_video(tmp_path / "v.mp4", np.zeros((2, 8, 8, 3), dtype=np.float32), 8)
    with pytest.raises(ValueError):
        write_video(tmp_path / "v.mp4", np.zeros((2, 8, 8), dtype=np.uint8), 8)
    with pytest.raises(ValueError):
        write_video(tmp_path / "v.webm", np.zeros((2, 8, 8, 3), dtype=np.uint8), 8)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------- synthetic


def test_synthetic_is_deterministic_and_translation_is_exact() -> None:
    assert np.array_equal(synthetic.smooth_motion(4, 16, 20, 3), synthetic.smooth_motion(4, 16, 20, 3))
    assert not np.array_equal(synthetic.noise(2, 8, 8, 1), synthetic.noise(2, 8, 8, 2))
    for dx, dy in [(3, -2), (0, 4), (-5, 0)]:
        pair = synthetic.translation_pair(40, 50, dx, dy, seed=1)
        assert pair.shape == (2, 40, 50, 3) and pair.dtype == np.uint8
        first, second = pair.astype(int)
        ys, xs = np.mgrid[0:40, 0:50]
        inside = (ys - dy >= 0) & (ys - dy < 40) & (xs - dx >= 0) & (xs - dx < 50)
        assert np.array_equal(second[inside], first[(ys - dy)[inside], (xs - dx)[inside]])
        assert first.std() > 20  # textured, so flow is defined
    flicker = synthetic.flickering(4, 16, 16, 0, amplitude=0.3).reshape(4, -1).mean(axis=1)
    assert flicker[0] > flicker[1] < flicker[2]


def test_make_example_set(tmp_path: Path) -> None:
    paths = synthetic.make_example_set(tmp_path / "ex", n_per_kind=2, T=8, H=32, W=32, fps=8, seed=0)
    assert [p.name for p in paths] == sorted(p.name for p in paths) and len(paths) == 4
    prompts = (tmp_path / "ex" / "prompts.txt").read_text(encoding="utf-8").splitlines()
    assert len(prompts) == 4 and all(prompts)
    assert "flicker" in prompts[0]  # flicker_000.mp4 sorts first
    video = decode_video(paths[0])
    assert video.n_frames == 8 and video.fps == 8.0 and (video.width, video.height) == (32, 32)
