"""``vbench-pref train-pgdpo`` and ``vbench-pref precompute``: options generated from TrainConfig.

Every TrainConfig field is an option with the field's help text; an option left out keeps the value of
``--config FILE`` or, failing that, the field's default.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from vbench_pref.cli._app import app, console, out, reports_errors
from vbench_pref.cli._progress import Progress
from vbench_pref.train.config import TrainConfig, build_config, field_types


def _config_options(only: tuple[str, ...] | None = None) -> list[inspect.Parameter]:
    types = field_types()
    parameters = []
    for f in fields(TrainConfig):
        if only is not None and f.name not in only:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        shown = f" [default: {default}]" if default not in (None, "") else ""
        declarations = [f"{flag}/--no-{flag[2:]}"] if types[f.name] is bool else [flag]
        option = typer.Option(None, *declarations, help=f.metadata["help"] + shown, show_default=False)
        parameters.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                            annotation=Optional[types[f.name]]))
    return parameters


def _with_signature(function: Callable[..., Any], parameters: list[inspect.Parameter]) -> Callable[..., Any]:
    function.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    return function


_CONFIG = inspect.Parameter(
    "config", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
    default=typer.Option(None, "--config", help="YAML or TOML file of these options (the command line wins)."),
)
_RESUME = inspect.Parameter(
    "resume", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
    default=typer.Option(False, "--resume", help="Continue the run in --out from its newest checkpoint."),
)


def _train(config: Optional[Path] = None, resume: bool = False, **given: Any) -> None:
    """Fine-tune a video diffusion model on preference pairs with PG-DPO or a baseline loss."""
    from vbench_pref.train.trainer import run_training

    settings = build_config(config, given)
    progress = Progress()
    tasks: dict[str, Any] = {}
    stage_started = [time.monotonic()]

    def on_stage(message: str) -> None:
        stage_started[0] = time.monotonic()  # the last stage before the first step is the training itself
        console.print(message, highlight=False)

    def on_precompute(total: int) -> Callable[[], None]:
        return progress.ticker("encoding pairs", "pair", total)

    def on_step(step: int, total: int, row: dict[str, Any]) -> None:
        if "train" not in tasks:
            tasks["train"] = progress.add("training", "step", total=total, completed=step - 1,
                                          started=stage_started[0])
        loss = row.get("loss")
        status = "skipped (non-finite)" if row["skipped"] else f"loss {loss:.4g}" if loss is not None else ""
        progress.update(tasks["train"], completed=step, status=status)

    with progress:
        result = run_training(settings, resume=resume, on_stage=on_stage, on_step=on_step, on_precompute=on_precompute)
    label = " (random weights)" if result.random_weights else ""
    out.print(
        f"trained {settings.loss}{label}: steps {result.start_step + 1}-{result.start_step + result.steps}"
        f" ({result.skipped} skipped) -> {result.out}; evaluate with `vbench-pref eval --model {result.out}`",
        highlight=False,
    )


train_command = app.command("train-pgdpo")(
    reports_errors(_with_signature(_train, [_CONFIG, _RESUME, *_config_options()]))
)

_PRECOMPUTE_FIELDS = ("model", "pairs", "base_model", "cache", "num_frames", "height", "width", "device")


def _precompute(config: Optional[Path] = None, **given: Any) -> None:
    """VAE-encode the pairs' videos and text-encode their prompts once, into the latent cache."""
    from vbench_pref.train.trainer import run_precompute

    values = {k: v for k, v in given.items() if v is not None}
    values.setdefault("out", "-")  # precompute writes no run folder
    settings = build_config(config, values)
    with Progress() as progress:
        cache = run_precompute(settings, lambda total: progress.ticker("encoding pairs", "pair", total))
    out.print(f"latent cache ready: {cache}", highlight=False)


precompute_command = app.command("precompute")(
    reports_errors(_with_signature(_precompute, [_CONFIG, *_config_options(_PRECOMPUTE_FIELDS)]))
)
