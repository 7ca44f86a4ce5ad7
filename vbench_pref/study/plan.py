"""The study plan (``STUDY/study.json``): who sees which pair of videos, in which order, on which side.

Everything the server and the analysis need is in this one JSON file, written once by ``study create``:

* ``methods``: label -> the eval run it came from (model, method, run id, run folder, videos folder);
* ``videos``: opaque id -> method label, prompt, the source video (relative to its run's videos folder,
  with its sha256) and the file the browser plays (``media/<id>.webm``, relative to the study folder);
  attention-check videos are made by ``study create`` and have ``corrupted_from`` set;
* ``participants``: in presentation order, each with its items; an item shows two videos of one prompt
  (``left``, ``right``) and is either a comparison or an attention check (``check``: which side shows the
  corrupted video, i.e. which side must not win).

Video ids are random, so nothing the browser sees (URL, file name) tells which method made a video.
Tokens are not in the plan: they live in ``tokens.json`` (mode 0600), which ``study invite`` reads.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vbench_pref.atomic import atomic_write_text
from vbench_pref.errors import VbenchPrefError

PLAN_FILE = "study.json"
TOKENS_FILE = "tokens.json"
ANSWERS_FILE = "answers.sqlite"
MEDIA_DIR = "media"
PLAN_FORMAT = 1

ASPECTS = {
    "vq": ("Visual quality", "Which video looks better: sharper, cleaner, fewer artifacts?"),
    "mq": ("Motion quality", "Which video moves better: smoother, more natural, physically plausible?"),
    "ta": ("Text alignment", "Which video matches the prompt better?"),
    "overall": ("Overall", "Overall, which video do you prefer?"),
}
ANSWER_MODES = ("abc", "gsb")
SIDES = ("left", "right")
ANSWERS = ("left", "right", "tie")
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class MethodSource:
    """Where one compared method's videos come from."""

    label: str
    model: str
    method: str
    run_id: str
    run_dir: str  # absolute, as given to `study create`
    videos_dir: str  # absolute


@dataclass(frozen=True)
class StudyVideo:
    id: str
    method: str  # a MethodSource label
    prompt_id: str
    prompt: str
    source: str  # relative to the method's videos_dir
    sha256: str  # of the source file
    media: str  # relative to the study folder: what the browser plays
    image: str | None = None  # image-to-video conditioning image, as the run's manifest gives it
    corrupted_from: str | None = None  # attention checks: the id of the video this one spoils


@dataclass(frozen=True)
class Item:
    id: str
    participant: str
    prompt_id: str
    left: str  # video ids
    right: str
    check: str | None = None  # attention check: the side ("left"/"right") showing the corrupted video


@dataclass(frozen=True)
class Participant:
    id: str
    items: tuple[str, ...]  # item ids in presentation order


