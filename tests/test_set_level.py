"""Set-level evaluators end to end: features in the run folder, resumable; reference sets; distances; refusals;
the leaderboard's distance columns. The evaluator is tests/set_level_example.py (colour and motion statistics)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vbench_pref import registry
from vbench_pref import video as video_io
from vbench_pref.distribution.distance import frechet_distance, gaussian_stats, kid
from vbench_pref.distribution.features import FeatureStore
from vbench_pref.distribution.reference import ReferenceMismatch, load_reference, reference_root
from vbench_pref.distribution.reference_stats import make_reference_stats
from vbench_pref.errors import VbenchPrefError
from vbench_pref.evaluator import Option
from vbench_pref.leaderboard import build_leaderboard, render_markdown
from vbench_pref.scoring import RunInterrupted, ScoreOptions, run_scoring
from vbench_pref.video import FrameSpec

sys.path.insert(0, str(Path(__file__).parent))
from conftest import make_videos  # noqa: E402
from set_level_example import ColourStats, colour_motion_features  # noqa: E402

NAME = ColourStats.name


@pytest.fixture
def colour(register, own_caches):
    ColourStats.calls, ColourStats.interrupt_after = [], None
    register(ColourStats)
    yield ColourStats
    ColourStats.interrupt_after = None


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    real, generated = tmp_path / "real", tmp_path / "generated"
    make_videos(real, 6, frames=5, size=40, seed=100)
    make_videos(generated, 5, frames=5, size=40, seed=0)
    return real, generated


def make_reference(videos: Path, name: str = "real", replace: bool = False, **kwargs):
    opts = ScoreOptions(videos=videos, out=Path("."), evaluators=[NAME], device="cpu", **kwargs)
    return make_reference_stats(name, opts, replace)


def score_options(videos: Path, out: Path, **kwargs) -> ScoreOptions:
    return ScoreOptions(videos=videos, out=out, evaluators=kwargs.pop("evaluators", [NAME]), device="cpu",
                        reference=kwargs.pop("reference", "real"), **kwargs)


def decoded_features(folder: Path, per_frame: bool = False) -> dict[str, np.ndarray]:
    """The example's features computed here from a fresh decode, video by video (no engine)."""
    spec = FrameSpec(sampling="count", count=4, resize="short_side_crop", size=32)
    out = {}
    for path in sorted(folder.glob("*.mp4")):
        frames = video_io.decode_video(path, [spec]).frame_view(spec).frames().numpy()
        out[path.name] = np.atleast_2d(colour_motion_features(frames, per_frame))
    return out


def test_interrupted_and_resumed_run_stores_the_same_features_and_distances(colour, folders, tmp_path) -> None:
    real, generated = folders
    make_reference(real)
    straight = run_scoring(score_options(generated, tmp_path / "straight", batch_size=2))
    colour.calls, colour.interrupt_after = [], 1
    with pytest.raises(RunInterrupted):
        run_scoring(score_options(generated, tmp_path / "resumed", batch_size=2))
    interrupted = json.loads((tmp_path / "resumed" / "summary.json").read_text())
    assert f"{NAME}.fd" not in interrupted["scores"]  # no distance from a part of the set
    assert len(FeatureStore(tmp_path / "resumed", NAME).videos()) == 2
    colour.interrupt_after = None
    resumed = run_scoring(score_options(generated, tmp_path / "resumed", batch_size=2))
    a = FeatureStore(tmp_path / "straight", NAME).read()
    b = FeatureStore(tmp_path / "resumed", NAME).read([f"video_{i}.mp4" for i in range(5)])
    assert a.order == b.order and a.videos == b.videos and np.array_equal(a.rows, b.rows)
    # one shard before the interruption (2 videos), two after it (2 + 1)
    assert len(list((tmp_path / "resumed" / "features" / NAME).glob("*.safetensors"))) == 3
    assert straight.summary["scores"] == resumed.summary["scores"]
    records = [json.loads(line) for line in (tmp_path / "resumed" / "records.jsonl").read_text().splitlines()]
    assert sorted(r["video"] for r in records) == [f"video_{i}.mp4" for i in range(5)]  # each video once


