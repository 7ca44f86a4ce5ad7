"""Match the videos of a folder to their prompts.

Three ways, tried in this order:

1. a manifest (``.csv``/``.jsonl``: ``video`` plus ``prompt`` and, for image-to-video, ``image``) given with
   ``--prompts``, or ``manifest.jsonl`` inside the videos folder when no prompts are given;
2. VBench naming: every video is called ``{prompt}-{i}.mp4`` for a prompt of the prompt file;
3. a plain prompt file in sorted (natural) video order, when the counts are equal.

Anything else is an error that lists what is unmatched. A manifest's videos must lie inside the videos
folder unless outside paths are allowed; videos of the folder that a manifest leaves out are reported.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from vbench_pref.errors import VbenchPrefError
from vbench_pref.video import VIDEO_EXTENSIONS

MANIFEST_NAME = "manifest.jsonl"
_VIDEO_KEYS = ("video", "path", "video_path", "file")
_IMAGE_KEYS = ("image", "image_path")
_VBENCH_NAME = re.compile(r"^(?P<prompt>.+)-(?P<index>\d+)$", re.DOTALL)
_LISTED = 10  # how many unmatched names an error message shows
_SAMPLED = 4096  # bytes read from each end of a video for its content digest


@dataclass(frozen=True)
class VideoTask:
    """One video to score: its id (path relative to the videos folder), file, prompt and I2V image."""

    video: str
    path: Path
    prompt: str | None
    image: str | None = None
    prompt_id: str | None = None  # the suite's id of the prompt, when a manifest gives one


@dataclass(frozen=True)
class Matching:
    tasks: list[VideoTask]
    mode: str  # "manifest", "vbench", "sorted" or "none"
    source: str | None
    left_out: list[str] = field(default_factory=list)  # videos of the folder a manifest does not list

    def fingerprint(self) -> str:
        """A digest of the (video, prompt, image) triples: changes when any input changes. An image counts by
        its content, not by its path, which changes with the spelling of --prompts or a moved folder."""
        digest = hashlib.sha256()
        for task in self.tasks:
            image = None if task.image is None else _file_sample(Path(task.image))
            digest.update(json.dumps([task.video, task.prompt, image], ensure_ascii=False).encode())
        return digest.hexdigest()

    def content_digest(self) -> str:
        """A digest of what the video files hold, whatever folder they are in: each one's size and its first
        and last few KiB (a stat and two small reads per video, where hashing whole videos would not be cheap)."""
        digest = hashlib.sha256()
        for task in self.tasks:
            digest.update(json.dumps([task.video, _file_sample(task.path)]).encode())
        return digest.hexdigest()


def _file_sample(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            head = handle.read(_SAMPLED)
            handle.seek(max(size - _SAMPLED, 0))
            tail = handle.read(_SAMPLED)
    except OSError:
        return "unreadable"
    return f"{size}:{hashlib.sha256(head + tail).hexdigest()}"


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` lies in ``folder`` once ``..`` is resolved (symlinked videos in the folder count as in it)."""
    return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(folder))


def _nfc(text: str) -> str:
    # macOS writes file names decomposed (NFD); prompts in text files are usually composed (NFC).
    return unicodedata.normalize("NFC", text)


