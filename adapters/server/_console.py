"""The web console: static HTML, CSS and JavaScript shipped in the package, served at ``/``.

    GET /                 console/index.html (the chat and audit pages: one page, ``#/...`` routes)
    GET /console/{file}   its script, style sheet and icon

No build step and no library: the browser runs ``console/app.js`` as written. Every URL the page
uses is relative to the page (``conversations/...``, ``console/app.js``), so the console works
wherever the service is: at a server's root (``turnlog serve``) or under the path a host app
mounts it at (``mount(app, "/chat", service)``: the page is ``/chat/``).

The page talks to the API with ``fetch`` and the caller's bearer token, kept in the tab's
``sessionStorage`` (never in a URL, a cookie or a log). Server-sent events are read from
``fetch``'s body stream, not ``EventSource``: an EventSource can neither send an Authorization
header nor POST, and a turn's stream is the answer to a POST. The page resumes a dropped stream
itself with ``Last-Event-ID`` (docs/architecture.md, "The web console").

The routes are left out of ``/openapi.json`` (``include_in_schema=False``): they are not API.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

#: Where the console's files are (package data: ``pyproject.toml`` ships ``console/*``).
CONSOLE_DIR = Path(__file__).resolve().parent / "console"

#: Only the console's own files run in the page: no inline script, nothing from elsewhere.
_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


async def _index(request: Request) -> Response:
    return FileResponse(CONSOLE_DIR / "index.html", media_type="text/html; charset=utf-8", headers=_HEADERS)


def routes() -> list[BaseRoute]:
    """The console's routes: its page at ``/`` and its files under ``/console``."""
    return [
        Route("/", _index, methods=["GET"], include_in_schema=False),
        Mount("/console", StaticFiles(directory=CONSOLE_DIR), name="console"),
    ]
