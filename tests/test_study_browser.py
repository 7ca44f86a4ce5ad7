"""A study in a real browser: headless Chromium (the operating system's package) driven by Playwright.

Two eval runs of the built-in tiny models -> ``study create`` -> the study served on the loopback address ->
three participants click through it (one with the keyboard, one reloading mid-way) -> ``study results`` and
the leaderboard give back exactly what they clicked. The run browser is sorted, filtered and compared in
the same browser. Screenshots go to $VBENCH_PREF_SCREENSHOTS when set (else the test's temporary folder).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd
import pytest

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ASPECTS = ("vq", "mq", "ta", "overall")
WAN, COG = "builtin:tiny-wan (random weights)", "builtin:tiny-cogvideox (random weights)"


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


CHROMIUM = chromium_binary()
if CHROMIUM is None:
    pytest.skip("no Chromium on this machine (Debian: apt-get install chromium; .ci/run installs it)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, run_cli: Callable[..., Any]) -> Path:
    """Two eval runs of tiny models on the demo suite and a study of them: 3 participants, 4 pairs + 1 check."""
    folder = tmp_path_factory.mktemp("browser-study")
    for model, out in (("tiny-wan", "wan"), ("tiny-cogvideox", "cog")):
        result = run_cli(folder, "eval", "--model", f"builtin:{model}", "--prompts", "demo", "--out", out)
        assert result.returncode == 0, result.stderr
    result = run_cli(folder, "study", "create", "--runs", "wan", "--runs", "cog", "--out", "study",
                     "--participants", "3", "--per-participant", "4", "--attention-checks", "1", "--seed", "3")
    assert result.returncode == 0, result.stderr
    return folder


@pytest.fixture(scope="module")
def server(workdir: Path) -> Iterator[str]:
    """The study and the run browser on 127.0.0.1 (a free port), in a thread of this process."""
    import uvicorn

    from vbench_pref.study.server import create_app

    app = create_app(study=workdir / "study", runs=[workdir / "wan", workdir / "cog"], cache=workdir / "cache")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    instance = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=instance.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not instance.started:
        threading.Event().wait(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    instance.should_exit = True
    thread.join(timeout=30)
    sock.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("VBENCH_PREF_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def plan_of(workdir: Path) -> dict[str, Any]:
    return json.loads((workdir / "study" / "study.json").read_text(encoding="utf-8"))


def tokens_of(workdir: Path) -> dict[str, Any]:
    return json.loads((workdir / "study" / "tokens.json").read_text(encoding="utf-8"))


# What each simulated participant prefers, per aspect, by method: a method label, or "tie".
PREFERENCES = {
    "p01": {aspect: WAN for aspect in ASPECTS},
    "p02": {"vq": COG, "mq": "tie", "ta": WAN, "overall": COG},
    "p03": {"vq": WAN, "mq": COG, "ta": "tie", "overall": WAN},
}


def side_for(plan: dict[str, Any], item_id: str, wanted: str) -> str:
    """The side a participant clicks to prefer ``wanted``; on an attention check, the unspoiled video."""
    item = plan["items"][item_id]
    if item["check"] is not None:
        return "right" if item["check"] == "left" else "left"
    if wanted == "tie":
        return "tie"
    return "left" if plan["videos"][item["left"]]["method"] == wanted else "right"


def assert_both_videos_play(page: Any) -> None:
    """Both videos decoded (the browser plays this format), advance when played and stay together."""
    page.wait_for_selector("#video-left[data-ready=true]")
    page.wait_for_selector("#video-right[data-ready=true]")
    # muted videos start on their own; then both advance
    page.wait_for_function(
        "() => [...document.querySelectorAll('#video-left, #video-right')].every(v => v.currentTime > 0.05 && !v.paused)"
    )
    state = page.evaluate(
        "() => [...document.querySelectorAll('#video-left, #video-right')].map(v => ({error: v.error && v.error.code, "
        "width: v.videoWidth, ready: v.readyState}))"
    )
    for video in state:
        assert video["error"] is None and video["width"] > 0 and video["ready"] >= 2, state
    # one button pauses both, one seek bar moves both to the same time
    page.click("#play")
    page.wait_for_function("() => [...document.querySelectorAll('#video-left, #video-right')].every(v => v.paused)")
    page.fill("#seek", "500")
    page.wait_for_function(
        "() => { const v = [...document.querySelectorAll('#video-left, #video-right')];"
        " const half = Math.min(...v.map(x => x.duration)) / 2;"
        " return v.every(x => Math.abs(x.currentTime - half) < 0.05); }"
    )
    page.click("#play")


def answer_item(page: Any, plan: dict[str, Any], participant: str, use_keyboard: bool) -> tuple[str, dict[str, str]]:
    item_id = page.get_attribute("#item", "data-item-id")
    sides = {aspect: side_for(plan, item_id, PREFERENCES[participant][aspect]) for aspect in plan["aspects"]}
    assert page.is_disabled("#submit")
    for aspect in plan["aspects"]:
        if use_keyboard:
            page.keyboard.press({"left": "1", "tie": "2", "right": "3"}[sides[aspect]])
        else:
            page.click(f"[data-testid=answer-{aspect}-{sides[aspect]}]")
    for aspect in plan["aspects"]:
        assert page.is_checked(f"#answer-{aspect}-{sides[aspect]}"), (aspect, sides)
    position = int(page.get_attribute("#item", "data-position"))
    if use_keyboard:
        page.keyboard.press("Enter")
    else:
        page.click("#submit")
    page.wait_for_function(
        f"() => document.body.dataset.state === 'finished' || "
        f"document.getElementById('item').dataset.position === '{position + 1}'"
    )
    return item_id, sides


@pytest.fixture(scope="module")
def clicked(workdir: Path, server: str, browser: Any, shots: Path) -> dict[str, dict[str, dict[str, str]]]:
    """Three participants complete the study by clicking; participant -> item -> aspect -> side clicked."""
    plan, tokens = plan_of(workdir), tokens_of(workdir)
    clicks: dict[str, dict[str, dict[str, str]]] = {}
    for participant in ("p01", "p02", "p03"):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.goto(f"{server}/s/{tokens['participants'][participant]}")
        total = len(plan["participants"][int(participant[1:]) - 1]["items"])
        clicks[participant] = {}
        while True:
            page.wait_for_selector("body[data-state=item], body[data-state=finished]")
            if page.get_attribute("body", "data-state") == "finished":
                break
            assert_both_videos_play(page)
            done = len(clicks[participant])
            assert page.text_content("#progress-text").strip() == f"{done} / {total}"
            if participant == "p01" and done == 0:
                page.screenshot(path=str(shots / "study.png"), full_page=True)
            item_id, sides = answer_item(page, plan, participant, use_keyboard=participant == "p03")
            clicks[participant][item_id] = sides
            if participant == "p02" and len(clicks[participant]) == 2:
                # the participant closes the tab and opens the link again: the study resumes where it stopped
                page.close()
                page = context.new_page()
                page.goto(f"{server}/s/{tokens['participants'][participant]}")
                page.wait_for_selector("body[data-state=item]")
                assert page.get_attribute("#item", "data-position") == "3"
                assert page.text_content("#progress-text").strip() == f"2 / {total}"
        assert page.is_visible("#thanks")
        assert len(clicks[participant]) == total
        assert not errors, errors
        context.close()
    return clicks


def test_three_participants_complete_the_study_and_the_database_holds_their_clicks(
    workdir: Path, clicked: dict[str, dict[str, dict[str, str]]]
) -> None:
    from vbench_pref.study.store import open_answers

    stored = {(a.participant, a.item, a.aspect): a.answer for a in open_answers(workdir / "study").answers()}
    expected = {(p, item, aspect): side for p, items in clicked.items()
                for item, sides in items.items() for aspect, side in sides.items()}
    assert stored == expected


def expected_counts(plan: dict[str, Any], clicks: dict[str, dict[str, dict[str, str]]]) -> dict[str, Counter]:
    """Per aspect: how often tiny-cogvideox won, tied and lost against tiny-wan in the clicks (checks left out)."""
    counts: dict[str, Counter] = {aspect: Counter() for aspect in ASPECTS}
    for items in clicks.values():
        for item_id, sides in items.items():
            item = plan["items"][item_id]
            if item["check"] is not None:
                continue
            for aspect, side in sides.items():
                if side == "tie":
                    counts[aspect]["tie"] += 1
                else:
                    chosen = plan["videos"][item[side]]["method"]
                    counts[aspect]["win" if chosen == COG else "loss"] += 1
    return counts


def test_results_and_leaderboard_equal_the_clicks(
    workdir: Path, clicked: dict[str, dict[str, dict[str, str]]], run_cli: Callable[..., Any], shots: Path
) -> None:
    result = run_cli(workdir, "study", "results", "study", "--out", "results", "--bootstrap", "200")
    assert result.returncode == 0, result.stderr
    plan = plan_of(workdir)
    counts = expected_counts(plan, clicked)
    table = pd.read_csv(workdir / "results" / "win_rates.csv")
    for aspect in ASPECTS:
        row = table[table["aspect"] == aspect].iloc[0]
        n = sum(counts[aspect].values())
        assert row["n"] == n
        # the row's orientation: its first method is the one its win % is for
        # the row is seen from method_a: the non-baseline method (the first run is the baseline)
        assert (row["method_a"], row["method_b"]) == (COG, WAN)
        assert row["win_pct"] == pytest.approx(100 * counts[aspect]["win"] / n, abs=1e-3)
        assert row["tie_pct"] == pytest.approx(100 * counts[aspect]["tie"] / n, abs=1e-3)
        assert row["loss_pct"] == pytest.approx(100 * counts[aspect]["loss"] / n, abs=1e-3)
        assert row["win_pct_low"] <= row["win_pct"] <= row["win_pct_high"]
    shutil.copy(workdir / "results" / "user_study.png", shots / "results.png")

    board = run_cli(workdir, "leaderboard", "wan/run", "cog/run", "--study", "study", "--out", "board")
    assert board.returncode == 0, board.stderr
    rows = pd.read_csv(workdir / "board.csv")
    cog = rows[rows["model"] == COG].iloc[0]
    for aspect in ASPECTS:
        n = sum(counts[aspect].values())
        win_rate = (counts[aspect]["win"] + counts[aspect]["tie"] / 2) / n
        assert cog[f"user_study.{aspect}"] == pytest.approx(win_rate)
        assert not pd.isna(cog["temporal_flicker"])  # the study's columns sit on the eval run's row
    assert "study:" in (workdir / "board.md").read_text(encoding="utf-8")


def test_the_admin_page_shows_live_progress(workdir: Path, server: str, browser: Any, clicked: Any, shots: Path) -> None:
    plan, tokens = plan_of(workdir), tokens_of(workdir)
    page = browser.new_page(viewport={"width": 1280, "height": 600})
    page.goto(f"{server}/admin/{tokens['admin']}")
    page.wait_for_function("() => document.body.innerText.includes('p03')")
    text = page.inner_text("body")
    for participant in plan["participants"]:
        assert participant["id"] in text
    total = sum(len(p["items"]) for p in plan["participants"])
    assert f"{total} / {total}" in text
    page.screenshot(path=str(shots / "admin.png"), full_page=True)
    page.close()


def test_the_run_browser_sorts_filters_and_compares(workdir: Path, server: str, browser: Any, shots: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{server}/browse")
    page.wait_for_selector("body[data-state=ready]")
    assert page.locator("#videos tr[data-testid=row]").count() == 10  # 5 prompts x 2 runs

    def column(name: str) -> list[float]:
        return [float(x) for x in page.locator(f"#videos td[data-column='{name}']").all_inner_texts()]

    header = "[data-testid='sort-temporal_flicker']"
    page.click(header)
    page.wait_for_selector(f"{header}[aria-sort]")
    first_order = page.get_attribute(header, "aria-sort")
    first = column("temporal_flicker")
    assert first == sorted(first, reverse=first_order == "descending")
    page.click(header)
    page.wait_for_selector(f"{header}[aria-sort]:not([aria-sort='{first_order}'])")
    page.wait_for_selector("body[data-state=ready]")
    second = column("temporal_flicker")
    assert second == sorted(first, reverse=first_order != "descending")
    page.screenshot(path=str(shots / "browse.png"), full_page=True)

    page.fill("#filter-prompt", "corgi")
    page.wait_for_function("() => document.querySelectorAll('#videos tr[data-testid=row]').length === 2")
    for prompt in page.locator("#videos tr[data-testid=row]").evaluate_all("rows => rows.map(r => r.dataset.prompt)"):
        assert "corgi" in prompt.lower()

    page.click("#videos tr[data-testid=row] [data-testid=compare-row]")
    page.wait_for_selector("#compare-video-a")
    page.wait_for_function(
        "() => ['compare-video-a', 'compare-video-b'].every(id => { const v = document.getElementById(id);"
        " return v && v.readyState >= 2 && v.videoWidth > 0 && !v.error; })"
    )
    page.screenshot(path=str(shots / "compare.png"), full_page=True)
    page.close()
