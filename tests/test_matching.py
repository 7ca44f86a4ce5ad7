"""Matching videos to prompts: manifest, VBench naming, sorted order, and the errors in between."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

from vbench_pref.errors import VbenchPrefError
from vbench_pref.matching import match_videos, natural_key, read_prompts


def touch(directory: Path, *names: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / name).write_bytes(b"x")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_sorted_order_is_natural(tmp_path: Path) -> None:
    touch(tmp_path / "v", "clip_10.mp4", "clip_2.mp4", "clip_1.mp4")
    prompts = write(tmp_path / "p.txt", "one\ntwo\nten\n")
    matching = match_videos(tmp_path / "v", prompts)
    assert matching.mode == "sorted"
    assert [(t.video, t.prompt) for t in matching.tasks] == [
        ("clip_1.mp4", "one"), ("clip_2.mp4", "two"), ("clip_10.mp4", "ten")
    ]


def test_vbench_naming_with_several_videos_per_prompt(tmp_path: Path) -> None:
    touch(tmp_path / "v", "a cat-0.mp4", "a cat-1.mp4", "a dog running-0.mp4")
    prompts = write(tmp_path / "p.txt", "a cat\na dog running\n")
    matching = match_videos(tmp_path / "v", prompts)
    assert matching.mode == "vbench"
    assert {t.video: t.prompt for t in matching.tasks} == {
        "a cat-0.mp4": "a cat", "a cat-1.mp4": "a cat", "a dog running-0.mp4": "a dog running"
    }


def test_vbench_naming_unicode_decomposed_file_names(tmp_path: Path) -> None:
    prompt = "café crème, 東京の夜景 🌃"
    touch(tmp_path / "v", unicodedata.normalize("NFD", prompt) + "-0.mp4")
    matching = match_videos(tmp_path / "v", write(tmp_path / "p.txt", prompt + "\n"))
    assert matching.mode == "vbench" and matching.tasks[0].prompt == prompt


def test_prompt_without_video_in_vbench_mode_is_listed(tmp_path: Path) -> None:
    touch(tmp_path / "v", "a cat-0.mp4", "a cat-1.mp4", "a cat-2.mp4")
    with pytest.raises(VbenchPrefError, match="have no video: 'a dog'"):
        match_videos(tmp_path / "v", write(tmp_path / "p.txt", "a cat\na dog\n"))


def test_count_mismatch_lists_unmatched_videos(tmp_path: Path) -> None:
    touch(tmp_path / "v", "x.mp4", "y.mp4", "z.mp4")
    with pytest.raises(VbenchPrefError) as info:
        match_videos(tmp_path / "v", write(tmp_path / "p.txt", "one\ntwo\n"))
    message = str(info.value)
    assert "3 videos to 2 prompts" in message and "'x.mp4'" in message and "manifest" in message
    assert "\n" not in message


def test_manifest_jsonl_with_images_and_relative_paths(tmp_path: Path) -> None:
    touch(tmp_path / "v", "a.mp4", "b.mp4")
    manifest = tmp_path / "v" / "manifest.jsonl"
    lines = [{"video": "a.mp4", "prompt": "first", "image": "img/a.png"}, {"path": "b.mp4", "prompt": "second"}]
    write(manifest, "\n".join(json.dumps(r) for r in lines) + "\n")
    matching = match_videos(tmp_path / "v", None)  # found inside the folder
    assert matching.mode == "manifest"
    assert [(t.video, t.prompt) for t in matching.tasks] == [("a.mp4", "first"), ("b.mp4", "second")]
    assert matching.tasks[0].image == str(tmp_path / "v" / "img/a.png")


def test_manifest_csv_duplicate_videos_refused(tmp_path: Path) -> None:
    touch(tmp_path / "v", "a.mp4")
    manifest = write(tmp_path / "m.csv", "video,prompt\na.mp4,first\na.mp4,again\n")
    with pytest.raises(VbenchPrefError, match="more than once: 'a.mp4'"):
        match_videos(tmp_path / "v", manifest)


def test_missing_and_empty_prompt_files(tmp_path: Path) -> None:
    touch(tmp_path / "v", "a.mp4")
    with pytest.raises(VbenchPrefError, match="does not exist"):
        match_videos(tmp_path / "v", tmp_path / "nope.txt")
    with pytest.raises(VbenchPrefError, match="has no prompts"):
        match_videos(tmp_path / "v", write(tmp_path / "empty.txt", ""))
    with pytest.raises(VbenchPrefError, match="has no prompts"):
        match_videos(tmp_path / "v", write(tmp_path / "blank.txt", "\n  \n# only a comment\n"))


def test_folder_without_videos(tmp_path: Path) -> None:
    touch(tmp_path / "v", "notes.txt", ".hidden.mp4")
    with pytest.raises(VbenchPrefError, match="no videos in"):
        match_videos(tmp_path / "v", None)
    with pytest.raises(VbenchPrefError, match="does not exist"):
        match_videos(tmp_path / "missing", None)


def test_prompt_file_rules(tmp_path: Path) -> None:
    long_prompt = "a very long prompt " * 200
    path = write(tmp_path / "p.txt", f"\ufefffirst\n\n# comment\n  second  \nfirst\n{long_prompt}\n")
    assert read_prompts(path) == ["first", "second", "first", long_prompt.strip()]


def test_no_prompts_means_prompt_free_scoring(tmp_path: Path) -> None:
    touch(tmp_path / "v", "b.mp4", "a.mp4")
    matching = match_videos(tmp_path / "v", None)
    assert matching.mode == "none" and [t.prompt for t in matching.tasks] == [None, None]


def test_fingerprint_changes_with_prompts(tmp_path: Path) -> None:
    touch(tmp_path / "v", "a.mp4")
    one = match_videos(tmp_path / "v", write(tmp_path / "p1.txt", "one\n"))
    two = match_videos(tmp_path / "v", write(tmp_path / "p2.txt", "two\n"))
    assert one.fingerprint() != two.fingerprint()
    assert natural_key("a10") > natural_key("a9")
