"""The web app of ``study serve`` and ``browse``: the participants' pages, the admin page and the run browser.

HTTP contract (the pages in ``static/`` and the tests rely on it):

* ``GET /s/{token}``: the participant page; ``GET /api/s/{token}/state``: progress and the next item (the
  first of the participant's order not yet answered, so a reload resumes); ``POST /api/s/{token}/answer``
  with ``{"item", "answers": {aspect: "left"|"right"|"tie"}, "elapsed_ms"}``: the answers are committed
  before the reply, which is the new state plus ``recorded`` (false for a replay, which changes nothing).
* ``GET /media/{id}.webm``: a video by id only (range requests answered with 206); no part of a URL ever
  becomes a path.
* ``GET /admin/{token}`` and ``GET /api/admin/{token}/progress``: progress per participant.
* ``GET /browse``, ``GET /api/browse/videos``, ``GET /api/browse/compare``, ``GET /api/browse/prompts``: the
  run browser.

Errors: 404 for unknown tokens, ids and items (the same page whatever was wrong), 422 for a bad body or
query, 415 for a body that is not JSON, 403 for a cross-site POST. Every response carries a strict
Content-Security-Policy (the pages load their own script and style files only), no framing and no
referrer (tokens are in URLs); API replies are never cached.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import re
import signal
import socket
import sys
import threading
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vbench_pref.errors import VbenchPrefError
from vbench_pref.study.browse import BrowseQueryError, Catalog, WebmCache, default_cache
from vbench_pref.study.plan import ANSWERS, ASPECTS, ID_PATTERN, MEDIA_DIR, Participant, load_plan, load_tokens
from vbench_pref.study.store import open_answers

TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
MAX_BODY = 16 * 1024  # an answer is a few hundred bytes
MAX_ELAPSED_MS = 24 * 3600 * 1000
MAX_PAGE = 500
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
_UNCACHED = ("/api/", "/s/", "/admin/")  # replies that hold or are reached by a token


def static_dir() -> Path:
    return Path(str(resources.files("vbench_pref.study") / "static"))


def _not_found() -> Response:
    return PlainTextResponse("Not Found", status_code=404)  # as for any unknown URL


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class SecurityHeaders:
    """Adds the security headers to every response (plain ASGI: streamed files pass through untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        uncached = scope["path"].startswith(_UNCACHED)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                if uncached:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def cross_site(request: Request) -> bool:
    """True for a request a page of another site made: its Origin is not this Host, or the browser says so."""
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        return True
    origin = request.headers.get("origin")
    if origin is None:
        return False  # not sent by a browser's cross-origin fetch (curl, same-origin GET-like requests)
    host = request.headers.get("host", "").lower()
    return not host or urlsplit(origin.lower()).netloc != host


def is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"


async def read_json(request: Request) -> tuple[Any, Response | None]:
    """The body as JSON, or the error response (413 too large, 422 not JSON)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None, _error(413, "body too large")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks).decode("utf-8")), None
    except (UnicodeDecodeError, ValueError):
        return None, _error(422, "body is not valid JSON")


class AnswerError(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class StudyService:
    """One study: its plan, tokens and answers, and the JSON the participant and admin pages read."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder).resolve()
        self.plan = load_plan(self.folder)
        self.tokens = load_tokens(self.folder)
        self.store = open_answers(self.folder)
        media_root = self.folder / MEDIA_DIR
        # id -> file, fixed now: requests look ids up here and nothing else
        self.media = {vid: path for vid, v in self.plan.videos.items()
                      if (path := (self.folder / v.media).resolve()).is_relative_to(media_root)}
        self.aspects = [{"key": k, "title": ASPECTS[k][0], "question": ASPECTS[k][1]} for k in self.plan.aspects]
        self._participants = {p.id: p for p in self.plan.participants}

    def participant(self, token: str) -> Participant | None:
        if not TOKEN_PATTERN.match(token):
            return None
        found = self.tokens.participant_of(token)
        return self._participants.get(found) if found is not None else None

    def is_admin(self, token: str) -> bool:
        return bool(TOKEN_PATTERN.match(token)) and self.tokens.is_admin(token)

    def state(self, participant: Participant) -> dict[str, Any]:
        answered = self.store.answered_items(participant.id)
        done = sum(1 for i in participant.items if i in answered)
        item = None
        for position, item_id in enumerate(participant.items, start=1):
            if item_id not in answered:
                plan_item = self.plan.items[item_id]
                item = {"id": item_id, "prompt": self.plan.videos[plan_item.left].prompt,
                        "left": f"/media/{plan_item.left}.webm", "right": f"/media/{plan_item.right}.webm",
                        "position": position}
                break
        return {"participant": participant.id, "answered": done, "total": len(participant.items),
                "mode": self.plan.answers, "aspects": self.aspects, "item": item}

    def answer(self, participant: Participant, body: Any) -> dict[str, Any]:
        """Record one item's answers (validated); the new state plus ``recorded``."""
        if not isinstance(body, dict):
            raise AnswerError(422, "body must be a JSON object")
        extra = set(body) - {"item", "answers", "elapsed_ms"}
        if extra:
            raise AnswerError(422, f"unknown keys: {', '.join(sorted(map(str, extra)))}")
        item, answers, elapsed = body.get("item"), body.get("answers"), body.get("elapsed_ms")
        if not isinstance(item, str):
            raise AnswerError(422, "item must be a string")
        if not isinstance(answers, dict):
            raise AnswerError(422, "answers must be an object")
        if set(answers) != set(self.plan.aspects):
            raise AnswerError(422, f"answers must give exactly the aspects {', '.join(self.plan.aspects)}")
        if any(not isinstance(v, str) or v not in ANSWERS for v in answers.values()):
            raise AnswerError(422, f"each answer is one of {', '.join(ANSWERS)}")
        if elapsed is not None and (not isinstance(elapsed, int) or isinstance(elapsed, bool)
                                    or not 0 <= elapsed <= MAX_ELAPSED_MS):
            raise AnswerError(422, f"elapsed_ms must be null or an integer from 0 to {MAX_ELAPSED_MS}")
        if not ID_PATTERN.match(item) or item not in participant.items:
            raise AnswerError(404, "no such item")
        recorded = self.store.record(participant.id, item, {a: answers[a] for a in self.plan.aspects}, elapsed)
        return {**self.state(participant), "recorded": recorded}

    def progress(self) -> dict[str, Any]:
        from vbench_pref.study.judgements import failed_checks, judgements

        table = judgements(self.plan, self.store.answers())
        failed = failed_checks(table)
        counts, last = self.store.answered_counts(), self.store.last_answered()
        rows = [{"id": p.id, "answered": min(counts.get(p.id, 0), len(p.items)), "total": len(p.items),
                 "last_answered": last.get(p.id), "failed_checks": int(failed.get(p.id, 0))}
                for p in self.plan.participants]
        return {"study_id": self.plan.study_id, "participants": rows,
                "answered": sum(r["answered"] for r in rows), "total": sum(r["total"] for r in rows)}


def _study_routes(service: StudyService, pages: Path) -> list[Route]:
    def participant_page(request: Request) -> Response:
        if service.participant(request.path_params["token"]) is None:
            return _not_found()
        return FileResponse(pages / "study.html", media_type="text/html")

    def state(request: Request) -> Response:
        participant = service.participant(request.path_params["token"])
        if participant is None:
            return _error(404, "not found")
        return JSONResponse(service.state(participant))

    async def answer(request: Request) -> Response:
        if cross_site(request):
            return _error(403, "cross-site request refused")
        if not is_json(request):
            return _error(415, "send application/json")
        participant = service.participant(request.path_params["token"])
        if participant is None:
            return _error(404, "not found")
        body, problem = await read_json(request)
        if problem is not None:
            return problem
        try:
            # SQLite work off the event loop: the store keeps one connection per worker thread
            return JSONResponse(await run_in_threadpool(service.answer, participant, body))
        except AnswerError as exc:
            return _error(exc.status, str(exc))

    def admin_page(request: Request) -> Response:
        if not service.is_admin(request.path_params["token"]):
            return _not_found()
        return FileResponse(pages / "admin.html", media_type="text/html")

    def progress(request: Request) -> Response:
        if not service.is_admin(request.path_params["token"]):
            return _error(404, "not found")
        return JSONResponse(service.progress())

    return [
        Route("/s/{token}", participant_page),
        Route("/api/s/{token}/state", state),
        Route("/api/s/{token}/answer", answer, methods=["POST"]),
        Route("/admin/{token}", admin_page),
        Route("/api/admin/{token}/progress", progress),
    ]


def _query_int(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = params.get(name)
    if text is None or text == "":
        return default
    if not re.fullmatch(r"\d{1,9}", text) or not low <= int(text) <= high:
        raise BrowseQueryError(f"{name}: an integer from {low} to {high}")
    return int(text)


def _browse_routes(catalog: Catalog, pages: Path) -> list[Route]:
    def page(request: Request) -> Response:
        return FileResponse(pages / "browse.html", media_type="text/html")

    def videos(request: Request) -> Response:
        params = request.query_params
        try:
            total, rows = catalog.query(
                sort=params.get("sort") or None, order=params.get("order") or "asc", q=params.get("q", ""),
                method=params.get("method") or None, limit=_query_int(params, "limit", 50, 1, MAX_PAGE),
                offset=_query_int(params, "offset", 0, 0, 10**9),
            )
        except BrowseQueryError as exc:
            return _error(422, str(exc))
        return JSONResponse({"columns": catalog.columns, "methods": catalog.methods, "total": total,
                             "rows": [v.row() for v in rows]})

    def compare(request: Request) -> Response:
        params = request.query_params
        prompt, a, b = params.get("prompt"), params.get("a"), params.get("b")
        if not prompt or not a or not b:
            return _error(422, "give prompt, a and b")
        try:
            found = catalog.compare(prompt, a, b)
        except BrowseQueryError as exc:
            return _error(422, str(exc))
        if not found[a] and not found[b]:
            return _error(404, "no video of either method for this prompt")
        return JSONResponse({"prompt": prompt, "columns": catalog.columns,
                             "a": {"method": a, "videos": [v.row() for v in found[a]]},
                             "b": {"method": b, "videos": [v.row() for v in found[b]]}})

    def prompts(request: Request) -> Response:
        return JSONResponse({"prompts": catalog.prompts(), "methods": catalog.methods})

    return [
        Route("/browse", page),
        Route("/api/browse/videos", videos),
        Route("/api/browse/compare", compare),
        Route("/api/browse/prompts", prompts),
    ]


def _media_route(service: StudyService | None, catalog: Catalog | None, cache: WebmCache | None) -> Route:
    def video(request: Request) -> Response:
        name: str = request.path_params["name"]
        video_id = name[: -len(".webm")] if name.endswith(".webm") else ""
        if not ID_PATTERN.match(video_id):
            return _not_found()
        path = service.media.get(video_id) if service is not None else None
        if path is None and catalog is not None and cache is not None and video_id in catalog.by_id:
            video = catalog.by_id[video_id]
            try:
                path = cache.playable(video)
            except (VbenchPrefError, OSError) as exc:
                print(f"warning: cannot transcode {video.source} for the browser: {exc}", file=sys.stderr, flush=True)
                return PlainTextResponse("this video cannot be played", status_code=500)
        if path is None or not path.is_file():
            return _not_found()
        return FileResponse(path, media_type="video/webm")

    return Route("/media/{name}", video)


_STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}


def _static_route(pages: Path) -> Route:
    """The pages' own files, listed once: a name the list does not hold is 404 whatever it spells."""
    files = {p.name: p for p in pages.iterdir() if p.suffix in _STATIC_TYPES and p.is_file()}

    def asset(request: Request) -> Response:
        path = files.get(request.path_params["name"])
        if path is None:
            return _not_found()
        return FileResponse(path, media_type=_STATIC_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})

    return Route("/static/{name}", asset)