def test_distances_equal_an_independent_computation_from_the_decoded_videos(colour, folders, tmp_path) -> None:
    real, generated = folders
    made = make_reference(real)
    assert set(made.written) == {NAME}
    result = run_scoring(score_options(generated, tmp_path / "run"))
    gen = np.vstack(list(decoded_features(generated).values()))
    ref = np.vstack(list(decoded_features(real).values()))
    fd = result.summary["scores"][f"{NAME}.fd"]
    # features are stored as float32: the reference distance is computed from the same float32 values
    expected = frechet_distance(gaussian_stats(gen.astype(np.float32)), gaussian_stats(ref.astype(np.float32)))
    assert fd["mean"] == pytest.approx(expected, rel=1e-9)
    assert fd["ci95"][0] <= fd["mean"] <= fd["ci95"][1] and fd["ci95"][1] > fd["ci95"][0]
    assert (fd["n"], fd["n_reference"], fd["reference"], fd["higher_is_better"]) == (5, 6, "real", False)
    assert "biased upward" in fd["warning"] and "2048" in fd["warning"]
    k = result.summary["scores"][f"{NAME}.kid"]
    expected_kid = kid(gen.astype(np.float32), ref.astype(np.float32))
    assert k["mean"] == pytest.approx(expected_kid.value, rel=1e-9) and k["std"] == pytest.approx(expected_kid.std, abs=1e-12)
    summary = pd.read_csv(tmp_path / "run" / "summary.csv")
    assert summary.set_index("score").loc[f"{NAME}.fd", "reference"] == "real"
    assert f"{NAME}.fd" not in pd.read_csv(tmp_path / "run" / "scores.csv").columns  # no per-video column
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["reference"]["name"] == "real" and run["reference"]["evaluators"][NAME]["n_videos"] == 6
    assert run["config"]["reference"] == "real"
    stored = load_reference("real", ColourStats())
    assert stored.stats.cov.dtype == np.float64 and stored.info["n_videos"] == 6
    assert [f["video"] for f in stored.info["videos"]["files"]] == [f"video_{i}.mp4" for i in range(6)]
    assert all(len(f["sha256"]) == 64 for f in stored.info["videos"]["files"])
    assert not (reference_root() / "real" / ".work").exists() or not any((reference_root() / "real" / ".work").iterdir())


def test_per_frame_features_are_grouped_by_video(colour, folders, tmp_path) -> None:
    real, generated = folders
    options = {NAME: {"per_frame": "true"}}
    make_reference(real, evaluator_options=options)
    result = run_scoring(score_options(generated, tmp_path / "run", evaluator_options=options))
    fd = result.summary["scores"][f"{NAME}.fd"]
    assert (fd["n"], fd["n_features"], fd["n_reference_features"]) == (5, 20, 24)
    gen = np.vstack(list(decoded_features(generated, per_frame=True).values())).astype(np.float32)
    ref = np.vstack(list(decoded_features(real, per_frame=True).values())).astype(np.float32)
    assert fd["mean"] == pytest.approx(frechet_distance(gaussian_stats(gen), gaussian_stats(ref)), rel=1e-9)