def natural_key(text: str) -> list[object]:
    """Sort key under which video_2 comes before video_10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def _video_files(directory: Path, recursive: bool) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    return [
        path
        for path in directory.glob(pattern)
        if path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".")
    ]


def list_videos(directory: Path, recursive: bool = False) -> list[Path]:
    """Video files of ``directory`` in natural order; hidden and temporary files are skipped."""
    if not directory.is_dir():
        raise VbenchPrefError(f"videos folder {directory} does not exist or is not a folder")
    videos = _video_files(directory, recursive)
    if not videos:
        raise VbenchPrefError(
            f"no videos in {directory} (looked for {', '.join(VIDEO_EXTENSIONS)}"
            f"{', recursively' if recursive else '; add --recursive for subfolders'})"
        )
    return sorted(videos, key=lambda p: natural_key(p.relative_to(directory).as_posix()))


def read_prompts(path: Path) -> list[str]:
    """Prompts of a text file, one per line. Blank lines and lines starting with '#' are skipped;
    surrounding white space is stripped; duplicates are kept (each line is one prompt)."""
    if not path.is_file():
        raise VbenchPrefError(f"prompt file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise VbenchPrefError(f"prompt file {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    prompts = [line.strip() for line in text.splitlines()]
    prompts = [p for p in prompts if p and not p.startswith("#")]
    if not prompts:
        raise VbenchPrefError(f"prompt file {path} has no prompts (it is empty or only blank/comment lines)")
    return prompts


def _pick(record: dict[str, object], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = record.get(key)
        if value is not None and str(value) != "":
            return str(value)
    return None


def read_manifest(path: Path) -> list[dict[str, object]]:
    if not path.is_file():
        raise VbenchPrefError(f"manifest {path} does not exist")
    if path.suffix.lower() == ".csv":
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise VbenchPrefError(f"manifest {path} is not a readable CSV: {str(exc).splitlines()[0]}") from None
        return frame.to_dict("records")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise VbenchPrefError(f"manifest {path}, line {number}: not JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise VbenchPrefError(f"manifest {path}, line {number}: expected a JSON object")
        records.append(record)
    return records


def match_manifest(path: Path, videos_dir: Path | None, recursive: bool = False,
                   allow_outside: bool = False) -> Matching:
    """The manifest's (video, prompt, image) triples. Its videos must lie in ``videos_dir`` unless
    ``allow_outside``; the folder's videos it does not list are recorded as ``left_out``."""
    records = read_manifest(path)
    if not records:
        raise VbenchPrefError(f"manifest {path} has no entries")
    tasks: list[VideoTask] = []
    seen: dict[str, int] = {}
    outside: list[str] = []
    for number, record in enumerate(records, start=1):
        video = _pick(record, _VIDEO_KEYS)
        if video is None:
            raise VbenchPrefError(f"manifest {path}, entry {number}: no video column ({'/'.join(_VIDEO_KEYS)})")
        file = Path(video)
        if not file.is_absolute():
            # Relative paths are relative to the videos folder, else to the manifest's own folder.
            base = videos_dir if videos_dir is not None and (videos_dir / file).exists() else path.parent
            file = base / file
        within = videos_dir is not None and _inside(file, videos_dir)
        if videos_dir is not None and not within:
            outside.append(video)
        video_id = Path(os.path.abspath(file)).relative_to(os.path.abspath(videos_dir)).as_posix() if within else video
        seen[video_id] = seen.get(video_id, 0) + 1
        image = _pick(record, _IMAGE_KEYS)
        if image is not None and not Path(image).is_absolute():
            image = str(path.parent / image)
        prompt = _pick(record, ("prompt", "caption", "text"))
        prompt_id = _pick(record, ("prompt_id",))
        tasks.append(VideoTask(video_id, file, None if prompt is None else _nfc(prompt), image, prompt_id))
    duplicates = sorted(v for v, count in seen.items() if count > 1)
    if duplicates:
        raise VbenchPrefError(
            f"manifest {path} lists {len(duplicates)} video(s) more than once: {_listing(duplicates)}"
        )
    if outside and not allow_outside:
        raise VbenchPrefError(
            f"manifest {path} lists {len(outside)} video(s) outside --videos {videos_dir}: {_listing(outside)}; "
            "pass --allow-outside-paths to score them too"
        )
    left_out: list[str] = []
    if videos_dir is not None and videos_dir.is_dir():
        listed = {os.path.abspath(t.path) for t in tasks}
        left_out = sorted((p.relative_to(videos_dir).as_posix() for p in _video_files(videos_dir, recursive)
                           if os.path.abspath(p) not in listed), key=natural_key)
    return Matching(tasks, "manifest", str(path), left_out)


def _listing(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")


def match_prompt_file(videos: list[Path], videos_dir: Path, prompts: list[str], source: str) -> Matching:
    ids = [p.relative_to(videos_dir).as_posix() for p in videos]
    known = {_nfc(p) for p in prompts}
    named: list[str | None] = []
    for path in videos:
        found = _VBENCH_NAME.match(_nfc(path.stem))
        named.append(found["prompt"] if found and found["prompt"] in known else None)
    if all(name is not None for name in named):
        without_video = sorted(known - set(named))  # type: ignore[arg-type]
        if without_video:
            raise VbenchPrefError(
                f"videos follow VBench naming but {len(without_video)} prompt(s) of {source} have no video: "
                f"{_listing(without_video)}"
            )
        tasks = [VideoTask(i, p, n) for i, p, n in zip(ids, videos, named)]
        return Matching(tasks, "vbench", source)
    if len(videos) == len(prompts):
        tasks = [VideoTask(i, p, _nfc(q)) for i, p, q in zip(ids, videos, prompts)]
        return Matching(tasks, "sorted", source)
    unmatched = [i for i, n in zip(ids, named) if n is None]
    raise VbenchPrefError(
        f"cannot match {len(videos)} videos to {len(prompts)} prompts of {source}: the counts differ and "
        f"{len(unmatched)} video(s) are not named '{{prompt}}-{{i}}' after a prompt ({_listing(unmatched)}); "
        "pass a manifest (CSV/JSONL with video,prompt columns) instead"
    )


def match_videos(videos_dir: Path, prompts: Path | None, recursive: bool = False,
                 allow_outside: bool = False) -> Matching:
    """Resolve the (video, prompt, image) triples of a scoring run (``allow_outside``: a manifest may list
    videos outside ``videos_dir``)."""
    if prompts is not None and prompts.suffix.lower() in {".csv", ".jsonl", ".json"}:
        return match_manifest(prompts, videos_dir, recursive, allow_outside)
    if prompts is None and (videos_dir / MANIFEST_NAME).is_file():
        return match_manifest(videos_dir / MANIFEST_NAME, videos_dir, recursive, allow_outside)
    videos = list_videos(videos_dir, recursive)
    if prompts is None:
        tasks = [VideoTask(p.relative_to(videos_dir).as_posix(), p, None) for p in videos]
        return Matching(tasks, "none", None)
    return match_prompt_file(videos, videos_dir, read_prompts(prompts), str(prompts))


def task_record(task: VideoTask) -> dict[str, object]:
    record = asdict(task)
    record["path"] = str(task.path)
    return record
