"""``vbench-pref browse``: every video of some runs with its prompt and scores, in the browser."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vbench_pref.cli._app import app, out, reports_errors
from vbench_pref.cli.study_serve_cmd import HOST_HELP, warn_if_exposed


@app.command("browse")
@reports_errors
def browse_command(
    runs: list[Path] = typer.Argument(..., help="Run folders (run.json + scores.csv) or eval --out folders."),
    host: str = typer.Option("127.0.0.1", "--host", help=HOST_HELP),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
    cache: Optional[Path] = typer.Option(
        None, "--cache", help="Folder for WebM copies of the MP4 videos (default: ~/.cache/vbench_pref/browse)."
    ),
) -> None:
    """Browse runs: sort videos by any score, filter by prompt, compare two methods side by side; Ctrl-C stops."""
    from vbench_pref.preflight import check_output_folder
    from vbench_pref.study.browse import default_cache
    from vbench_pref.study.server import base_url, create_app, listen, run_server

    cache = check_output_folder(cache if cache is not None else default_cache(), "--cache")
    web = create_app(runs=runs, cache=cache)
    catalog = web.state.catalog
    sock = listen(host, port)
    warn_if_exposed(sock, host)
    out.print(f"{len(catalog.videos)} videos of {len(catalog.methods)} runs ({', '.join(catalog.methods)}) "
              f"on {base_url(host, port)}/browse", highlight=False)
    out.print("Ctrl-C stops the server.", highlight=False)
    run_server(web, sock)
    out.print("stopped", highlight=False)
