"""The study web app through Starlette's test client, and `vbench-pref study serve` as a process."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest
from starlette.testclient import TestClient

from tests.study_helpers import HandMadeStudy, make_study
from vbench_pref.study.plan import ANSWERS_FILE, PLAN_FILE, TOKENS_FILE
from vbench_pref.study.server import base_url, create_app, is_loopback, listen, static_dir


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> HandMadeStudy:
    return make_study(tmp_path_factory.mktemp("template") / "study")


@pytest.fixture
def study(template: HandMadeStudy, tmp_path: Path) -> HandMadeStudy:
    """A fresh copy of the hand-made study (3 participants, 3 pairs + 1 attention check each)."""
    folder = tmp_path / "study"
    shutil.copytree(template.folder, folder)
    return HandMadeStudy(folder, template.plan, template.tokens)


@pytest.fixture
def client(study: HandMadeStudy) -> Iterator[TestClient]:
    with TestClient(create_app(study.folder)) as c:
        yield c


def stored(study: HandMadeStudy) -> list[tuple[str, str, str, str, Any]]:
    """The answer rows, read straight from SQLite."""
    with sqlite3.connect(study.folder / ANSWERS_FILE) as db:
        return sorted(db.execute("SELECT participant, item, aspect, answer, elapsed_ms FROM answers").fetchall())


def body(item: str, vq: str = "left", overall: str = "tie", elapsed: int | None = 1200) -> dict[str, Any]:
    return {"item": item, "answers": {"vq": vq, "overall": overall}, "elapsed_ms": elapsed}


def post(client: TestClient, token: str, payload: Any, **headers: str):
    return client.post(f"/api/s/{token}/answer", json=payload, headers=headers)


# --- the participant's flow -----------------------------------------------------------------------------------


def test_a_participant_answers_every_item_and_the_rows_equal_the_answers(client: TestClient, study: HandMadeStudy) -> None:
    token, order = study.token("p01"), study.items("p01")
    choices = [("left", "tie"), ("right", "right"), ("tie", "left"), ("left", "left")]
    state = client.get(f"/api/s/{token}/state").json()
    assert state["participant"] == "p01" and state["total"] == len(order) == 4 and state["mode"] == "abc"
    assert [a["key"] for a in state["aspects"]] == ["vq", "overall"] and all(a["title"] and a["question"] for a in state["aspects"])
    expected = []
    for k, (vq, overall) in enumerate(choices):
        item = state["item"]
        assert (item["id"], item["position"], state["answered"]) == (order[k], k + 1, k)
        plan_item = study.plan.items[item["id"]]
        assert item["left"] == f"/media/{plan_item.left}.webm" and item["right"] == f"/media/{plan_item.right}.webm"
        assert item["prompt"] == study.plan.videos[plan_item.left].prompt
        for side in ("left", "right"):
            assert client.get(item[side]).status_code == 200
        reply = post(client, token, body(item["id"], vq, overall, 1000 + k))
        assert reply.status_code == 200 and reply.json()["recorded"] is True
        expected += [("p01", item["id"], "overall", overall, 1000 + k), ("p01", item["id"], "vq", vq, 1000 + k)]
        state = reply.json()
    assert state["item"] is None and state["answered"] == state["total"] == 4
    assert client.get(f"/api/s/{token}/state").json()["item"] is None
    assert stored(study) == sorted(expected)


def test_a_replayed_answer_counts_once_and_the_first_one_stays(client: TestClient, study: HandMadeStudy) -> None:
    token, first = study.token("p02"), study.items("p02")[0]
    one = post(client, token, body(first, "left", "left"))
    two = post(client, token, body(first, "left", "left"))
    changed = post(client, token, body(first, "right", "right"))
    assert [r.status_code for r in (one, two, changed)] == [200, 200, 200]
    assert [r.json()["recorded"] for r in (one, two, changed)] == [True, False, False]
    assert two.json()["item"]["id"] == study.items("p02")[1]  # the replay answers with the current state
    assert [row[3] for row in stored(study)] == ["left", "left"]


def test_concurrent_answers_are_neither_lost_nor_duplicated(client: TestClient, study: HandMadeStudy) -> None:
    # every item of every participant posted 4 times at once, twice with other answers
    jobs = [(p.id, item, copy) for p in study.plan.participants for item in p.items for copy in range(4)]
    choice = {0: ("left", "tie"), 1: ("left", "tie"), 2: ("right", "right"), 3: ("tie", "left")}

    def send(job: tuple[str, str, int]):
        participant, item, copy = job
        vq, overall = choice[copy]
        reply = post(client, study.token(participant), body(item, vq, overall, copy))
        assert reply.status_code == 200, reply.text
        return participant, item, copy, reply.json()["recorded"]

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(send, jobs))
    winners = {(p, i): copy for p, i, copy, recorded in results if recorded}
    assert len(winners) == len(study.plan.items) == sum(recorded for *_, recorded in results)
    rows = stored(study)
    assert len(rows) == 2 * len(study.plan.items)
    for participant, item, aspect, answer, elapsed in rows:
        copy = winners[participant, item]
        assert elapsed == copy and answer == dict(zip(("vq", "overall"), choice[copy]))[aspect]
    for p in study.plan.participants:
        state = client.get(f"/api/s/{study.token(p.id)}/state").json()
        assert state["item"] is None and state["answered"] == len(p.items)


def test_a_reload_resumes_at_the_first_unanswered_item(client: TestClient, study: HandMadeStudy) -> None:
    token, order = study.token("p03"), study.items("p03")
    for item in (order[0], order[1], order[3]):  # the last one out of order, as a second tab might
        assert post(client, token, body(item)).json()["recorded"] is True
    state = client.get(f"/api/s/{token}/state").json()
    assert (state["item"]["id"], state["item"]["position"], state["answered"]) == (order[2], 3, 3)
    with TestClient(create_app(study.folder)) as restarted:  # the server restarted in between
        again = restarted.get(f"/api/s/{token}/state").json()
    assert again["item"]["id"] == order[2]
    assert client.get(f"/api/s/{study.token('p01')}/state").json()["item"]["id"] == study.items("p01")[0]


def test_gsb_studies_say_so(tmp_path: Path) -> None:
    gsb = make_study(tmp_path / "gsb", participants=1, prompts=1, aspects=("overall",), answers="gsb",
                     attention_check=False)
    with TestClient(create_app(gsb.folder)) as c:
        state = c.get(f"/api/s/{gsb.token('p01')}/state").json()
        assert state["mode"] == "gsb" and [a["key"] for a in state["aspects"]] == ["overall"]
        reply = c.post(f"/api/s/{gsb.token('p01')}/answer",
                       json={"item": state["item"]["id"], "answers": {"overall": "right"}, "elapsed_ms": None})
        assert reply.status_code == 200 and reply.json()["item"] is None


# --- refusals -------------------------------------------------------------------------------------------------


def test_unknown_tokens_get_a_404_that_reveals_nothing(client: TestClient, study: HandMadeStudy) -> None:
    participant, admin = study.token("p01"), study.tokens.admin
    wrong = participant[:-1] + ("A" if participant[-1] != "A" else "B")
    pages = [f"/s/{wrong}", f"/s/{admin}", f"/admin/{participant}", f"/admin/{wrong}", "/s/..", "/s/" + "x" * 300]
    for path in pages:
        reply = client.get(path)
        assert reply.status_code == 404 and reply.text == "Not Found", path
    apis = [f"/api/s/{wrong}/state", f"/api/s/{admin}/state", f"/api/admin/{participant}/progress", "/api/s/%00/state"]
    for path in apis:
        reply = client.get(path)
        assert reply.status_code == 404 and reply.json() == {"error": "not found"}, path
    assert post(client, wrong, body(study.items("p01")[0])).status_code == 404
    assert stored(study) == []
    assert client.get(f"/s/{participant}").status_code == 200 and client.get(f"/admin/{admin}").status_code == 200


def test_items_and_videos_that_do_not_exist_are_404(client: TestClient, study: HandMadeStudy) -> None:
    token = study.token("p01")
    for item in (study.items("p02")[0], "no-such-item", "../p01-0", "p01-0/../p01-1", "x" * 65):
        assert post(client, token, body(item)).status_code == 404, item
    assert stored(study) == []
    known = next(iter(study.plan.videos))
    for path in ("/media/0123456789abcdef.webm", f"/media/{known}.mp4", f"/media/{known}", f"/media/{known}.webm.webm",
                 f"/media/{'a' * 65}.webm", "/media/.webm"):
        assert client.get(path).status_code == 404, path


async def _raw_get(app, path: str, raw_path: bytes) -> tuple[int, bytes]:
    """Call the ASGI app with a path exactly as a server would hand it over (no client-side normalisation)."""
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": raw_path, "root_path": "", "query_string": b"", "headers": [(b"host", b"testserver")],
             "server": ("testserver", 80), "client": ("127.0.0.1", 1234)}
    await app(scope, receive, send)
    status = next(m["status"] for m in messages if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")


PATH_TRICKS = [
    "/media/../study.json", "/media/..%2fstudy.json", "/media/..%2Fstudy.json", "/media/%2e%2e%2fstudy.json",
    "/media/..%2f..%2f..%2fetc%2fpasswd", "/media/%2Fetc%2Fpasswd", "/media//etc/passwd", "/media/study.json",
    "/media/tokens.json", "/media/answers.sqlite", "/media/..\\study.json", "/static/../study.json",
    "/static/..%2fstudy.json", "/static/..%2f..%2fserver.py", "/study.json", "/tokens.json", "/answers.sqlite",
    "/media/%2e%2e/tokens.json", "/s/..%2ftokens.json", "/api/s/..%2f..%2ftokens.json/state",
    "/static/__init__.py", "/static/..%2f__init__.py", "/static/", "/static/nope.js",
]


def test_path_tricks_never_reach_a_file(client: TestClient, study: HandMadeStudy) -> None:
    from urllib.parse import unquote

    app = client.app
    secrets = [study.tokens.admin.encode(), study.token("p01").encode(), b"SQLite format 3", b'"study_id"', b"root:"]
    os.close(os.open(study.folder / ANSWERS_FILE, os.O_RDONLY))  # the database exists by now
    assert (study.folder / PLAN_FILE).is_file() and (study.folder / TOKENS_FILE).is_file()
    for trick in PATH_TRICKS:
        # as a client sends it, and as uvicorn hands it to the app (percent-decoded path, raw bytes kept)
        reply = client.get(trick)
        status, content = asyncio.run(_raw_get(app, unquote(trick), trick.encode()))
        for code, data in ((reply.status_code, reply.content), (status, content)):
            assert code in (404, 405), (trick, code)
            assert not any(s in data for s in secrets), trick
    absolute = str((study.folder / TOKENS_FILE).resolve())
    status, content = asyncio.run(_raw_get(app, "/media/" + absolute, b"/media/" + absolute.encode()))
    assert status == 404 and study.tokens.admin.encode() not in content


def test_cross_site_posts_are_refused(client: TestClient, study: HandMadeStudy) -> None:
    token, item = study.token("p01"), study.items("p01")[0]
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "http://testserver:8001"}, {"Origin": "null"},
                    {"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://testserver", "Sec-Fetch-Site": "cross-site"}):
        reply = post(client, token, body(item), **headers)
        assert reply.status_code == 403, headers
    assert stored(study) == []
    same = post(client, token, body(item), Origin="http://testserver", **{"Sec-Fetch-Site": "same-origin"})
    assert same.status_code == 200 and same.json()["recorded"] is True


def test_answers_must_be_sent_as_json(client: TestClient, study: HandMadeStudy) -> None:
    token, item = study.token("p01"), study.items("p01")[0]
    text = json.dumps(body(item))
    url = f"/api/s/{token}/answer"
    assert client.post(url, content=text, headers={"Content-Type": "text/plain"}).status_code == 415
    assert client.post(url, data={"item": item}).status_code == 415
    assert client.post(url, content=text).status_code == 415
    assert client.get(url).status_code == 405
    assert stored(study) == []
    assert client.post(url, content=text, headers={"Content-Type": "application/json; charset=utf-8"}).status_code == 200


BAD_BODIES = [
    ["not", "an", "object"],
    "just a string",
    {"item": "X", "answers": {"vq": "left"}, "elapsed_ms": 1},  # missing aspect (item filled in below)
    {"item": "X", "answers": {"vq": "left", "overall": "tie", "mq": "left"}, "elapsed_ms": 1},
    {"item": "X", "answers": {"vq": "A", "overall": "tie"}, "elapsed_ms": 1},
    {"item": "X", "answers": {"vq": 1, "overall": "tie"}, "elapsed_ms": 1},
    {"item": "X", "answers": {"vq": None, "overall": "tie"}, "elapsed_ms": 1},
    {"item": "X", "answers": [["vq", "left"], ["overall", "tie"]], "elapsed_ms": 1},
    {"item": 3, "answers": {"vq": "left", "overall": "tie"}, "elapsed_ms": 1},
    {"answers": {"vq": "left", "overall": "tie"}, "elapsed_ms": 1},
    {"item": "X", "answers": {"vq": "left", "overall": "tie"}, "elapsed_ms": 1, "participant": "p02"},
    {"item": "X", "answers": {"vq": "left", "overall": "tie"}, "elapsed_ms": -1},
    {"item": "X", "answers": {"vq": "left", "overall": "tie"}, "elapsed_ms": 10**12},
    {"item": "X", "answers": {"vq": "left", "overall": "tie"}, "elapsed_ms": 1.5},
    {"item": "X", "answers": {"vq": "left", "overall": "tie"}, "elapsed_ms": True},
    {"item": "X", "answers": {"vq": "left", "overall": "tie"}, "elapsed_ms": "100"},
]


@pytest.mark.parametrize("bad", range(len(BAD_BODIES)))
def test_bad_bodies_are_refused_with_422(client: TestClient, study: HandMadeStudy, bad: int) -> None:
    payload = json.loads(json.dumps(BAD_BODIES[bad]).replace('"X"', json.dumps(study.items("p01")[0])))
    reply = post(client, study.token("p01"), payload)
    assert reply.status_code == 422 and reply.json()["error"], payload
    assert stored(study) == []


def test_unreadable_and_oversized_bodies_are_refused(client: TestClient, study: HandMadeStudy) -> None:
    url = f"/api/s/{study.token('p01')}/answer"
    json_type = {"Content-Type": "application/json"}
    assert client.post(url, content=b"{not json", headers=json_type).status_code == 422
    assert client.post(url, content=b"\xff\xfe", headers=json_type).status_code == 422
    huge = json.dumps({**body(study.items("p01")[0]), "pad": "x" * 100_000})
    assert client.post(url, content=huge, headers=json_type).status_code == 413
    assert stored(study) == []


# --- media, headers, admin ------------------------------------------------------------------------------------


def test_videos_are_served_with_range_requests(client: TestClient, study: HandMadeStudy) -> None:
    vid, video = next(iter(study.plan.videos.items()))
    data = (study.folder / video.media).read_bytes()
    full = client.get(f"/media/{vid}.webm")
    assert full.status_code == 200 and full.content == data and full.headers["content-type"] == "video/webm"
    assert full.headers["accept-ranges"] == "bytes"
    part = client.get(f"/media/{vid}.webm", headers={"Range": "bytes=10-29"})
    assert part.status_code == 206 and part.content == data[10:30]
    assert part.headers["content-range"] == f"bytes 10-29/{len(data)}"
    tail = client.get(f"/media/{vid}.webm", headers={"Range": "bytes=-16"})
    assert tail.status_code == 206 and tail.content == data[-16:]
    beyond = client.get(f"/media/{vid}.webm", headers={"Range": f"bytes={len(data) + 10}-"})
    assert beyond.status_code == 416


def test_every_response_carries_the_security_headers(client: TestClient, study: HandMadeStudy) -> None:
    token, admin, vid = study.token("p01"), study.tokens.admin, next(iter(study.plan.videos))
    uncached = [f"/s/{token}", f"/api/s/{token}/state", f"/admin/{admin}", f"/api/admin/{admin}/progress",
                "/api/s/nope/state", "/s/nope"]
    for path in [*uncached, f"/media/{vid}.webm", "/static/study.js", "/nowhere", "/media/nope.webm"]:
        headers = client.get(path).headers
        assert headers["content-security-policy"] == "default-src 'self'", path
        assert headers["x-frame-options"] == "DENY" and headers["referrer-policy"] == "no-referrer", path
        assert headers["x-content-type-options"] == "nosniff"
        if path in uncached:
            assert headers["cache-control"] == "no-store", path
    assert post(client, token, body(study.items("p01")[0])).headers["cache-control"] == "no-store"


def test_pages_load_only_their_own_scripts_and_styles(client: TestClient, study: HandMadeStudy) -> None:
    pages = {f"/s/{study.token('p01')}": "study.js", f"/admin/{study.tokens.admin}": "admin.js"}
    for path, script in pages.items():
        html = client.get(path).text
        assert f'src="/static/{script}"' in html
        # CSP default-src 'self' blocks inline scripts, inline handlers and style attributes
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) and not re.search(r"\son\w+=", html)
        assert " style=" not in html and "<style" not in html and "http" not in html.replace("http-equiv", "")
        for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
            assert client.get(asset).status_code == 200, asset
    names = {p.name for p in static_dir().iterdir()}
    assert {"study.html", "study.js", "admin.html", "admin.js", "browse.html", "browse.js", "player.js", "style.css"} <= names


def test_admin_progress_counts_answers_and_failed_attention_checks(client: TestClient, study: HandMadeStudy) -> None:
    admin = study.tokens.admin
    empty = client.get(f"/api/admin/{admin}/progress").json()
    assert empty["study_id"] == study.plan.study_id and (empty["answered"], empty["total"]) == (0, 12)
    p01 = study.items("p01")
    check = next(i for i in p01 if study.plan.items[i].check is not None)
    comparison = next(i for i in p01 if study.plan.items[i].check is None)
    post(client, study.token("p01"), body(check, vq="right", overall="right"))  # prefers the spoiled video: fails
    post(client, study.token("p01"), body(comparison))
    passed = next(i for i in study.items("p02") if study.plan.items[i].check is not None)
    post(client, study.token("p02"), body(passed, vq="left", overall="left"))
    progress = client.get(f"/api/admin/{admin}/progress").json()
    rows = {r["id"]: r for r in progress["participants"]}
    assert list(rows) == ["p01", "p02", "p03"] and (progress["answered"], progress["total"]) == (3, 12)
    assert [(r["answered"], r["total"], r["failed_checks"]) for r in rows.values()] == [(2, 4, 1), (1, 4, 0), (0, 4, 0)]
    assert rows["p01"]["last_answered"] and rows["p02"]["last_answered"] and rows["p03"]["last_answered"] is None
    page = client.get(f"/admin/{admin}")
    assert page.status_code == 200 and "admin.js" in page.text and "text/html" in page.headers["content-type"]


# --- the command ----------------------------------------------------------------------------------------------


def test_serve_refuses_a_folder_that_is_not_a_study(tmp_path: Path, run_cli) -> None:
    for folder in (tmp_path / "missing", tmp_path):
        done = run_cli(tmp_path, "study", "serve", str(folder))
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and "error:" in done.stderr, done.stderr


def test_serve_refuses_a_port_in_use_and_a_bad_host(study: HandMadeStudy, tmp_path: Path, run_cli) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = run_cli(tmp_path, "study", "serve", str(study.folder), "--port", str(port))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "in use" in done.stderr, done.stderr
    for host in ("not a host!", "-x", "256.1.1.1.1"):
        done = run_cli(tmp_path, "study", "serve", str(study.folder), "--host", host, "--port", "8765")
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and "--host" in done.stderr, (host, done.stderr)


def test_listening_off_loopback_is_told(capsys: pytest.CaptureFixture[str]) -> None:
    from vbench_pref.cli.study_serve_cmd import warn_if_exposed

    with listen("127.0.0.1", 0) as local, listen("0.0.0.0", 0) as everywhere:
        assert is_loopback(local) and not is_loopback(everywhere)
        warn_if_exposed(local, "127.0.0.1")
        assert capsys.readouterr().err == ""
        warn_if_exposed(everywhere, "0.0.0.0")
        err = capsys.readouterr().err
        assert err.startswith("warning: listening on 0.0.0.0") and err.count("\n") == 1
    assert base_url("::1", 80) == "http://[::1]:80"


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_answers_until_stopped(study: HandMadeStudy, stop: signal.Signals) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "vbench_pref", "study", "serve", str(study.folder), "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"})
    try:
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)
        reader.start()
        for _ in range(300):
            if any("admin page:" in line for line in lines) or process.poll() is not None:
                break
            threading.Event().wait(0.1)
        admin_line = next(line for line in lines if "admin page:" in line)
        assert admin_line.strip().endswith(f"http://127.0.0.1:{port}/admin/{study.tokens.admin}")
        assert any(f"vbench-pref study invite {study.folder}" in line for line in lines)
        url = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{url}/api/s/{study.token('p01')}/state", timeout=10) as reply:
            item = json.loads(reply.read())["item"]["id"]
        request = urllib.request.Request(f"{url}/api/s/{study.token('p01')}/answer", method="POST",
                                         data=json.dumps(body(item)).encode(), headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as reply:
            assert json.loads(reply.read())["recorded"] is True
        process.send_signal(stop)
        assert process.wait(timeout=30) == 0
        reader.join(timeout=5)
        assert "stopped" in "".join(lines) and process.stderr.read() == ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert len(stored(study)) == 2
