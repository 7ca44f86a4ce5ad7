"""``vbench-pref pairs``: preference pairs (best vs worst of N videos per prompt) for ``train-pgdpo``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vbench_pref.cli import _generation_options as g
from vbench_pref.cli._app import app, argv, console, reports_errors
from vbench_pref.cli.score import parse_evaluator_options


@app.command("pairs")
@reports_errors
def pairs_command(
    out_dir: Path = typer.Option(..., "--out", help="Folder for videos/, reward/, pairs.jsonl and pairs.parquet."),
    reward: str = typer.Option(
        "videoalign", "--reward",
        help="Reward evaluator, NAME or NAME.SCORE (e.g. hpsv2, clip_score.cosine). The default is the PG-DPO "
             "paper's: VideoAlign's Overall (VQ + MQ + TA); it needs the VideoReward weights.",
    ),
    model: str = g.MODEL, prompts: str = g.PROMPTS,
    n: int = typer.Option(4, "--n", "-n", help="Videos per prompt to choose from."), seed: int = g.SEED,
    frames: Optional[int] = g.FRAMES, height: Optional[int] = g.HEIGHT, width: Optional[int] = g.WIDTH,
    steps: Optional[int] = g.STEPS, guidance: Optional[float] = g.GUIDANCE, fps: Optional[int] = g.FPS,
    negative_prompt: Optional[str] = g.NEGATIVE, dtype: str = g.DTYPE, device: str = g.DEVICE,
    gen_batch_size: int = g.GEN_BATCH, base_model: Optional[str] = g.BASE_MODEL,
    mode: str = typer.Option("best_worst", "--mode", help="best_worst (one pair per prompt, the paper's) or all."),
    min_margin: float = typer.Option(0.0, "--min-margin", help="Drop pairs whose reward difference is smaller."),
    options: list[str] = typer.Option([], "--option", "-O", help="Reward evaluator option EVALUATOR.OPTION=VALUE."),
) -> None:
    """Generate N videos per prompt, score them with the reward, write (chosen, rejected) pairs."""
    from vbench_pref.pairs import PairOptions, run_pairs

    generation = g.generation_options(
        model, prompts, n, seed, frames, height, width, steps, guidance, fps, negative_prompt, dtype, device,
        gen_batch_size, base_model,
    )
    opts = PairOptions(
        generation=generation, out=out_dir, reward=reward, mode=mode, min_margin=min_margin,
        evaluator_options=parse_evaluator_options(list(options)), command=argv(),
    )
    progress, on_start, on_video = g.generation_progress()
    scoring: list[int] = []

    def on_scoring_start(total: int, todo: int, *_: object) -> None:
        scoring.append(progress.add("scoring the reward", "video", total=todo))

    with progress:
        result = run_pairs(opts, on_start, on_video, on_scoring_start=on_scoring_start,
                           on_scored=lambda: progress.advance(scoring[0]))
    if result.random_weights:
        which = " and ".join(name for name, random in (("the model", result.model_random_weights),
                                                      ("the reward", result.reward_random_weights)) if random)
        console.print(f"[yellow]{which} used random weights: these pairs are for smoke tests only[/]", highlight=False)
    console.print(
        f"{result.pairs} pairs from {result.prompts} prompts ({result.prompts_without_pair} without a pair) "
        f"-> {result.jsonl}, {result.parquet}",
        highlight=False,
    )
