"""``fid`` and ``kid``: the FID Inception network wrapped as set-level evaluators.

A random network in the published on-disk layout is loaded through the evaluators' weights option; the
distances of a run equal the ones computed here from a fresh decode, the network's own feature function and
an independent Fréchet distance (scipy) and KID (a direct U-statistic); both evaluators share one network.
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
from vbench_pref.distribution import inception
from vbench_pref.distribution.reference_stats import make_reference_stats
from vbench_pref.evaluator import SharedModels
from vbench_pref.scoring import ScoreOptions, run_scoring

sys.path.insert(0, str(Path(__file__).parent))
from conftest import make_videos  # noqa: E402

STRIDE = 3  # frames 0 and 3 of each 5-frame video: 2 frames per video keep the network's CPU time small


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random FID Inception saved as the published file is (a flat state dict), under a user's file name."""
    path = tmp_path_factory.mktemp("weights") / "my_inception.pth"
    inception.write_random_checkpoint(path, seed=1)
    return path


@pytest.fixture
def folders(tmp_path: Path, own_caches: None) -> tuple[Path, Path]:
    real, generated = tmp_path / "real", tmp_path / "generated"
    make_videos(real, 4, frames=5, size=40, seed=100)
    make_videos(generated, 3, frames=5, size=40, seed=0)
    return real, generated


def options(checkpoint: Path, evaluators: list[str]) -> dict[str, dict[str, object]]:
    return {name: {"weights": str(checkpoint), "stride": STRIDE} for name in evaluators}


def direct_features(folder: Path, network: inception.FIDInceptionV3) -> np.ndarray:
    """Every video's chosen frames through the network, one video at a time, from a fresh decode."""
    rows = []
    for path in sorted(folder.glob("*.mp4")):
        frames = video_io.decode_video(path).frame_view(video_io.FrameSpec()).frames().numpy()
        chosen = frames[inception.select_frames(len(frames), STRIDE, None)]
        rows.append(inception.frame_features(network, chosen, convention="clean").double().numpy())
    return np.concatenate(rows)


def scipy_frechet(x: np.ndarray, y: np.ndarray) -> float:
    from scipy import linalg

    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * root))


def unbiased_mmd(x: np.ndarray, y: np.ndarray) -> float:
    """MMD^2 with k(a, b) = (a.b / d + 1)^3, off-diagonal means."""
    d = x.shape[1]
    k = lambda a, b: (a @ b.T / d + 1.0) ** 3  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def clean_fid_kid(x: np.ndarray, y: np.ndarray, subsets: int = 100) -> float:
    """clean-fid's kernel_distance: subsets of min(len) rows, reference drawn first, RandomState(0)."""
    rng = np.random.RandomState(0)
    m = min(len(x), len(y))
    values = []
    for _ in range(subsets):
        ref = y[rng.choice(len(y), m, replace=False)]
        gen = x[rng.choice(len(x), m, replace=False)]
        values.append(unbiased_mmd(gen, ref))
    return float(np.mean(values))


@pytest.mark.filterwarnings("ignore:Matrix is singular")
def test_distances_of_a_run_equal_an_independent_computation(folders, checkpoint, tmp_path) -> None:
    pytest.importorskip("scipy")
    real, generated = folders
    evaluators = ["fid", "kid"]
    make_reference_stats("real", ScoreOptions(videos=real, out=Path("."), evaluators=evaluators, device="cpu",
                                              evaluator_options=options(checkpoint, evaluators)), False)
    result = run_scoring(ScoreOptions(videos=generated, out=tmp_path / "run", evaluators=evaluators, device="cpu",
                                      reference="real", evaluator_options=options(checkpoint, evaluators)))
    scores = json.loads((result.run_dir / "summary.json").read_text())["scores"]

    network = inception.load_inception(checkpoint)
    x, y = direct_features(generated, network), direct_features(real, network)
    assert x.shape == (3 * 2, inception.FEATURE_DIM) and y.shape == (4 * 2, inception.FEATURE_DIM)
    assert scores["fid"]["n_features"] == 6 and scores["fid"]["n_reference_features"] == 8
    # singular covariances (fewer rows than dimensions): scipy's sqrtm is least accurate there
    assert scores["fid"]["mean"] == pytest.approx(scipy_frechet(x, y), rel=1e-3)
    assert scores["kid"]["mean"] == pytest.approx(clean_fid_kid(x, y), rel=1e-6)
    assert scores["fid"]["random_weights"] is False and "sample_size" in scores["fid"]
    run = json.loads((result.run_dir / "run.json").read_text())
    fid_card = next(e for e in run["evaluators"] if e["name"] == "fid")
    assert fid_card["extractor"]["convention"] == "clean" and fid_card["extractor"]["frame_stride"] == STRIDE
    assert fid_card["weights"][0]["verified_by"].startswith("unverified")


def test_fid_and_kid_share_one_network(checkpoint) -> None:
    shared = SharedModels()
    fid = registry.get("fid")(weights=str(checkpoint))
    kid = registry.get("kid")(weights=str(checkpoint))
    fid.load("cpu", torch.float32, shared)
    kid.load("cpu", torch.float32, shared)
    assert fid.network is kid.network and len(shared) == 1
    assert fid.residency_key() == kid.residency_key()


def test_missing_weights_and_bad_options_are_one_line(own_caches, monkeypatch) -> None:
    from vbench_pref.errors import VbenchPrefError

    monkeypatch.delenv(inception.FID_INCEPTION_WEIGHTS.env_var, raising=False)
    message = registry.get("fid")().missing_weights()
    assert message is not None and "vbench-pref weights pull fid-inception-weights" in message
    assert "\n" not in message
    assert registry.get("kid")(weights="random").missing_weights() is None
    with pytest.raises(VbenchPrefError, match="stride must be at least 1"):
        registry.get("fid")(stride=0)
    with pytest.raises(VbenchPrefError, match="convention must be one of"):
        registry.get("kid")(convention="bilinear")


def test_conventions_and_strides_are_part_of_the_identity(checkpoint) -> None:
    clean = registry.get("fid")(weights=str(checkpoint))
    other = registry.get("fid")(weights=str(checkpoint), convention="pytorch_fid")
    thinner = registry.get("fid")(weights=str(checkpoint), stride=2)
    identities = [e.identity_before_load() for e in (clean, other, thinner)]
    assert identities[0] != identities[1] and identities[0] != identities[2]
    # where the file lies is not part of it: its digest is
    moved = registry.get("fid")(weights="/elsewhere/my_inception.pth")
    assert moved.identity_before_load() == identities[0]
