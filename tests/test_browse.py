"""The run browser: runs read from disk, sorted, filtered, paged and compared; MP4s transcoded to WebM once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.study_helpers import make_run, make_study
from vbench_pref.errors import VbenchPrefError
from vbench_pref.study import media
from vbench_pref.study.browse import Catalog, RunSource, method_labels
from vbench_pref.study.server import create_app

EBML = b"\x1a\x45\xdf\xa3"  # the first bytes of every WebM file

BASE = {  # H.264 videos in an eval --out folder
    "cat": ("A cat on a sofa", {"clip": 0.30, "flicker": 0.9}),
    "dog": ("a DOG running", {"clip": 0.10, "flicker": None}),
    "sea": ("The sea at night", {"clip": 0.50, "flicker": 0.7}),
}
DPO = {  # WebM videos in a run folder, one more score column
    "cat": ("A cat on a sofa", {"clip": 0.40, "aesthetic": 5.0}),
    "dog": ("a DOG running", {"clip": None, "aesthetic": 4.0}),
    "sea": ("The sea at night", {"clip": 0.20, "aesthetic": None}),
    "car": ("a red car", {"clip": 0.35, "aesthetic": 6.0}),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("runs")
    return [make_run(root / "base-eval", "base", BASE, layout="eval"),
            make_run(root / "dpo-run", "dpo", DPO, layout="run", suffix=".webm", seed=1)]


@pytest.fixture
def client(runs: list[Path], tmp_path: Path) -> TestClient:
    return TestClient(create_app(runs=runs, cache=tmp_path / "cache"))


def videos(client: TestClient, **params: object) -> dict:
    reply = client.get("/api/browse/videos", params={k: str(v) for k, v in params.items()})
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_every_video_is_listed_with_its_prompt_and_scores(client: TestClient) -> None:
    data = videos(client)
    assert data["columns"] == ["clip", "flicker", "aesthetic"] and data["methods"] == ["base", "dpo"]
    assert data["total"] == 7 and len(data["rows"]) == 7
    dog = next(r for r in data["rows"] if r["method"] == "base" and r["prompt"] == "a DOG running")
    assert dog["scores"] == {"clip": 0.10, "flicker": None, "aesthetic": None}
    assert dog["video"] == f"/media/{dog['id']}.webm" and dog["prompt_id"].startswith("p-")
    assert all(len(r["id"]) == 24 and "dog" not in r["id"] for r in data["rows"])  # opaque: no file names
    assert len({r["id"] for r in data["rows"]}) == 7
    assert client.get("/browse").status_code == 200 and "browse.js" in client.get("/browse").text
    assert client.get("/", follow_redirects=False).headers["location"] == "/browse"


def test_sorting_by_any_column_puts_missing_scores_last(client: TestClient) -> None:
    def order(column: str, direction: str) -> list[tuple[str, float | None]]:
        rows = videos(client, sort=column, order=direction)["rows"]
        return [(r["method"], r["scores"][column]) for r in rows]

    assert order("clip", "asc") == [("base", 0.10), ("dpo", 0.20), ("base", 0.30), ("dpo", 0.35), ("dpo", 0.40),
                                    ("base", 0.50), ("dpo", None)]
    assert order("clip", "desc") == [("base", 0.50), ("dpo", 0.40), ("dpo", 0.35), ("base", 0.30), ("dpo", 0.20),
                                     ("base", 0.10), ("dpo", None)]
    assert [v for _, v in order("aesthetic", "desc")] == [6.0, 5.0, 4.0, None, None, None, None]
    assert [v for _, v in order("flicker", "asc")][:2] == [0.7, 0.9]
    prompts = [r["prompt"] for r in videos(client, sort="prompt")["rows"]]
    assert prompts == sorted(prompts)
    worst = videos(client, sort="clip", order="asc", limit=2)["rows"]  # "the 2 worst videos of a metric"
    assert [r["scores"]["clip"] for r in worst] == [0.10, 0.20]


def test_filtering_by_prompt_text_and_method(client: TestClient) -> None:
    dog = videos(client, q="dog")
    assert dog["total"] == 2 and {r["prompt"] for r in dog["rows"]} == {"a DOG running"}
    assert videos(client, q="THE SEA")["total"] == 2
    assert videos(client, q="nothing like this")["total"] == 0
    dpo = videos(client, method="dpo")
    assert dpo["total"] == 4 and {r["method"] for r in dpo["rows"]} == {"dpo"}
    both = videos(client, q="a", method="base", sort="clip", order="desc")
    assert [r["prompt"] for r in both["rows"]] == ["The sea at night", "A cat on a sofa", "a DOG running"]


def test_pages_cover_every_video_once(client: TestClient) -> None:
    whole = [r["id"] for r in videos(client, sort="clip")["rows"]]
    pages = [videos(client, sort="clip", limit=3, offset=offset) for offset in (0, 3, 6, 9)]
    assert [p["total"] for p in pages] == [7] * 4 and [len(p["rows"]) for p in pages] == [3, 3, 1, 0]
    assert [r["id"] for p in pages for r in p["rows"]] == whole


@pytest.mark.parametrize("params", [
    {"sort": "nope"}, {"sort": "clip", "order": "up"}, {"method": "ppo"}, {"limit": "0"}, {"limit": "501"},
    {"limit": "ten"}, {"offset": "-1"}, {"limit": "1e3"},
])
def test_bad_queries_are_422(client: TestClient, params: dict[str, str]) -> None:
    reply = client.get("/api/browse/videos", params=params)
    assert reply.status_code == 422 and reply.json()["error"]


def test_two_methods_side_by_side_for_one_prompt(client: TestClient) -> None:
    reply = client.get("/api/browse/compare", params={"prompt": "A cat on a sofa", "a": "dpo", "b": "base"})
    assert reply.status_code == 200
    data = reply.json()
    assert data["prompt"] == "A cat on a sofa"
    assert (data["a"]["method"], data["b"]["method"]) == ("dpo", "base")
    assert [v["scores"]["clip"] for v in data["a"]["videos"]] == [0.40]
    assert [v["scores"]["clip"] for v in data["b"]["videos"]] == [0.30]
    for side in ("a", "b"):
        assert client.get(data[side]["videos"][0]["video"]).status_code == 200
    only_dpo = client.get("/api/browse/compare", params={"prompt": "a red car", "a": "base", "b": "dpo"}).json()
    assert only_dpo["a"]["videos"] == [] and len(only_dpo["b"]["videos"]) == 1
    assert client.get("/api/browse/compare", params={"prompt": "a cat on a sofa", "a": "base", "b": "dpo"}).status_code == 404
    assert client.get("/api/browse/compare", params={"prompt": "a red car", "a": "base", "b": "ppo"}).status_code == 422
    assert client.get("/api/browse/compare", params={"prompt": "a red car", "a": "base"}).status_code == 422
    assert client.get("/api/browse/prompts").json()["prompts"] == [
        "A cat on a sofa", "a DOG running", "The sea at night", "a red car"]


def test_webm_videos_are_served_as_they_are(client: TestClient, runs: list[Path]) -> None:
    row = next(r for r in videos(client, method="dpo")["rows"] if r["prompt"] == "a red car")
    original = (runs[1].parent / "dpo-run-videos" / "car.webm").read_bytes()
    assert client.get(row["video"]).content == original
    part = client.get(row["video"], headers={"Range": "bytes=4-11"})
    assert part.status_code == 206 and part.content == original[4:12]


def test_h264_videos_are_transcoded_to_webm_once_and_cached(runs: list[Path], tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    calls: list[Path] = []
    transcode = media.to_webm
    lock = threading.Lock()

    def counting(source: Path, target: Path, spoil_seed: int | None = None) -> Path:
        with lock:
            calls.append(Path(source))
        time.sleep(0.2)  # a slow transcode: concurrent requests arrive while it runs
        return transcode(source, target, spoil_seed)

    monkeypatch.setattr(media, "to_webm", counting)
    with TestClient(create_app(runs=runs, cache=cache)) as client:
        row = next(r for r in videos(client, method="base")["rows"] if r["prompt"] == "a DOG running")
        with ThreadPoolExecutor(max_workers=6) as pool:
            replies = list(pool.map(lambda _: client.get(row["video"]), range(6)))
        assert [r.status_code for r in replies] == [200] * 6
        assert len({r.content for r in replies}) == 1 and replies[0].content.startswith(EBML)
        assert replies[0].headers["content-type"] == "video/webm"
        assert [c.name for c in calls] == ["dog.mp4"]
        part = client.get(row["video"], headers={"Range": "bytes=0-3"})
        assert part.status_code == 206 and part.content == EBML
    cached = list(cache.glob("*.webm"))
    assert len(cached) == 1 and cached[0].read_bytes() == replies[0].content
    with TestClient(create_app(runs=runs, cache=cache)) as restarted:  # a new server reuses the cache
        assert restarted.get(row["video"]).content == replies[0].content
    assert len(calls) == 1


def test_unknown_browse_media_and_path_tricks_are_404(client: TestClient) -> None:
    for path in ("/media/" + "0" * 24 + ".webm", "/media/cat.mp4.webm", "/media/..%2fcat.mp4", "/media/cat.mp4",
                 "/api/browse/../run.json", "/scores.csv"):
        assert client.get(path).status_code == 404, path


def test_a_study_and_runs_in_one_app(runs: list[Path], tmp_path: Path) -> None:
    study = make_study(tmp_path / "study", participants=1, prompts=1, attention_check=False)
    with TestClient(create_app(study.folder, runs, tmp_path / "cache")) as client:
        state = client.get(f"/api/s/{study.token('p01')}/state").json()
        assert client.get(state["item"]["left"]).status_code == 200
        assert videos(client)["total"] == 7
        headers = client.get("/api/browse/videos").headers
        assert headers["cache-control"] == "no-store" and headers["content-security-policy"] == "default-src 'self'"


def test_method_labels_name_the_model_or_run_where_methods_repeat() -> None:
    def run(method: str, model: str, run_id: str) -> RunSource:
        return RunSource(Path(run_id), run_id, model, method, Path("v"))

    assert method_labels([run("dpo", "a", "1"), run("sft", "a", "2")]) == ["dpo", "sft"]
    assert method_labels([run("dpo", "a", "1"), run("dpo", "b", "2"), run("sft", "a", "3")]) == ["dpo (a)", "dpo (b)", "sft"]
    assert method_labels([run("dpo", "a", "1"), run("dpo", "a", "2")]) == ["dpo (a) [1]", "dpo (a) [2]"]


def test_runs_that_cannot_be_browsed_are_refused(runs: list[Path], tmp_path: Path) -> None:
    with pytest.raises(VbenchPrefError, match="run folder not found"):
        Catalog([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(VbenchPrefError, match="no run.json"):
        Catalog([tmp_path / "empty"])
    no_scores = tmp_path / "no-scores"
    no_scores.mkdir()
    (no_scores / "run.json").write_text('{"method": "x", "inputs": {"videos": "/nowhere"}}')
    with pytest.raises(VbenchPrefError, match="scores.csv"):
        Catalog([no_scores])
    (no_scores / "scores.csv").write_text("video,prompt\n")
    with pytest.raises(VbenchPrefError, match="videos folder /nowhere not found"):
        Catalog([no_scores])
    with pytest.raises(VbenchPrefError, match="given twice"):
        Catalog([runs[0], runs[0]])


def test_browse_command_refusals_are_one_line(runs: list[Path], tmp_path: Path, run_cli) -> None:
    missing = run_cli(tmp_path, "browse", str(tmp_path / "missing"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "run folder not found" in missing.stderr
    bad_host = run_cli(tmp_path, "browse", str(runs[0]), "--host", "bad host", "--cache", str(tmp_path / "cache"))
    assert bad_host.returncode == 2 and bad_host.stderr.count("\n") == 1 and "--host" in bad_host.stderr
    (tmp_path / "a-file").write_text("")
    bad_cache = run_cli(tmp_path, "browse", str(runs[0]), "--cache", str(tmp_path / "a-file"))
    assert bad_cache.returncode == 2 and bad_cache.stderr.count("\n") == 1 and "--cache" in bad_cache.stderr
    no_args = run_cli(tmp_path, "browse")
    assert no_args.returncode == 2
