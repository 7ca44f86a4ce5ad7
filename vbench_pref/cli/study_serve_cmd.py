"""``vbench-pref study serve``: the study's web app (participant pages, admin page) on uvicorn."""

from __future__ import annotations

from pathlib import Path

import typer

from vbench_pref.cli._app import console, out, reports_errors
from vbench_pref.cli._study_app import study_app

HOST_HELP = "Address to listen on; 127.0.0.1 keeps the pages on this machine, 0.0.0.0 opens them to the network."


def warn_if_exposed(sock: object, host: str) -> None:
    from vbench_pref.study.server import is_loopback

    if not is_loopback(sock):  # type: ignore[arg-type]
        console.print(f"[yellow]warning:[/] listening on {host}: anyone who can reach this address can load the "
                      "pages (the tokens in the links still guard them)", highlight=False, soft_wrap=True)


@study_app.command("serve")
@reports_errors
def study_serve_command(
    study: Path = typer.Argument(..., help="Study folder made by `vbench-pref study create`."),
    host: str = typer.Option("127.0.0.1", "--host", help=HOST_HELP),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
) -> None:
    """Serve a study: blinded side-by-side pairs for the participants, live progress for you; Ctrl-C stops."""
    from vbench_pref.study.server import base_url, create_app, listen, run_server

    app = create_app(study=study)
    service = app.state.study
    sock = listen(host, port)
    warn_if_exposed(sock, host)
    url = base_url(host, port)
    plan = service.plan
    out.print(f"study {plan.study_id}: {len(plan.participants)} participants, {len(plan.items)} items, "
              f"on {url}", highlight=False)
    out.print(f"admin page: {url}/admin/{service.tokens.admin}", highlight=False)
    out.print(f"participant links: vbench-pref study invite {study}", highlight=False)
    out.print("Ctrl-C stops the server; answers are saved as they come.", highlight=False)
    run_server(app, sock)
    out.print("stopped", highlight=False)
