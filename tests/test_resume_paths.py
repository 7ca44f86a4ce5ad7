"""A rerun continues the same run however its paths are spelled, and after its folder moved; other inputs are
still refused."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from vbench_pref.errors import RunConfigMismatch, VbenchPrefError
from vbench_pref.scoring import ScoreOptions, run_scoring
from vbench_pref.synthetic import flickering, smooth_motion
from vbench_pref.video import write_video


def score(videos: Path, out: Path):
    return run_scoring(ScoreOptions(videos=videos, out=out, prompts=videos / "prompts.txt",
                                    evaluators=["temporal_flicker"], device="cpu"))


def journal_lines(run: Path) -> int:
    return len((run / "records.jsonl").read_text().splitlines())


def test_score_resumes_relative_absolute_and_moved(videos, tmp_path: Path, monkeypatch) -> None:
    directory, _ = videos  # tmp_path/videos
    monkeypatch.chdir(tmp_path)
    assert not score(Path("videos"), Path("run")).resumed
    lines = journal_lines(tmp_path / "run")
    assert score(tmp_path / "videos", tmp_path / "run").resumed  # absolute spelling
    assert score(Path("./videos/../videos"), Path("run/")).resumed
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.move(tmp_path / "videos", moved / "videos")
    shutil.move(tmp_path / "run", moved / "run")
    assert score(moved / "videos", moved / "run").resumed
    assert journal_lines(moved / "run") == lines  # nothing scored twice

    other = tmp_path / "other"  # same names and prompts, other pixels: not the same input
    shutil.copytree(moved / "videos", other)
    write_video(other / "video_1.mp4", smooth_motion(6, 48, 48, seed=99), fps=8, lossless=True)
    with pytest.raises(RunConfigMismatch, match="inputs.content"):
        score(other, moved / "run")


def test_score_runs_recorded_before_the_content_digest_compare_their_folder(videos, tmp_path: Path) -> None:
    directory, _ = videos
    score(directory, tmp_path / "run")
    run_json = tmp_path / "run" / "run.json"
    recorded = json.loads(run_json.read_text())
    del recorded["config"]["inputs"]["content"]
    run_json.write_text(json.dumps(recorded))
    shutil.copytree(directory, tmp_path / "copy")
    with pytest.raises(RunConfigMismatch, match="inputs.videos"):
        score(tmp_path / "copy", tmp_path / "run")
    assert score(directory, tmp_path / "run").resumed  # and from now on it is compared by content
    assert score(tmp_path / "copy", tmp_path / "run").resumed


@pytest.mark.usefixtures("tiny_model_cache")
def test_generate_reuses_videos_however_model_and_out_are_spelled(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("diffusers")
    from vbench_pref.generate.models import ensure_builtin, load_model
    from vbench_pref.generate.prompts import load_suite
    from vbench_pref.generate.runner import GENERATION_JSON, generate

    folder = ensure_builtin("tiny-wan")
    monkeypatch.chdir(folder.parent)
    suite_file = tmp_path / "one.txt"
    suite_file.write_text("a1\ta red ball rolling\n")
    suite = load_suite(suite_file)

    def run(model: str, out: Path) -> int:
        loaded = load_model(model)
        return generate(loaded, suite, out, loaded.defaults.with_overrides(steps=1, num_frames=5)).generated

    assert run(folder.name, tmp_path / "videos") == 1  # --model spelled relative
    assert run(str(folder), tmp_path / "videos") == 0
    assert run(f"./{folder.name}/", Path(os.path.relpath(tmp_path / "videos"))) == 0
    shutil.move(tmp_path / "videos", tmp_path / "moved")
    assert run(str(folder), tmp_path / "moved") == 0
    binding = json.loads((tmp_path / "moved" / GENERATION_JSON).read_text())["binding"]
    binding["model"] = folder.name  # as folders bound before model identities recorded it
    (tmp_path / "moved" / GENERATION_JSON).write_text(json.dumps({"binding": binding}))
    assert run(str(folder), tmp_path / "moved") == 0
    with pytest.raises(VbenchPrefError, match="model differ"):
        run("builtin:tiny-wan", tmp_path / "moved")


@pytest.mark.usefixtures("tiny_model_cache")
def test_train_resumes_relative_absolute_and_moved(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("diffusers")
    from vbench_pref.train.config import TrainConfig
    from vbench_pref.train.trainer import run_training

    data = tmp_path / "data"
    data.mkdir()
    rows = []
    for i in range(2):
        for j in range(2):
            write_video(data / f"p{i}-{j}.mp4", flickering(5, 32, 32, seed=2 * i + j, amplitude=10 + 40 * j), fps=8)
        rows.append({"prompt": f"prompt {i}", "chosen": f"p{i}-0.mp4", "rejected": f"p{i}-1.mp4"})
    (data / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.chdir(tmp_path)
    config = TrainConfig(model="builtin:tiny-wan", pairs="data/pairs.jsonl", out="run", max_steps=1, batch_size=1,
                         effective_batch_size=1, lora_rank=2, checkpoint_every=1, probe_every=1, probe_pairs=1,
                         device="cpu", mixed_precision="no")
    run_training(config)
    absolute = replace(config, pairs=str(data / "pairs.jsonl"), out=str(tmp_path / "run"), max_steps=2)
    assert run_training(absolute, resume=True).start_step == 1
    shutil.move(tmp_path / "run", tmp_path / "moved")
    assert run_training(replace(config, out="moved", max_steps=3), resume=True).start_step == 2
    (data / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reversed(rows)))
    with pytest.raises(VbenchPrefError, match="pairs: other content than before"):
        run_training(replace(config, out="moved", max_steps=4), resume=True)


def test_image_to_video_inputs_compare_images_by_content(videos, tmp_path: Path, monkeypatch) -> None:
    directory, _ = videos
    (directory / "img").mkdir()
    (directory / "img" / "a.png").write_bytes(b"\x89PNG first image")
    rows = [{"video": f"video_{i}.mp4", "prompt": f"prompt {i}", "image": "img/a.png"} for i in range(5)]
    (directory / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.chdir(tmp_path)
    options = dict(prompts=None, evaluators=["temporal_flicker"], device="cpu")
    assert not run_scoring(ScoreOptions(videos=Path("videos"), out=Path("run"), **options)).resumed
    assert run_scoring(ScoreOptions(videos=directory, out=tmp_path / "run", **options)).resumed
    (directory / "img" / "a.png").write_bytes(b"\x89PNG another image")
    with pytest.raises(RunConfigMismatch, match="inputs.digest"):
        run_scoring(ScoreOptions(videos=directory, out=tmp_path / "run", **options))
