"""Load on `vbench-pref study serve`: many participants answering at once on the loopback address.

Makes three eval runs of the built-in tiny models on the demo suite (15 distinct comparisons) (or takes ``--runs``), a study with ``--participants``
participants, serves it in a separate process (the server is not slowed by this script's own Python), and
lets every participant answer concurrently as a browser would: GET the state, POST the answers of the item
shown, and every ``--replay-every``-th answer a second time (a double click or a retried request). Bounded by
``--duration`` seconds and by the plan's items.

Then it checks the database against what the clients were told: every POST answered ``recorded: true`` has
its rows, no item has rows twice, replays recorded nothing. Prints answers/s and latency percentiles.

    python benchmarks/study_load.py [--participants 50] [--per-participant 15] [--duration 60]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np


def cli(*args: str, env: dict[str, str], cwd: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "vbench_pref", *args], cwd=cwd, env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"vbench-pref {' '.join(args)} failed:\n{result.stderr}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(base: str, seconds: float = 60.0) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            urllib.request.urlopen(base + "/browse", timeout=1)  # any page: the server answers
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the server did not start")


class Client:
    """One participant, answering as fast as the server lets it."""

    def __init__(self, base: str, token: str, replay_every: int, deadline: float) -> None:
        import httpx

        self.http = httpx.Client(base_url=base, timeout=30.0, headers={"Origin": base})
        self.token, self.replay_every, self.deadline = token, replay_every, deadline
        self.latencies: list[float] = []
        self.recorded: list[str] = []  # items the server said it recorded
        self.replays_recorded = 0

    def post(self, body: dict) -> dict:
        start = time.perf_counter()
        response = self.http.post(f"/api/s/{self.token}/answer", json=body)
        self.latencies.append(time.perf_counter() - start)
        response.raise_for_status()
        return response.json()

    def run(self) -> None:
        state = self.http.get(f"/api/s/{self.token}/state").json()
        rng = np.random.default_rng(abs(hash(self.token)) % 2**32)
        n = 0
        while state["item"] is not None and time.monotonic() < self.deadline:
            choices = ["left", "right", "tie"]
            answers = {a["key"]: choices[rng.integers(3)] for a in state["aspects"]}
            body = {"item": state["item"]["id"], "answers": answers, "elapsed_ms": 1000}
            reply = self.post(body)
            if reply["recorded"]:
                self.recorded.append(body["item"])
            n += 1
            if self.replay_every and n % self.replay_every == 0:
                self.replays_recorded += bool(self.post(body)["recorded"])
            state = reply
        self.http.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=50)
    parser.add_argument("--per-participant", type=int, default=15)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load at most")
    parser.add_argument("--replay-every", type=int, default=5, help="send every N-th answer twice (0: never)")
    parser.add_argument("--runs", nargs="*", type=Path, help="eval runs to compare (default: three tiny models)")
    parser.add_argument("--workdir", type=Path, help="keep the runs and the study here")
    args = parser.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="study-load-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    runs = args.runs
    if not runs:
        runs = []
        for model in ("tiny-wan", "tiny-cogvideox", "tiny-unet"):
            out = work / model
            cli("eval", "--model", f"builtin:{model}", "--prompts", "demo", "--out", str(out), env=env, cwd=work)
            runs.append(out)
    study = work / "study"
    if not (study / "study.json").exists():
        cli("study", "create", "--runs", *map(str, runs), "--out", str(study), "--participants",
            str(args.participants), "--per-participant", str(args.per_participant), env=env, cwd=work)
    tokens = json.loads((study / "tokens.json").read_text())["participants"]

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "vbench_pref", "study", "serve", str(study), "--port", str(port)],
                              cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_up(base)
        deadline = time.monotonic() + args.duration
        clients = [Client(base, token, args.replay_every, deadline) for token in tokens.values()]
        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(len(clients)) as pool:
            for future in [pool.submit(c.run) for c in clients]:
                future.result()
        elapsed = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(timeout=30)

    participant_of = {token: pid for pid, token in tokens.items()}
    db = sqlite3.connect(study / "answers.sqlite")
    rows = db.execute("SELECT participant, item, aspect FROM answers").fetchall()
    aspects = len(json.loads((study / "study.json").read_text())["aspects"])
    stored_items = {(p, i) for p, i, _ in rows}
    told = {(participant_of[c.token], item) for c in clients for item in c.recorded}
    told_count = sum(len(c.recorded) for c in clients)
    lost = told - stored_items
    duplicated = told_count - len(told) + sum(c.replays_recorded for c in clients)
    unexpected = stored_items - told
    latencies = np.array([x for c in clients for x in c.latencies]) * 1000
    posts = len(latencies)
    print(f"participants {len(clients)}, answered items {len(told)} ({len(rows)} answer rows, {aspects} aspects), "
          f"POSTs {posts} incl. replays, {elapsed:.1f} s")
    print(f"answered items/s {len(told) / elapsed:.1f}, answer rows/s {len(rows) / elapsed:.1f}, POSTs/s {posts / elapsed:.1f}")
    print(f"POST latency ms: p50 {np.percentile(latencies, 50):.1f}, p95 {np.percentile(latencies, 95):.1f}, "
          f"max {latencies.max():.1f}")
    print(f"lost {len(lost)}, duplicated {duplicated}, stored without a recorded reply {len(unexpected)}, "
          f"rows per item != aspects: {len(rows) != len(stored_items) * aspects}")
    if lost or duplicated or unexpected or len(rows) != len(stored_items) * aspects:
        raise SystemExit("answers were lost or duplicated")


if __name__ == "__main__":
    main()
