"""Progress every command shows: rich bars on a terminal, plain timed lines in a log file.

A Slurm log or ``| tee`` is not a terminal, and a rich bar writes nothing there until it ends. There each
task prints one line -- count, rate, elapsed time and ETA -- every ``VBENCH_PREF_PROGRESS_INTERVAL``
seconds (default 15; 0: on every update), also while nothing advances, and a last line when it ends.
Slow phases (loading a model, loading evaluator weights) announce themselves through the ``vbench_pref``
logger; a log shows the announcement once the phase has lasted the interval, and again every interval, so it is
never silent for long.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress

from vbench_pref.cli._app import console as stderr_console
from vbench_pref.errors import VbenchPrefError

INTERVAL_ENV = "VBENCH_PREF_PROGRESS_INTERVAL"
DEFAULT_INTERVAL_S = 15.0


def interval_seconds() -> float:
    """Seconds between plain progress lines, from the environment."""
    text = os.environ.get(INTERVAL_ENV, "").strip()
    if not text:
        return DEFAULT_INTERVAL_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also refuses nan
        raise VbenchPrefError(f"{INTERVAL_ENV} must be a number of seconds >= 0; got {text!r}")
    return value


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def progress_line(label: str, unit: str, done: int, total: int | None, counted: int, elapsed: float,
                  status: str = "") -> str:
    """``scoring: 12/40 videos (30%), 1.50 videos/s, elapsed 0:00:08, ETA 0:00:19``.

    ``counted`` is what was done in ``elapsed`` (a resumed task starts with some done already).
    """
    text = f"{label}: {done}/{total if total is not None else '?'} {unit}s"
    if total:
        text += f" ({100 * done / total:.0f}%)"
    rate = counted / elapsed if counted > 0 and elapsed > 0 else None
    if rate is not None:
        text += f", {rate:.2f} {unit}s/s" if rate >= 1 else f", {1 / rate:.1f} s/{unit}"
    text += f", elapsed {duration(elapsed)}"
    if total is not None and done >= total:
        text += ", done"
    elif rate is not None and total is not None:
        text += f", ETA {duration((total - done) / rate)}"
    return text + (f", {status}" if status else "")


@dataclass
class _Task:
    label: str
    unit: str
    total: int | None
    done: int
    status: str = ""
    initial: int = 0
    started: float = field(default_factory=time.monotonic)
    last_line: float = field(default_factory=time.monotonic)
    ended: bool = False

    def line(self, now: float) -> str:
        return progress_line(self.label, self.unit, self.done, self.total, self.done - self.initial,
                             now - self.started, self.status)


class Progress:
    """Tasks with a count: a rich bar on a terminal, plain lines at a steady interval elsewhere."""

    def __init__(self, console: Console | None = None, plain: bool | None = None,
                 interval: float | None = None) -> None:
        self.console = console or stderr_console
        self.plain = (not self.console.is_terminal) if plain is None else plain
        self.interval = interval_seconds() if interval is None else interval
        self._tasks: dict[int, _Task] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bar = None if self.plain else RichProgress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), TextColumn("{task.fields[status]}"), console=self.console, transient=True,
        )

    def add(self, label: str, unit: str, total: int | None = None, completed: int = 0,
            started: float | None = None) -> int:
        """A new task counting ``unit``s (singular: video, step, pair); ``completed`` were done before.

        ``started`` (``time.monotonic()``) backdates a task added once its first unit is already under way.
        """
        if total is not None:
            _stages.settle()  # the work starts: the phase before it is over
        if self._bar is not None:
            return self._bar.add_task(label, total=total, completed=completed, status="")
        with self._lock:
            task_id = len(self._tasks)
            self._tasks[task_id] = _Task(label, unit, total, completed, initial=completed)
            if started is not None:
                self._tasks[task_id].started = started
        return task_id

    def update(self, task_id: int, *, total: int | None = None, completed: int | None = None, advance: int = 0,
               status: str | None = None) -> None:
        if self._bar is not None:
            fields: dict[str, Any] = {} if status is None else {"status": status}
            self._bar.update(task_id, total=total, completed=completed, advance=advance or None, **fields)
            return
        with self._lock:
            task = self._tasks[task_id]
            if total is not None:
                if task.total is None:  # the work starts now: loading before it is not part of the rate
                    task.started = task.last_line = time.monotonic()
                    _stages.settle()
                task.total = total
            if completed is not None:
                task.done = completed
            task.done += advance
            if status is not None:
                task.status = status
            now = time.monotonic()
            if task.total is not None and task.done >= task.total:
                self._end(task, now)
            elif now - task.last_line >= self.interval and (advance or completed is not None):
                self._print(task, now)

    def advance(self, task_id: int, steps: int = 1) -> None:
        self.update(task_id, advance=steps)

    def ticker(self, label: str, unit: str, total: int | None = None) -> Callable[[], None]:
        """A callback advancing a new task by one."""
        task_id = self.add(label, unit, total)
        return lambda: self.advance(task_id)

    def start(self) -> None:
        if self._bar is not None:
            self._bar.start()
        elif self.interval > 0 and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._heartbeat, name="progress", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        _stages.settle()
        if self._bar is not None:
            self._bar.stop()
            return
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        with self._lock:
            now = time.monotonic()
            for task in self._tasks.values():
                if task.done > task.initial:  # what a stopped task got through is worth a last line
                    self._end(task, now)

    def __enter__(self) -> "Progress":
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    def _heartbeat(self) -> None:
        # a line even when nothing advances (a long first batch): the log shows the run is alive
        while not self._stop.wait(min(self.interval, 1.0)):
            with self._lock:
                now = time.monotonic()
                for task in self._tasks.values():
                    if not task.ended and task.total is not None and now - task.last_line >= self.interval:
                        self._print(task, now)

    def _print(self, task: _Task, now: float) -> None:
        task.last_line = now
        self.console.print(task.line(now), highlight=False, markup=False, soft_wrap=True)

    def _end(self, task: _Task, now: float) -> None:
        if not task.ended:
            task.ended = True
            self._print(task, now)


class _StageHandler(logging.Handler):
    """Prints a phase's announcement: at once on a terminal; in a log once the phase has lasted the progress
    interval, and again every interval while it lasts.

    A phase that ends sooner -- the next phase or the work starts, or it fails at once on bad input -- stays
    silent in a log, so a quick failure is still one line.
    """

    def __init__(self) -> None:
        super().__init__()
        self._over: threading.Event | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.settle()
        message = record.getMessage()
        interval = 0.0 if stderr_console.is_terminal else interval_seconds()
        if interval <= 0:
            self._print(message)
            return
        self._over = threading.Event()
        threading.Thread(target=self._repeat, args=(message, interval, self._over), name="stage", daemon=True).start()

    def settle(self) -> None:
        """The announced phase is over: no more lines about it."""
        if self._over is not None:
            self._over.set()
            self._over = None

    def _repeat(self, message: str, interval: float, over: threading.Event) -> None:
        started = time.monotonic()
        while not over.wait(interval):
            self._print(f"{message} ({duration(time.monotonic() - started)} so far)")

    @staticmethod
    def _print(message: str) -> None:
        stderr_console.print(message, highlight=False, markup=False, soft_wrap=True)


_stages = _StageHandler()


def announce_stages() -> None:
    """Print the library's INFO messages (a slow phase starting) as lines; idempotent."""
    logger = logging.getLogger("vbench_pref")
    if _stages not in logger.handlers:
        logger.addHandler(_stages)
    logger.setLevel(logging.INFO)
    logger.propagate = False
