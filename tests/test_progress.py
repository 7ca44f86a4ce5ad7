"""Progress in a log file (not a terminal): plain lines with count, rate and ETA at a steady interval."""

from __future__ import annotations

import io
import logging
import re
import time

from rich.console import Console

from tests.test_cli import cli
from vbench_pref.cli import _progress
from vbench_pref.cli._progress import INTERVAL_ENV, Progress, progress_line

LINE = re.compile(r"^scoring: (\d+)/5 videos \(\d+%\), [\d.]+ (videos/s|s/video), elapsed \d+:\d\d:\d\d, (ETA \d+:\d\d:\d\d|done)$")


def _log() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=200), buffer


def test_progress_line_gives_count_rate_and_eta() -> None:
    assert progress_line("scoring", "video", 3, 12, 3, 6.0) == (
        "scoring: 3/12 videos (25%), 2.0 s/video, elapsed 0:00:06, ETA 0:00:18"
    )
    assert progress_line("training", "step", 60, 100, 50, 25.0, "loss 0.69") == (
        "training: 60/100 steps (60%), 2.00 steps/s, elapsed 0:00:25, ETA 0:00:20, loss 0.69"
    )
    assert progress_line("generating", "video", 4, 4, 4, 3725.0).endswith("elapsed 1:02:05, done")


def test_plain_lines_at_the_interval_and_a_last_line() -> None:
    console, buffer = _log()
    assert not console.is_terminal
    with Progress(console, interval=3600) as progress:
        task = progress.add("scoring", "video")
        progress.update(task, total=4)
        for _ in range(3):
            progress.advance(task)  # within the interval: no line
        assert buffer.getvalue() == ""
        progress.advance(task)
    lines = buffer.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scoring: 4/4 videos (100%), ") and lines[0].endswith("done")


def test_a_line_while_nothing_advances() -> None:
    console, buffer = _log()
    with Progress(console, interval=0.05) as progress:
        progress.add("training", "step", total=10, completed=2)
        time.sleep(0.5)
    lines = buffer.getvalue().splitlines()
    assert len(lines) >= 2 and all(line.startswith("training: 2/10 steps (20%), elapsed") for line in lines)


def test_interval_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv(INTERVAL_ENV, "0.5")
    assert Progress(_log()[0]).interval == 0.5
    monkeypatch.setenv(INTERVAL_ENV, "soon")
    try:
        Progress(_log()[0])
    except Exception as exc:  # noqa: BLE001 - the user's error, one line
        assert INTERVAL_ENV in str(exc) and type(exc).__name__ == "VbenchPrefError"
    else:
        raise AssertionError("a bad interval was accepted")


def test_a_slow_phase_is_announced_a_quick_one_is_not(monkeypatch) -> None:
    console, buffer = _log()
    monkeypatch.setattr(_progress, "stderr_console", console)
    monkeypatch.setenv(INTERVAL_ENV, "0.1")
    _progress.announce_stages()
    logger = logging.getLogger("vbench_pref.scoring")
    logger.info("loading evaluator quick")
    _progress._stages.settle()  # the phase ended before the interval
    logger.info("loading evaluator slow")
    time.sleep(0.35)
    _progress._stages.settle()
    lines = buffer.getvalue().splitlines()
    assert len(lines) >= 2 and all(re.fullmatch(r"loading evaluator slow \(0:00:00 so far\)", line) for line in lines)
    time.sleep(0.2)
    assert buffer.getvalue().splitlines() == lines  # nothing after the phase ended


def test_score_into_a_log_file_prints_progress_lines(videos, tmp_path) -> None:
    directory, _ = videos
    process = cli("score", "--videos", str(directory), "--out", str(tmp_path / "run"), "-e", "temporal_flicker",
                  "--chunk-videos", "1", "--device", "cpu", env={INTERVAL_ENV: "0"})
    assert process.returncode == 0, process.stderr
    lines = [line for line in process.stderr.splitlines() if line.startswith("scoring:")]
    assert [int(LINE.match(line).group(1)) for line in lines] == [1, 2, 3, 4, 5], process.stderr
    assert "ETA" in lines[0] and lines[-1].endswith("done")
    assert "loading evaluator temporal_flicker" in process.stderr


def test_a_terminal_keeps_the_rich_bar() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120)
    with Progress(console, interval=0) as progress:
        assert not progress.plain
        task = progress.add("training", "step", total=3, completed=1)
        progress.update(task, completed=2, status="loss 0.5")
        progress.advance(task)
    assert "training: " not in buffer.getvalue()  # no plain lines, the bar drew itself


def test_a_task_added_after_its_first_unit_counts_from_when_it_started() -> None:
    console, buffer = _log()
    with Progress(console, interval=0) as progress:
        task = progress.add("training", "step", total=4, completed=0, started=time.monotonic() - 10.0)
        progress.update(task, completed=1)
    assert buffer.getvalue().splitlines()[0].startswith("training: 1/4 steps (25%), 10.0 s/step, elapsed 0:00:10")
