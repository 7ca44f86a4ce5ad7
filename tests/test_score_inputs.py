"""What a manifest makes ``score`` read: videos it leaves out are reported, videos outside --videos are refused
unless asked for."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vbench_pref.errors import VbenchPrefError
from vbench_pref.matching import match_videos
from vbench_pref.scoring import ScoreOptions, run_scoring


def write_manifest(file: Path, videos: list[str]) -> Path:
    file.write_text("".join(json.dumps({"video": v, "prompt": f"prompt of {v}"}) + "\n" for v in videos))
    return file


def test_videos_a_manifest_leaves_out_are_named(videos, tmp_path: Path) -> None:
    directory, _ = videos
    manifest = write_manifest(tmp_path / "m.jsonl", ["video_0.mp4", "video_1.mp4"])
    matching = match_videos(directory, manifest)
    assert [t.video for t in matching.tasks] == ["video_0.mp4", "video_1.mp4"]
    assert matching.left_out == ["video_2.mp4", "video_3.mp4", "video_4.mp4"]
    notes: list[str] = []
    run_scoring(ScoreOptions(videos=directory, out=tmp_path / "run", prompts=manifest, evaluators=["temporal_flicker"],
                             device="cpu"), on_note=notes.append)
    inputs = json.loads((tmp_path / "run" / "run.json").read_text())["inputs"]
    assert inputs["left_out"] == {"count": 3, "videos": ["video_2.mp4", "video_3.mp4", "video_4.mp4"]}
    assert len(notes) == 1 and "leaves out 3 video(s)" in notes[0] and "video_2.mp4" in notes[0]


def test_a_manifest_listing_every_video_leaves_none_out(videos, tmp_path: Path) -> None:
    directory, _ = videos
    manifest = write_manifest(directory / "manifest.jsonl", [f"video_{i}.mp4" for i in range(5)])
    assert match_videos(directory, None).left_out == [] and match_videos(directory, manifest).left_out == []


@pytest.mark.parametrize("where", ["parent", "absolute"])
def test_manifest_videos_outside_the_folder_need_allow_outside(videos, tmp_path: Path, where: str) -> None:
    directory, _ = videos
    shutil.copy(directory / "video_0.mp4", tmp_path / "stray.mp4")
    outside = "../stray.mp4" if where == "parent" else str(tmp_path / "stray.mp4")
    manifest = write_manifest(directory / "m.jsonl", ["video_1.mp4", outside])
    with pytest.raises(VbenchPrefError, match=r"lists 1 video\(s\) outside --videos .*--allow-outside-paths") as e:
        match_videos(directory, manifest)
    assert "\n" not in str(e.value)
    allowed = match_videos(directory, manifest, allow_outside=True)
    assert [t.video for t in allowed.tasks] == ["video_1.mp4", outside]
    assert allowed.tasks[1].path.resolve() == (tmp_path / "stray.mp4").resolve()


def test_the_cli_says_what_it_left_out_and_refuses_outside_paths(run_cli, videos, tmp_path: Path) -> None:
    directory, _ = videos
    shutil.copy(directory / "video_0.mp4", tmp_path / "stray.mp4")
    write_manifest(tmp_path / "two.jsonl", ["video_0.mp4", "video_1.mp4"])
    args = ("score", "--videos", "videos", "-e", "temporal_flicker", "--device", "cpu")
    result = run_cli(tmp_path, *args, "--prompts", "two.jsonl", "--out", "run")
    assert result.returncode == 0, result.stderr
    assert "leaves out 3 video(s)" in result.stderr
    write_manifest(tmp_path / "out.jsonl", ["video_0.mp4", "../stray.mp4"])
    refused = run_cli(tmp_path, *args, "--prompts", "out.jsonl", "--out", "run2")
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "outside --videos" in refused.stderr and not (tmp_path / "run2").exists()
    allowed = run_cli(tmp_path, *args, "--prompts", "out.jsonl", "--out", "run2", "--allow-outside-paths")
    assert allowed.returncode == 0, allowed.stderr
    run = json.loads((tmp_path / "run2" / "run.json").read_text())
    assert run["inputs"]["allow_outside_paths"] is True and run["status"]["scored"] == 2