def test_mismatched_statistics_and_missing_references_are_refused(colour, folders, tmp_path) -> None:
    real, generated = folders
    with pytest.raises(VbenchPrefError, match=r"pass --reference NAME \(no reference set .* reference-stats"):
        run_scoring(score_options(generated, tmp_path / "a", reference=None))
    make_reference(real)
    with pytest.raises(VbenchPrefError, match=r"no reference set 'other' \(reference sets in .*: real \(colour_stats_test\)"):
        run_scoring(score_options(generated, tmp_path / "b", reference="other"))
    with pytest.raises(ReferenceMismatch, match=r"options\.per_frame \(reference 'False', this run 'True'\)"):
        run_scoring(score_options(generated, tmp_path / "c", evaluator_options={NAME: {"per_frame": "true"}}))
    with pytest.raises(VbenchPrefError, match="--reference is for set-level evaluators"):
        run_scoring(score_options(generated, tmp_path / "d", evaluators=["temporal_flicker"]))

    class NewVersion(ColourStats):
        version = "2"

    with pytest.raises(ReferenceMismatch, match=r"version \(reference '1', this run '2'\)"):
        load_reference("real", NewVersion())

    class OtherWeights(ColourStats):
        def weight_provenance(self):
            return [{"name": "net", "sha256": "ab" * 32}]

    with pytest.raises(ReferenceMismatch, match=r"weights \(reference \[\], this run \['abab"):
        load_reference("real", OtherWeights())
    # the same name for other videos: refused, unless replaced
    with pytest.raises(ReferenceMismatch, match="other videos"):
        make_reference(generated)
    assert make_reference(real).up_to_date == [NAME]
    make_reference(generated, replace=True)
    assert load_reference("real", ColourStats()).n_videos == 5


