"""The dover and fast_vqa evaluators through the engine: tiny random checkpoints in the published layouts.

The independent computation decodes the videos itself, builds the views with ``vbench_pref.vqa.views`` from
the documented seed rule, calls the network modules directly and fuses or rescales by hand.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from vbench_pref.errors import WeightsMissingError
from vbench_pref.evaluator import VideoSample
from vbench_pref.leaderboard import build_leaderboard, render_markdown
from vbench_pref.registry import get
from vbench_pref.scoring import ScoreOptions, run_scoring, video_seed
from vbench_pref.video import FrameSpec, decode_video, write_video
from vbench_pref.vqa import views as V
from vbench_pref.vqa.models import load_network, write_random_checkpoint

TOL = 1e-5
# 240 px: a grid cell (240 // 7 = 34) is wider than a fragment, so fragment offsets are random; 48 x 64 is
# enlarged to 224 first (no random offsets at all at that size, as in the reference)
VIDEOS = {"a.mp4": (20, 240, 256), "small.mp4": (9, 48, 64)}


# in-process loads keep their digest memos and hub look-ups in the test's folder
pytestmark = pytest.mark.usefixtures("own_caches")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("vqa")
    videos = root / "videos"
    videos.mkdir()
    g = np.random.default_rng(0)
    for name, (t, h, w) in VIDEOS.items():
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([(xx * 3) % 256, (yy * 5) % 256, (xx + yy) % 256], -1)[None] + 9 * np.arange(t)[:, None, None, None]
        write_video(videos / name, np.clip(base % 256 + g.integers(-30, 30, (t, h, w, 3)), 0, 255).astype(np.uint8),
                    fps=8, lossless=True)
    out = {"videos": videos}
    # a random checkpoint must not be named like the published file (that one's sha256 is pinned)
    for key, family, order in (("dover", "dover", None), ("dover_reversed", "dover", ("aesthetic", "technical")),
                               ("fast_vqa_b", "fast_vqa_b", None), ("faster_vqa", "faster_vqa", None)):
        out[key] = root / f"{key}-random.pth"
        write_random_checkpoint(family, out[key], size="tiny", seed=1, branch_order=order)
    return out


def score(files, out: Path, seed: int = 0, evaluators: tuple[str, ...] = ("dover", "fast_vqa"), **options) -> pd.DataFrame:
    evaluator_options = {"dover": {"weights": str(files["dover"])}, "fast_vqa": {"weights": str(files["fast_vqa_b"])}}
    for key, value in options.items():
        name, option = key.split("__")
        evaluator_options[name][option] = value
    result = run_scoring(ScoreOptions(videos=files["videos"], out=out, evaluators=list(evaluators),
                                      evaluator_options={e: evaluator_options[e] for e in evaluators}, device="cpu", seed=seed, batch_size=2))
    assert result.n_failed == 0
    return pd.read_csv(out / "scores.csv").set_index("video").sort_index()


@pytest.fixture(scope="module")
def run0_dir(files, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run0"
    score(files, out)
    return out


@pytest.fixture(scope="module")
def run0(run0_dir) -> pd.DataFrame:
    return pd.read_csv(run0_dir / "scores.csv").set_index("video").sort_index()


def frames_of(path: Path) -> torch.Tensor:
    return decode_video(path, [FrameSpec()]).view(FrameSpec())[0]


def by_hand(files, family: str, checkpoint: Path, preset: str, run_seed: int = 0, draws: int = 1) -> dict[str, dict]:
    """Raw branch scores per video, averaged over draws, from the modules called directly."""
    network = load_network(family, checkpoint, size="tiny")
    out = {}
    for video in sorted(VIDEOS):
        frames = frames_of(files["videos"] / video)
        totals: dict[str, float] = {}
        for k in range(draws):
            views, _ = V.views_for(frames, preset, video_seed(run_seed, video), video, draw=k)
            with torch.no_grad():
                raw = network({name: v[None] for name, v in views.items()})
            for name, value in raw.items():
                totals[name] = totals.get(name, 0.0) + float(value[0]) / draws
        out[video] = totals
    return out


def dover_fused(raw: dict) -> float:
    t = (raw["technical"] - 0.1107) / 0.07355
    a = (raw["aesthetic"] + 0.08285) / 0.03774
    return 1 / (1 + math.exp(-(0.6104 * t + 0.3896 * a)))


def test_engine_scores_equal_an_independent_computation(files, run0) -> None:
    dover = by_hand(files, "dover", files["dover"], "dover")
    fast = by_hand(files, "fast_vqa_b", files["fast_vqa_b"], "fast_vqa")
    for video in VIDEOS:
        row = run0.loc[video]
        assert row["dover.technical_raw"] == pytest.approx(dover[video]["technical"], abs=TOL)
        assert row["dover.aesthetic_raw"] == pytest.approx(dover[video]["aesthetic"], abs=TOL)
        assert row["dover.technical"] == pytest.approx((dover[video]["technical"] - 0.1107) / 0.07355, abs=TOL)
        assert row["dover.aesthetic"] == pytest.approx((dover[video]["aesthetic"] + 0.08285) / 0.03774, abs=TOL)
        assert row["dover.overall"] == pytest.approx(dover_fused(dover[video]), abs=TOL)
        assert row["fast_vqa.raw"] == pytest.approx(fast[video]["fragments"], abs=TOL)
        expected = 1 / (1 + math.exp(-(fast[video]["fragments"] + 0.110198185) / 0.04178565))
        assert row["fast_vqa.score"] == pytest.approx(expected, abs=TOL)


def test_fastervqa_and_its_script_sampling_equal_an_independent_computation(files, tmp_path) -> None:
    for sampling, preset in (("loader", "faster_vqa"), ("script", "faster_vqa_script")):
        scores = score(files, tmp_path / sampling, evaluators=("fast_vqa",), fast_vqa__variant="faster_vqa", fast_vqa__sampling=sampling,
                       fast_vqa__weights=str(files["faster_vqa"]))
        hand = by_hand(files, "faster_vqa", files["faster_vqa"], preset)
        for video in VIDEOS:
            raw = hand[video]["fragments"]
            assert scores.loc[video, "fast_vqa.raw"] == pytest.approx(raw, abs=TOL)
            assert scores.loc[video, "fast_vqa.score"] == pytest.approx(
                1 / (1 + math.exp(-(raw - 0.14759505) / 0.03613452)), abs=TOL)


def test_rerun_is_identical_another_seed_differs_and_videos_differ(files, run0, tmp_path) -> None:
    again = score(files, tmp_path / "again")
    pd.testing.assert_frame_equal(again, run0)
    other = score(files, tmp_path / "other", seed=7)
    columns = ["dover.overall", "dover.technical_raw", "fast_vqa.raw"]
    # large enough for random fragments: another seed, other fragments (its 20 frames are too few for random
    # temporal offsets, so the aesthetic view, which has no fragments, stays)
    assert (other.loc["a.mp4", columns] != run0.loc["a.mp4", columns]).all()
    assert other.loc["a.mp4", "dover.aesthetic_raw"] == run0.loc["a.mp4", "dover.aesthetic_raw"]
    # too small for any random offset: the same views whatever the seed, as in the reference
    assert (other.loc["small.mp4", columns] == run0.loc["small.mp4", columns]).all()
    for column in [*columns, "dover.aesthetic_raw"]:
        assert run0[column].nunique() == len(VIDEOS), column
    run = json.loads((tmp_path / "again" / "run.json").read_text())
    recorded = {e["name"]: e for e in run["evaluators"]}
    assert recorded["dover"]["views"]["draws"] == 1 and "view_seed" in recorded["dover"]["views"]["seed_rule"]
    assert recorded["fast_vqa"]["views"]["preset"] == "fast_vqa" and recorded["fast_vqa"]["rescale"]["std"] == 0.04178565


def test_fusion_is_by_branch_name_whatever_the_checkpoint_order(files) -> None:
    plain = torch.load(files["dover"], weights_only=True)
    reversed_ = torch.load(files["dover_reversed"], weights_only=True)
    assert next(iter(plain)).startswith("technical") and next(iter(reversed_)).startswith("aesthetic")
    samples = [_sample(files, "a.mp4")]
    scores = []
    for key in ("dover", "dover_reversed"):
        evaluator = get("dover")(weights=str(files[key]))
        evaluator.load("cpu")
        scores.append(evaluator.score(samples))
    for name, values in scores[0].items():
        np.testing.assert_array_equal(values, scores[1][name])
    raw = {"technical": float(scores[0]["technical_raw"][0]), "aesthetic": float(scores[0]["aesthetic_raw"][0])}
    assert raw["technical"] != raw["aesthetic"]
    assert scores[0]["overall"][0] == pytest.approx(dover_fused(raw), abs=1e-12)
    swapped = dover_fused({"technical": raw["aesthetic"], "aesthetic": raw["technical"]})
    assert abs(scores[0]["overall"][0] - swapped) > 1e-3  # a positional swap would show


def _sample(files, video: str, seed: int | None = None) -> VideoSample:
    frames = frames_of(files["videos"] / video)
    extras = {} if seed is None else {"seed": seed}
    return VideoSample(video=video, frames=frames, timestamps=np.arange(len(frames)) / 8.0, fps=8.0, extras=extras)


def test_k_draws_average_the_raw_scores(files) -> None:
    evaluator = get("dover")(weights=str(files["dover"]), draws=3)
    evaluator.load("cpu")
    seed = video_seed(5, "a.mp4")
    got = evaluator.score([_sample(files, "a.mp4", seed)])
    network = load_network("dover", files["dover"], size="tiny")
    frames = frames_of(files["videos"] / "a.mp4")
    per_draw = []
    for k in range(3):
        views, _ = V.views_for(frames, "dover", seed, "a.mp4", draw=k)
        with torch.no_grad():
            per_draw.append({n: float(v[0]) for n, v in network({n: v[None] for n, v in views.items()}).items()})
    mean = {n: sum(d[n] for d in per_draw) / 3 for n in per_draw[0]}
    assert len({d["technical"] for d in per_draw}) == 3  # the draws differ
    assert got["technical_raw"][0] == pytest.approx(mean["technical"], abs=TOL)
    assert got["aesthetic_raw"][0] == pytest.approx(mean["aesthetic"], abs=TOL)
    assert got["overall"][0] == pytest.approx(dover_fused(mean), abs=TOL)


def test_replayed_draws_are_the_ones_scored(files) -> None:
    from evaluators._vqa_base import replay_draws

    frames = frames_of(files["videos"] / "a.mp4")
    t, h, w, _ = frames.shape
    replayed = replay_draws(3, "a.mp4", t, h, w, "dover", draws=2)
    for k in range(2):
        _, used = V.views_for(frames, "dover", video_seed(3, "a.mp4"), "a.mp4", draw=k)
        assert replayed[k] == V.record_draws(used)
    assert replayed[0] != replayed[1]


def test_missing_weights_name_the_pull_command_and_the_licence(files, tmp_path, run_cli) -> None:
    dover, fast = get("dover")(), get("fast_vqa")(variant="faster_vqa")
    line = dover.missing_weights()
    assert line is not None and "\n" not in line
    assert "`vbench-pref weights pull dover-weights --accept-licence`" in line and "-O dover.weights=" in line
    fast_line = fast.missing_weights()
    assert "`vbench-pref weights pull fastervqa-weights`" in fast_line and "--accept-licence" not in fast_line
    mobile = get("dover")(variant="dover_mobile").missing_weights()
    assert "dover-mobile-weights --accept-licence" in mobile
    with pytest.raises(WeightsMissingError):
        get("dover")().load("cpu")
    result = run_cli(tmp_path, "score", "--videos", str(files["videos"]), "--out", str(tmp_path / "run"), "-e", "dover")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "weights pull dover-weights --accept-licence" in result.stderr


def test_a_checkpoint_of_another_family_is_refused_in_one_line(files) -> None:
    evaluator = get("fast_vqa")(weights=str(files["dover"]))
    with pytest.raises(Exception) as exc:
        evaluator.load("cpu")
    assert "is not a fast_vqa_b checkpoint" in str(exc.value) and "\n" not in str(exc.value)


def test_the_leaderboard_says_which_model_the_papers_vqa_column_is(run0_dir) -> None:
    paper = Path(__file__).resolve().parents[1] / "results" / "reported" / "pgdpo_paper.csv"
    board = build_leaderboard([run0_dir], [paper])
    assert {"dover.overall", "fast_vqa.score"} <= set(board.score_columns)
    markdown = render_markdown(board)
    notes = markdown.split("## Columns", 1)[1].split("## Sources", 1)[0]
    dover_note = next(line for line in notes.splitlines() if line.startswith("- dover.overall (pgdpo_paper.csv)"))
    assert "FAST-VQA" in dover_note and "fast_vqa.score" in dover_note
    # a note is shown only for a column on the board
    assert "- fast_vqa" not in notes and "- models" not in notes
    alone = render_markdown(build_leaderboard([run0_dir]))
    assert "## Columns" not in alone


@pytest.mark.parametrize("evaluator, variant, family, preset", [
    ("dover", "dover_mobile", "dover_mobile", "dover_mobile"),
    ("dover", "dover_plus_plus", "dover_plus_plus", "dover"),
    ("fast_vqa", "faster_vqa", "faster_vqa", "faster_vqa"),
])
def test_random_weights_of_every_variant_score_as_the_network_called_directly(files, evaluator, variant, family,
                                                                               preset) -> None:
    from vbench_pref.vqa.models import random_network

    scorer = get(evaluator)(variant=variant, weights="random")
    scorer.load("cpu")
    assert scorer.uses_random_weights and scorer.provenance()["weights"][0]["family"] == family
    got = scorer.score([_sample(files, "a.mp4", 11)])
    views, _ = V.views_for(frames_of(files["videos"] / "a.mp4"), preset, 11, "a.mp4")
    with torch.no_grad():
        raw = {n: float(v[0]) for n, v in random_network(family, "tiny")({n: v[None] for n, v in views.items()}).items()}
    if evaluator == "dover":
        assert got["technical_raw"][0] == pytest.approx(raw["technical"], abs=TOL)
        assert got["overall"][0] == pytest.approx(dover_fused(raw), abs=TOL)  # the same constants for every variant
    else:
        assert got["raw"][0] == pytest.approx(raw["fragments"], abs=TOL)
