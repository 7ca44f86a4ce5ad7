"""The typer application, the --debug switch and the one-line error reporting every command shares."""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from vbench_pref.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, VbenchPrefError, os_error

app = typer.Typer(
    name="vbench-pref",
    help="Benchmark and leaderboard for preference-aligned video diffusion models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, soft_wrap=True)  # one-line messages stay one line
out = Console(soft_wrap=True)
_state = {"debug": False}

F = TypeVar("F", bound=Callable[..., Any])


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors.")) -> None:
    _state["debug"] = debug
    from vbench_pref.cli._progress import announce_stages  # _progress imports this module

    announce_stages()


def reports_errors(command: F) -> F:
    """Turn user errors into one line on stderr and a meaningful exit code (tracebacks with --debug)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except VbenchPrefError as exc:
            if _state["debug"]:
                raise
            _print_error(exc)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            if _state["debug"]:
                raise
            console.print("[yellow]interrupted[/]", highlight=False)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as exc:  # a bug: say so in one line, show the traceback on demand
            if _state["debug"]:
                raise
            # permissions, a read-only or full disk: the user's to fix, wherever in the command it surfaced
            fault = os_error(exc) if isinstance(exc, OSError) else None
            if fault is not None:
                _print_error(fault)
                raise typer.Exit(fault.exit_code) from None
            console.print(
                f"[bold red]internal error:[/] {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(EXIT_INTERNAL) from None

    return wrapper  # type: ignore[return-value]


def _print_error(exc: VbenchPrefError) -> None:
    # escaped: a path or value in the message may hold brackets rich would take for markup
    console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)


def argv() -> list[str]:
    return ["vbench-pref", *sys.argv[1:]]