@dataclass(frozen=True)
class Plan:
    study_id: str
    created: str
    suite: dict[str, Any]  # name, digest, prompts (as the runs' run.json records it)
    aspects: tuple[str, ...]
    answers: str  # "abc" (left / right / tie) or "gsb" (every pair holds the baseline)
    baseline: str  # a method label
    seed: int
    methods: dict[str, MethodSource]
    videos: dict[str, StudyVideo]
    items: dict[str, Item]
    participants: tuple[Participant, ...]
    settings: dict[str, Any] = field(default_factory=dict)  # per_participant, attention_checks, command, ...
    format: int = PLAN_FORMAT

    def participant(self, participant_id: str) -> Participant:
        for p in self.participants:
            if p.id == participant_id:
                return p
        raise KeyError(participant_id)

    def methods_of(self, item: Item) -> tuple[str, str]:
        """(left method, right method) of an item."""
        return self.videos[item.left].method, self.videos[item.right].method

    def to_json(self) -> str:
        data = asdict(self)
        data["participants"] = [{"id": p.id, "items": list(p.items)} for p in self.participants]
        data["aspects"] = list(self.aspects)
        return json.dumps(data, indent=1, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = PLAN_FILE) -> "Plan":
        try:
            data = json.loads(text)
            if data.get("format") != PLAN_FORMAT:
                raise VbenchPrefError(f"{where}: plan format {data.get('format')!r}, this version reads {PLAN_FORMAT}")
            return cls(
                study_id=str(data["study_id"]),
                created=str(data["created"]),
                suite=dict(data["suite"]),
                aspects=tuple(data["aspects"]),
                answers=str(data["answers"]),
                baseline=str(data["baseline"]),
                seed=int(data["seed"]),
                methods={k: MethodSource(**v) for k, v in data["methods"].items()},
                videos={k: StudyVideo(**v) for k, v in data["videos"].items()},
                items={k: Item(**v) for k, v in data["items"].items()},
                participants=tuple(Participant(p["id"], tuple(p["items"])) for p in data["participants"]),
                settings=dict(data.get("settings") or {}),
            )
        except VbenchPrefError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise VbenchPrefError(f"{where}: not a study plan ({type(exc).__name__}: {exc})") from None

    def check(self, where: str = PLAN_FILE) -> None:
        """Refuse a plan whose parts do not refer to each other (a hand-edited or truncated file)."""
        problems: list[str] = []
        if self.answers not in ANSWER_MODES:
            problems.append(f"answers {self.answers!r}")
        problems += [f"aspect {a!r}" for a in self.aspects if a not in ASPECTS]
        if self.baseline not in self.methods:
            problems.append(f"baseline {self.baseline!r} is not a method")
        for video in self.videos.values():
            if video.method not in self.methods:
                problems.append(f"video {video.id}: method {video.method!r}")
            if not ID_PATTERN.match(video.id) or Path(video.media).is_absolute() or ".." in Path(video.media).parts:
                problems.append(f"video {video.id}: id or media path")
        for item in self.items.values():
            if item.left not in self.videos or item.right not in self.videos or item.check not in (None, *SIDES):
                problems.append(f"item {item.id}")
            if not ID_PATTERN.match(item.id):
                problems.append(f"item id {item.id!r}")
        for p in self.participants:
            if not ID_PATTERN.match(p.id):
                problems.append(f"participant id {p.id!r}")
            problems += [f"participant {p.id}: item {i}" for i in p.items if self.items.get(i, None) is None
                         or self.items[i].participant != p.id]
        if problems:
            raise VbenchPrefError(f"{where}: inconsistent study plan: {'; '.join(problems[:3])}"
                                  + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""))


def load_plan(study: str | Path) -> Plan:
    """The plan of a study folder, checked; one-line errors for a missing or broken file."""
    folder = Path(study)
    file = folder / PLAN_FILE
    if not folder.is_dir():
        raise VbenchPrefError(f"{folder}: study folder not found")
    if not file.is_file():
        raise VbenchPrefError(f"{file}: file not found (is {folder} a study made by `vbench-pref study create`?)")
    plan = Plan.from_json(file.read_text(encoding="utf-8"), str(file))
    plan.check(str(file))
    return plan


def save_plan(plan: Plan, study: str | Path) -> Path:
    file = Path(study) / PLAN_FILE
    atomic_write_text(file, plan.to_json())
    return file


@dataclass(frozen=True)
class Tokens:
    """The secrets of a study: one per participant (their link) and one for the admin page."""

    participants: dict[str, str]  # participant id -> token
    admin: str

    def participant_of(self, token: str) -> str | None:
        import hmac

        found = None
        for participant, secret in self.participants.items():
            if hmac.compare_digest(secret.encode(), token.encode()):
                found = participant
        return found

    def is_admin(self, token: str) -> bool:
        import hmac

        return hmac.compare_digest(self.admin.encode(), token.encode())


def load_tokens(study: str | Path) -> Tokens:
    file = Path(study) / TOKENS_FILE
    if not file.is_file():
        raise VbenchPrefError(f"{file}: file not found (the study's tokens; made by `vbench-pref study create`)")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        return Tokens({str(k): str(v) for k, v in data["participants"].items()}, str(data["admin"]))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise VbenchPrefError(f"{file}: not a tokens file ({type(exc).__name__}: {exc})") from None


def save_tokens(tokens: Tokens, study: str | Path) -> Path:
    import os

    file = Path(study) / TOKENS_FILE
    atomic_write_text(file, json.dumps({"participants": tokens.participants, "admin": tokens.admin}, indent=1) + "\n")
    os.chmod(file, 0o600)
    return file