def create_app(study: Path | None = None, runs: Sequence[Path] = (), cache: Path | None = None) -> Starlette:
    """The app serving a study (its folder), a run browser (scored runs), or both.

    Raises VbenchPrefError (one line) for a folder that is not a study or a run that cannot be read.
    """
    if study is None and not runs:
        raise VbenchPrefError("nothing to serve: give a study folder or runs to browse")
    pages = static_dir()
    service = StudyService(Path(study)) if study is not None else None
    catalog = Catalog(list(runs)) if runs else None
    webm = WebmCache(Path(cache) if cache is not None else default_cache()) if catalog is not None else None
    routes: list[Route] = []
    if service is not None:
        routes += _study_routes(service, pages)
    if catalog is not None:
        routes += _browse_routes(catalog, pages)
        routes.append(Route("/", lambda request: RedirectResponse("/browse")))
    routes.append(_media_route(service, catalog, webm))
    routes.append(_static_route(pages))
    app = Starlette(routes=routes)
    app.add_middleware(SecurityHeaders)
    app.state.study = service
    app.state.catalog = catalog
    return app



# --- running it -----------------------------------------------------------------------------------------------

_HOST_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on (host, port), or a one-line error: bad host, port in use, no permission."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOST_NAME.match(host):
            raise VbenchPrefError(f"--host {host!r}: not an IP address or host name") from None
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise VbenchPrefError(f"--host {host}: unknown host ({getattr(exc, 'strerror', None) or exc})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restart right after a stop
    try:
        sock.bind(address)
        sock.listen(2048)  # from here connections queue until the server accepts them
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise VbenchPrefError(f"port {port} on {host} is in use (another server?): choose another with --port") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise VbenchPrefError(f"--host {host}: not an address of this machine") from None
        if exc.errno == errno.EACCES:
            raise VbenchPrefError(f"port {port}: permission denied (ports below 1024 need privileges); choose another with --port") from None
        raise VbenchPrefError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def is_loopback(sock: socket.socket) -> bool:
    """True when only this machine can reach the socket."""
    return ipaddress.ip_address(sock.getsockname()[0]).is_loopback


def base_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def run_server(app: Starlette, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` until Ctrl-C / SIGTERM; requests in flight finish first."""
    import uvicorn

    # no access log: request paths hold participants' tokens
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    # uvicorn shuts down gracefully on SIGINT / SIGTERM, then raises the signal again: both end here
    previous = signal.signal(signal.SIGTERM, _interrupt) if threading.current_thread() is threading.main_thread() else None
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
