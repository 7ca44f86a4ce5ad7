"""``fvd`` and ``fvd_videomae``: the I3D and VideoMAE-v2 feature networks wrapped as set-level evaluators.

A random I3D in the published on-disk layout is loaded through the evaluator's weights option; the run's FVD
equals the one computed here from a fresh decode, the networks' own preprocessing and forward, video by
video, and scipy's Fréchet distance. Short videos fail alone, with the option that would take them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vbench_pref import registry
from vbench_pref import video as video_io
from vbench_pref.distribution import i3d, videomae
from vbench_pref.distribution.reference_stats import make_reference_stats
from vbench_pref.scoring import ScoreOptions, run_scoring

sys.path.insert(0, str(Path(__file__).parent))
from conftest import make_videos  # noqa: E402


@pytest.fixture(scope="module")
def i3d_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "my_i3d.pt"  # a user's own file: loaded, recorded unverified
    i3d.write_random_i3d(path, seed=2)
    return path


@pytest.fixture
def folders(tmp_path: Path, own_caches: None) -> tuple[Path, Path]:
    real, generated = tmp_path / "real", tmp_path / "generated"
    make_videos(real, 4, frames=16, size=40, seed=100)
    make_videos(generated, 3, frames=16, size=48, seed=0)
    make_videos(tmp_path / "short", 1, frames=8, size=40, seed=7)
    (tmp_path / "short" / "video_0.mp4").rename(generated / "short.mp4")
    return real, generated


def direct_features(folder: Path, network: torch.nn.Module, preprocess) -> np.ndarray:
    rows = []
    for path in sorted(folder.glob("*.mp4")):
        if path.name == "short.mp4":
            continue
        frames = video_io.decode_video(path).frame_view(video_io.FrameSpec()).frames()
        with torch.inference_mode():
            rows.append(network(preprocess(frames[None, :16])).double().numpy())
    return np.concatenate(rows)


def scipy_frechet(x: np.ndarray, y: np.ndarray) -> float:
    from scipy import linalg

    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    return float(((x.mean(0) - y.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real))


@pytest.mark.filterwarnings("ignore:Matrix is singular")
def test_fvd_of_a_run_equals_an_independent_computation(folders, i3d_file, tmp_path) -> None:
    pytest.importorskip("scipy")
    real, generated = folders
    evaluators = ["fvd", "fvd_videomae"]
    options = {"fvd": {"weights": str(i3d_file)}, "fvd_videomae": {"weights": "random"}}
    make_reference_stats("real", ScoreOptions(videos=real, out=Path("."), evaluators=evaluators, device="cpu",
                                              evaluator_options=options), False)
    result = run_scoring(ScoreOptions(videos=generated, out=tmp_path / "run", evaluators=evaluators, device="cpu",
                                      reference="real", evaluator_options=options, batch_size=2))
    scores = json.loads((result.run_dir / "summary.json").read_text())["scores"]
    errors = (result.run_dir / "errors.csv").read_text()
    assert "short.mp4" in errors and "fvd.clip_frames" in errors  # the 8-frame video fails alone

    network = i3d.load_i3d(i3d_file)
    x = direct_features(generated, network, i3d.preprocess_i3d)
    y = direct_features(real, network, i3d.preprocess_i3d)
    assert x.shape == (3, i3d.I3D_FEATURES) and scores["fvd"]["n"] == 3 and scores["fvd"]["n_reference"] == 4
    assert scores["fvd"]["mean"] == pytest.approx(scipy_frechet(x, y), rel=1e-4)
    assert scores["fvd"]["random_weights"] is False and "2048" in scores["fvd"]["warning"]

    small = videomae.random_videomae("tiny", seed=0)
    xv = direct_features(generated, small, videomae.preprocess_videomae)
    yv = direct_features(real, small, videomae.preprocess_videomae)
    assert scores["fvd_videomae"]["mean"] == pytest.approx(scipy_frechet(xv, yv), rel=1e-4, abs=1e-9)
    assert scores["fvd_videomae"]["random_weights"] is True


def test_cards_weights_and_one_line_refusals(own_caches, monkeypatch) -> None:
    from vbench_pref.errors import VbenchPrefError

    fvd, mae = registry.get("fvd"), registry.get("fvd_videomae")
    assert fvd.card()["set_level"] and fvd.feature_dim == 400 and fvd.sample_size == 2048
    assert mae.feature_dim == 1408 and mae.card()["scores"][0]["higher_is_better"] is False
    for cls, entry in ((fvd, "i3d-kinetics400-weights"), (mae, "videomae-v2-g-ssv2-weights")):
        monkeypatch.delenv(cls.weights[0].env_var, raising=False)
        message = cls().missing_weights()
        assert message is not None and f"vbench-pref weights pull {entry}" in message and "\n" not in message
    with pytest.raises(VbenchPrefError, match="clip_frames must be at least 1"):
        fvd(clip_frames=0)
    with pytest.raises(VbenchPrefError, match="resize must be one of"):
        fvd(resize="bicubic")
    # what changes the features changes the identity a reference set is checked against
    assert fvd(resize="short_side_crop").identity_before_load() != fvd().identity_before_load()
    assert fvd(clip_frames=8).identity_before_load() != fvd().identity_before_load()
