"""Wall time of ``vbench-pref --help`` and of each command's ``--help`` (fresh processes, median of N).

    python benchmarks/cli_startup.py [--repeats 7] [--ref HEAD~1]

With ``--ref REV`` the same is measured on a checkout of that revision (a temporary ``git worktree``), and the
ratio before/after is printed. Goal: ``--help`` under 1 s, with no heavy module (torch, diffusers, pandas, ...)
imported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ([], ["eval"], ["score"], ["train-pgdpo"], ["pairs"], ["lab", "displacement"])
HEAVY = ("torch", "diffusers", "transformers", "open_clip", "pandas", "matplotlib", "accelerate", "peft", "av")
PROBE = (
    "import sys; from vbench_pref.cli import app; from typer.testing import CliRunner; "
    "CliRunner().invoke(app, sys.argv[1:] + ['--help']); "
    f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
)


def median_seconds(source: Path, command: list[str], repeats: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(source)}
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "vbench_pref", *command, "--help"], cwd=source, env=env,
                       capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def heavy_modules(source: Path, command: list[str]) -> str:
    env = {**os.environ, "PYTHONPATH": str(source)}
    done = subprocess.run([sys.executable, "-c", PROBE, *command], cwd=source, env=env, capture_output=True,
                          text=True, check=True)
    return done.stdout.strip() or "none"


def measure(source: Path, repeats: int) -> dict[str, dict[str, object]]:
    return {
        " ".join(["vbench-pref", *command, "--help"]): {
            "median_s": round(median_seconds(source, command, repeats), 3),
            "heavy_imports": heavy_modules(source, command),
        }
        for command in COMMANDS
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--ref", help="Also measure this git revision and print before/after ratios.")
    args = parser.parse_args()
    after = measure(ROOT, args.repeats)
    report: dict[str, object] = {"after": after}
    if args.ref:
        with tempfile.TemporaryDirectory() as scratch:
            checkout = Path(scratch) / "ref"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(checkout), args.ref],
                           check=True, capture_output=True)
            try:
                before = measure(checkout, args.repeats)
            finally:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(checkout)],
                               check=True, capture_output=True)
        report["before"] = before
        report["speedup"] = {k: round(before[k]["median_s"] / after[k]["median_s"], 1) for k in after}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
