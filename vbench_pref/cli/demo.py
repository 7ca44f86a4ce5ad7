"""``vbench-pref examples`` and ``vbench-pref demo``: the embedded default, end to end and offline."""

from __future__ import annotations

from pathlib import Path

import typer

from vbench_pref.cli._app import app, argv, console, out, reports_errors
from vbench_pref.cli.leaderboard_cmd import write_leaderboard
from vbench_pref.cli.score import score_and_report
from vbench_pref.preflight import check_at_least, check_device, check_output_folder, check_seed


@app.command("examples")
@reports_errors
def examples_command(
    out_dir: Path = typer.Option(Path("examples"), "--out", help="Folder for the example videos and prompts.txt."),
    per_kind: int = typer.Option(4, "--per-kind", help="Videos of each kind (smooth, flickering)."),
    seed: int = typer.Option(0, help="Seed of the synthetic content."),
) -> None:
    """Write a small set of synthetic example videos (smooth and flickering) with a prompt file."""
    from vbench_pref.synthetic import make_example_set

    check_at_least(1, per_kind=per_kind)
    check_seed(seed)
    check_output_folder(out_dir)
    paths = make_example_set(out_dir, n_per_kind=per_kind, seed=seed)
    console.print(f"wrote {len(paths)} videos and prompts.txt to {out_dir}", highlight=False)


@app.command("demo")
@reports_errors
def demo_command(
    out_dir: Path = typer.Option(Path("runs/demo"), "--out", help="Folder for the demo videos, run and leaderboard."),
    device: str = typer.Option("auto", help="cpu, cuda or auto."),
) -> None:
    """Make example videos, score them with every evaluator that can run here, print the leaderboard."""
    from vbench_pref.scoring import ScoreOptions
    from vbench_pref.synthetic import make_example_set

    check_device(device)
    check_output_folder(out_dir)
    videos = out_dir / "videos"
    if not (videos / "prompts.txt").is_file():
        make_example_set(videos, n_per_kind=4, seed=0)
    opts = ScoreOptions(
        videos=videos, out=out_dir / "run", prompts=videos / "prompts.txt", device=device,
        model="synthetic examples", method="demo", command=argv(),
    )
    result = score_and_report(opts)
    markdown = write_leaderboard([result.run_dir], ["pgdpo_paper"], out_dir / "leaderboard")
    out.print(markdown.read_text(encoding="utf-8"), highlight=False, markup=False)
    raise typer.Exit(result.exit_code)
