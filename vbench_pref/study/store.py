"""The answers of a study in SQLite (``STUDY/answers.sqlite``): one row per (participant, item, aspect).

An item's answers are written in one transaction before the server shows the next item, and the primary key
makes a replayed or doubled request a no-op: the first answer to an item is the one that counts. WAL mode
lets the admin page and ``study results`` read while participants write.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

from vbench_pref.results import now_iso
from vbench_pref.study.plan import ANSWERS

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS answers (
    participant TEXT NOT NULL,
    item        TEXT NOT NULL,
    aspect      TEXT NOT NULL,
    answer      TEXT NOT NULL CHECK (answer IN ({", ".join(repr(a) for a in ANSWERS)})),
    answered_at TEXT NOT NULL,
    elapsed_ms  INTEGER,
    PRIMARY KEY (participant, item, aspect)
);
"""


@dataclass(frozen=True)
class Answer:
    participant: str
    item: str
    aspect: str
    answer: str  # "left" / "right" / "tie": sides as the participant saw them
    answered_at: str
    elapsed_ms: int | None


class AnswerStore:
    """Thread-safe access to one study's answers; one connection per thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=True)
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("PRAGMA synchronous=FULL")
            self._local.db = db
        return db

    def record(self, participant: str, item: str, answers: Mapping[str, str], elapsed_ms: int | None = None) -> bool:
        """Store one item's answers (aspect -> answer) at once; False when the item was already answered."""
        db = self._connect()
        stamp = now_iso()
        db.execute("BEGIN IMMEDIATE")
        try:
            done = db.execute(
                "SELECT 1 FROM answers WHERE participant = ? AND item = ? LIMIT 1", (participant, item)
            ).fetchone()
            if done is None:
                db.executemany(
                    "INSERT INTO answers VALUES (?, ?, ?, ?, ?, ?)",
                    [(participant, item, aspect, answer, stamp, elapsed_ms) for aspect, answer in answers.items()],
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return done is None

    def answered_items(self, participant: str) -> set[str]:
        rows = self._connect().execute("SELECT DISTINCT item FROM answers WHERE participant = ?", (participant,))
        return {row[0] for row in rows}

    def answered_counts(self) -> dict[str, int]:
        """Participant -> number of items answered."""
        rows = self._connect().execute("SELECT participant, COUNT(DISTINCT item) FROM answers GROUP BY participant")
        return {row[0]: int(row[1]) for row in rows}

    def last_answered(self) -> dict[str, str]:
        rows = self._connect().execute("SELECT participant, MAX(answered_at) FROM answers GROUP BY participant")
        return {row[0]: row[1] for row in rows}

    def answers(self) -> Iterator[Answer]:
        rows = self._connect().execute(
            "SELECT participant, item, aspect, answer, answered_at, elapsed_ms FROM answers "
            "ORDER BY participant, answered_at, item, aspect"
        )
        for row in rows:
            yield Answer(*row)

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


def open_answers(study: str | Path) -> AnswerStore:
    from vbench_pref.study.plan import ANSWERS_FILE

    return AnswerStore(Path(study) / ANSWERS_FILE)
