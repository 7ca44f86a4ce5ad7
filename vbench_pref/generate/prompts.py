"""Prompt suites: bundled by name (``demo``, ``t2v``, ``i2v``) or any file, each prompt with a stable id.

Text files (text-to-video) hold one prompt per line, ``ID<TAB>PROMPT`` or just ``PROMPT``; a prompt
without an id gets ``p-`` and the first 10 hex digits of its sha256, so it keeps its id (and its videos
and seeds) wherever it moves in the file. Blank lines and lines starting with ``#`` are skipped. A prompt
that repeats an earlier one is skipped with a warning (``--n`` asks for more videos per prompt); an id
used twice for different prompts is an error.

JSONL files (image-to-video, or text-to-video without ``image``): one object per line with ``prompt``
and optional ``id`` and ``image`` (a path relative to the JSONL file). Every image must exist and open
before anything is generated.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from vbench_pref.errors import VbenchPrefError

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
SUITE_SUFFIXES = (".txt", ".jsonl")


@dataclass(frozen=True)
class PromptEntry:
    id: str
    prompt: str
    image: Path | None = None

    @property
    def category(self) -> str:
        """The id before its last '-' (``animal-012`` -> ``animal``); ids without one are their own."""
        head, sep, _ = self.id.rpartition("-")
        return head if sep else self.id


@dataclass(frozen=True)
class PromptSuite:
    name: str
    source: Path
    entries: list[PromptEntry]
    skipped_duplicates: list[str] = field(default_factory=list)  # "line N: <prompt>" of each repeat

    @property
    def image_to_video(self) -> bool:
        return any(e.image is not None for e in self.entries)

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for entry in self.entries:
            digest.update(json.dumps([entry.id, entry.prompt, str(entry.image or "")], ensure_ascii=False).encode())
        return digest.hexdigest()


def bundled_dir() -> Path:
    return Path(str(resources.files("vbench_pref.prompts")))


def bundled_suites() -> dict[str, Path]:
    """Bundled suite name -> file (``t2v`` -> prompts/t2v.txt)."""
    folder = bundled_dir()
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix in SUITE_SUFFIXES}


def prompt_id(prompt: str) -> str:
    return "p-" + hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:10]


def load_suite(spec: str | Path) -> PromptSuite:
    """A suite by bundled name or path; one-line errors for anything that would fail later."""
    path = Path(spec)
    if not path.is_file():
        bundled = bundled_suites()
        if str(spec) in bundled:
            path = bundled[str(spec)]
        elif path.exists():
            raise VbenchPrefError(f"--prompts {spec} is not a file")
        else:
            raise VbenchPrefError(
                f"--prompts {spec}: no such file and no bundled suite of that name (bundled: {', '.join(bundled)})"
            )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise VbenchPrefError(f"prompt file {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    rows = _jsonl_rows(path, text) if path.suffix.lower() == ".jsonl" else _text_rows(text)
    entries, skipped = _entries(path, rows)
    if not entries:
        raise VbenchPrefError(f"prompt file {path} has no prompts (it is empty or only blank/comment lines)")
    return PromptSuite(path.stem, path, entries, skipped)


def _text_rows(text: str) -> list[tuple[int, str | None, str, str | None]]:
    rows = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        head, tab, tail = line.partition("\t")
        rows.append((number, head.strip(), tail.strip(), None) if tab else (number, None, line, None))
    return rows


def _jsonl_rows(path: Path, text: str) -> list[tuple[int, str | None, str, str | None]]:
    rows = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise VbenchPrefError(f"{path}, line {number}: not JSON ({exc.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("prompt"), str):
            raise VbenchPrefError(f"{path}, line {number}: expected an object with a \"prompt\" string")
        image = record.get("image")
        if image is not None and not isinstance(image, str):
            raise VbenchPrefError(f"{path}, line {number}: \"image\" must be a path string")
        ident = record.get("id")
        rows.append((number, None if ident is None else str(ident), record["prompt"].strip(), image))
    return rows


def _entries(path: Path, rows: list[tuple[int, str | None, str, str | None]]) -> tuple[list[PromptEntry], list[str]]:
    entries: list[PromptEntry] = []
    skipped: list[str] = []
    by_id: dict[str, tuple[int, str, str | None]] = {}
    for number, ident, prompt, image in rows:
        if not prompt:
            raise VbenchPrefError(f"{path}, line {number}: empty prompt")
        ident = ident or prompt_id(prompt)
        if not _ID.match(ident):
            raise VbenchPrefError(
                f"{path}, line {number}: id {ident!r} must be letters, digits, '_', '.', '-' (it names the video files)"
            )
        earlier = by_id.get(ident)
        if earlier is not None:
            if (earlier[1], earlier[2]) == (prompt, image):
                skipped.append(f"line {number}: {prompt}")
                continue
            raise VbenchPrefError(f"{path}, line {number}: id {ident!r} is already used on line {earlier[0]} for another prompt")
        by_id[ident] = (number, prompt, image)
        entries.append(PromptEntry(ident, prompt, _image_path(path, number, image)))
    return entries, skipped


def _image_path(path: Path, number: int, image: str | None) -> Path | None:
    if image is None:
        return None
    file = Path(image)
    if not file.is_absolute():
        file = path.parent / file
    if not file.is_file():
        raise VbenchPrefError(f"{path}, line {number}: image {image} does not exist (looked for {file})")
    try:
        from PIL import Image

        with Image.open(file) as opened:
            opened.verify()
    except Exception as exc:  # noqa: BLE001 - any unreadable image is the same user error
        raise VbenchPrefError(f"{path}, line {number}: image {file} cannot be read ({type(exc).__name__})") from None
    return file.resolve()