def test_a_damaged_reference_set_is_refused(colour, folders, tmp_path) -> None:
    real, _ = folders
    make_reference(real)
    stats = reference_root() / "real" / NAME / "stats.safetensors"
    stats.write_bytes(stats.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(VbenchPrefError, match="does not match reference.json"):
        load_reference("real", ColourStats())


def test_a_video_without_features_is_recorded_and_left_out(colour, folders, tmp_path) -> None:
    real, generated = folders
    make_reference(real)
    (generated / "video_4.mp4").rename(generated / "video_broken.mp4")
    result = run_scoring(score_options(generated, tmp_path / "run", batch_size=3))
    errors = pd.read_csv(tmp_path / "run" / "errors.csv")
    assert errors.video.tolist() == ["video_broken.mp4"] and "cannot featurise" in errors.error[0]
    fd = result.summary["scores"][f"{NAME}.fd"]
    assert (fd["n"], fd["n_missing"]) == (4, 1) and result.n_failed == 1


def test_default_selection_leaves_set_level_evaluators_out(colour, folders, tmp_path) -> None:
    _, generated = folders
    result = run_scoring(ScoreOptions(videos=generated, out=tmp_path / "run", device="cpu", prompts=generated / "prompts.txt"))
    assert "--reference" in result.skipped[NAME]


def test_leaderboard_names_the_reference_set_and_never_mixes_two(colour, folders, tmp_path) -> None:
    real, generated = folders
    make_reference(real)
    make_reference(generated, name="other")
    run_scoring(score_options(generated, tmp_path / "a", model="m", method="a", prompts=generated / "prompts.txt",
                              evaluators=[NAME, "temporal_flicker"]))
    run_scoring(score_options(real, tmp_path / "b", model="m", method="b", prompts=real / "prompts.txt"))
    run_scoring(score_options(real, tmp_path / "c", model="m", method="c", reference="other"))
    board = build_leaderboard([tmp_path / "a", tmp_path / "b", tmp_path / "c"])
    columns = set(board.score_columns)
    assert {f"{NAME}.fd [ref: real]", f"{NAME}.fd [ref: other]", f"{NAME}.kid [ref: real]"} <= columns
    assert board.directions[f"{NAME}.fd [ref: real]"] is False
    table = board.table.set_index("method")
    assert pd.isna(table.loc["c", f"{NAME}.fd [ref: real]"]) and not pd.isna(table.loc["c", f"{NAME}.fd [ref: other]"])
    # b scores the reference videos themselves: distance 0, the best (lower is better) of the real column
    assert table.loc["b", f"{NAME}.fd [ref: real]"] == pytest.approx(0.0, abs=1e-6)
    markdown = render_markdown(board)
    assert f"| {NAME}.fd [ref: real] ↓ |" in markdown


def as_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The example evaluator as an installed plug-in, for CLI subprocesses."""
    site = tmp_path / "site"
    dist = site / "colour_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: colour-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[vbench_pref.evaluators]\n{NAME} = set_level_example:ColourStats\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), str(Path(__file__).parent)]))


def test_reference_stats_and_score_through_the_cli(colour, folders, tmp_path, run_cli, monkeypatch) -> None:
    real, generated = folders
    as_plugin(tmp_path, monkeypatch)
    made = run_cli(tmp_path, "reference-stats", "--videos", str(real), "--name", "real", "-e", NAME, "--device", "cpu")
    assert made.returncode == 0, made.stderr
    assert f"{NAME} statistics of 6 videos" in made.stderr
    again = run_cli(tmp_path, "reference-stats", "--videos", str(real), "--name", "real", "-e", NAME, "--device", "cpu")
    assert again.returncode == 0 and "up to date" in again.stderr
    missing = run_cli(tmp_path, "score", "--videos", str(generated), "--out", "run", "-e", NAME, "--device", "cpu")
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    assert "--reference NAME" in missing.stderr and "real (colour_stats_test)" in missing.stderr
    other = run_cli(tmp_path, "score", "--videos", str(generated), "--out", "run", "-e", NAME, "--device", "cpu",
                    "-O", f"{NAME}.per_frame=true", "--reference", "real")
    assert other.returncode == 2 and "options.per_frame" in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1
    scored = run_cli(tmp_path, "score", "--videos", str(generated), "--out", "run", "-e", NAME, "--device", "cpu",
                     "--reference", "real", "--model-name", "m")
    assert scored.returncode == 0, scored.stderr
    assert "biased upward" in scored.stderr and "[ref: real, 6 videos]" in scored.stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["scores"][f"{NAME}.fd"]["mean"] > 0
    board = run_cli(tmp_path, "leaderboard", "run", "--out", "board")
    assert board.returncode == 0, board.stderr
    assert f"{NAME}.fd [ref: real]" in (tmp_path / "board.csv").read_text()


def test_eval_refuses_a_set_level_evaluator_without_reference_before_generating(colour, folders, tmp_path) -> None:
    from vbench_pref.evaluate import GenerationOptions, check_generation_and_scoring

    generation = GenerationOptions(model="builtin:tiny-wan", prompts="demo", device="cpu")
    score = ScoreOptions(videos=tmp_path / "videos", out=tmp_path / "run", evaluators=[NAME], device="cpu")
    with pytest.raises(VbenchPrefError, match="pass --reference NAME"):
        check_generation_and_scoring(generation, score, tmp_path / "out")
    real, _ = folders
    make_reference(real)
    score.reference = "real"
    check_generation_and_scoring(generation, score, tmp_path / "out")


def test_dtype_and_location_options_in_the_identity(colour, folders, tmp_path) -> None:
    real, generated = folders
    make_reference(real)
    with pytest.raises(ReferenceMismatch, match=r"dtype \(reference 'float32', this run 'bfloat16'\)"):
        run_scoring(score_options(generated, tmp_path / "run", dtype="bfloat16"))

    class WithPath(ColourStats):
        options = (*ColourStats.options, Option("weights", "", "a weights file"))
        location_options = ("weights",)

    moved = WithPath(weights="/elsewhere/net.pt")
    moved.load("cpu")
    assert "weights" not in moved.identity()["options"]
    load_reference("real", moved)  # where a file is does not change the features


def test_feature_store_survives_a_torn_line_an_orphan_shard_and_a_lost_shard(tmp_path) -> None:
    store = FeatureStore(tmp_path, "e")
    rows = {f"v{i}": np.full((i + 1, 3), float(i), dtype=np.float32) for i in range(4)}
    store.append([("v0", rows["v0"]), ("v1", rows["v1"])])
    store.append([("v2", rows["v2"])])
    with open(store.index, "a", encoding="utf-8") as handle:
        handle.write('{"shard": "shard-000002.safetensors", "vid')  # killed mid-line
    (store.path / "shard-000002.safetensors").write_bytes(b"orphan")  # written, never indexed
    assert store.videos() == {"v0", "v1", "v2"}
    store.repair()
    store.append([("v3", rows["v3"])])  # takes the orphan's name: replaced whole
    read = store.read(["v3", "v0", "v2", "missing"])
    assert read.order == ("v3", "v0", "v2") and read.videos == ("v3",) * 4 + ("v0",) + ("v2",) * 3
    assert np.array_equal(read.rows, np.vstack([rows["v3"], rows["v0"], rows["v2"]]))
    (store.path / "shard-000001.safetensors").unlink()  # lost: only its video is redone
    assert store.videos() == {"v0", "v1", "v3"}
    store.append([("v2", rows["v2"])])
    assert np.array_equal(store.read(["v2"]).rows, rows["v2"])
    ranked = FeatureStore(tmp_path, "e", rank=1)
    ranked.append([("v9", rows["v0"])])
    assert "v9" in FeatureStore(tmp_path, "e").videos() and ranked.index.name == "index.rank1.jsonl"


def test_reference_stats_notices_new_weights_and_replacing_videos_drops_stale_statistics(
    colour, folders, register, monkeypatch
) -> None:
    real, generated = folders

    class Second(ColourStats):
        name = "colour_stats_second_test"

    class NewWeights(ColourStats):
        def weight_provenance(self):
            return [{"name": "net", "sha256": "cd" * 32}]

    register(Second)
    opts = ScoreOptions(videos=real, out=Path("."), evaluators=[NAME, Second.name], device="cpu")
    assert set(make_reference_stats("real", opts).written) == {NAME, Second.name}
    with monkeypatch.context() as patch:
        patch.setitem(registry._registered, NAME, NewWeights)
        with pytest.raises(ReferenceMismatch, match=r"weights \(reference \[\], this run \['cdcd"):
            make_reference(real)  # same videos and options, other weights: not "up to date"
    make_reference(generated, replace=True)  # other videos: the second evaluator's statistics go
    assert sorted(p.name for p in (reference_root() / "real").iterdir() if not p.name.startswith(".")) == [NAME]


def test_two_processes_store_the_same_features_and_distances_as_one(colour, folders, tmp_path, run_cli, monkeypatch) -> None:
    real, _ = folders
    as_plugin(tmp_path, monkeypatch)
    make_reference(real)  # into tmp_path / "cache": the cache run_cli's subprocesses use too
    args = ("eval", "--model", "builtin:tiny-wan", "--prompts", "demo", "-e", NAME, "--reference", "real",
            "--device", "cpu", "--batch-size", "2")
    one = run_cli(tmp_path, *args, "--out", "one", "--leaderboard", "board1")
    assert one.returncode == 0, one.stderr
    launcher = ("-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29547")
    two = run_cli(tmp_path, *args, "--out", "two", "--leaderboard", "board2", launcher=launcher)
    assert two.returncode == 0, two.stderr + two.stdout
    indexes = sorted(p.name for p in (tmp_path / "two" / "run" / "features" / NAME).glob("index*"))
    assert indexes == ["index.rank0.jsonl", "index.rank1.jsonl"]
    videos = pd.read_csv(tmp_path / "one" / "run" / "scores.csv")["video"].tolist()
    a = FeatureStore(tmp_path / "one" / "run", NAME).read(videos)
    b = FeatureStore(tmp_path / "two" / "run", NAME).read(videos)
    assert a.order == b.order == tuple(videos) and len(videos) >= 2
    # features of the mp4s: H.264 may round a pixel differently between runs, never the content
    assert np.abs(a.rows - b.rows).max() < 1e-3
    summaries = [json.loads((tmp_path / run / "run" / "summary.json").read_text())["scores"] for run in ("one", "two")]
    assert summaries[1][f"{NAME}.fd"]["n"] == len(videos) and summaries[1][f"{NAME}.fd"]["reference"] == "real"
    assert summaries[0][f"{NAME}.fd"]["mean"] == pytest.approx(summaries[1][f"{NAME}.fd"]["mean"], rel=1e-2, abs=1e-4)
    assert f"{NAME}.fd [ref: real]" in (tmp_path / "board2.csv").read_text()


def test_a_set_level_evaluator_is_no_reward(colour) -> None:
    from vbench_pref.pairs import parse_reward

    with pytest.raises(VbenchPrefError, match="distance per run, not a score per video"):
        parse_reward(NAME)
