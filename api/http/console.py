"""GET /console: the operator console, static files shipped inside the package.

The page is plain HTML, CSS and ES modules (no build step, no CDN); it reads the
same public API every client uses. The files are public (TokenMiddleware lets
/console through) so the page can load and ask for the token; every API call it
makes then carries `X-Hive-Token`.

The files are read once at import into a name -> bytes table: a request can only
name a file that shipped (no path is ever joined from user input), and serving
costs a dict lookup.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.http.responses import error

STATIC_DIR = Path(__file__).with_name("console")
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
# The console changes with the server it ships in: revalidate, never serve stale modules.
HEADERS = {"cache-control": "no-cache", "x-content-type-options": "nosniff"}


def load_files(folder: Path) -> dict[str, tuple[bytes, str]]:
    """Every shipped file by its path relative to `folder` ('/'-separated)."""
    files: dict[str, tuple[bytes, str]] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            name = path.relative_to(folder).as_posix()
            kind = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
            files[name] = (path.read_bytes(), kind or "application/octet-stream")
    return files


FILES = load_files(STATIC_DIR)


def _serve(name: str) -> Response:
    found = FILES.get(name)
    if found is None:
        return error(404, f"Not found: /console/{name[:200]}")
    body, media_type = found
    return Response(body, media_type=media_type, headers=HEADERS)


async def console_index(request: Request) -> Response:
    """GET /console: the single page; views are chosen by the URL fragment."""
    return _serve("index.html")


async def console_file(request: Request) -> Response:
    """GET /console/{path}: one shipped file (scripts, styles), else 404."""
    name = str(request.path_params["path"]) or "index.html"
    return _serve(name)


routes = [
    # Pages, not API: left out of /openapi.json (tests/api/http/test_openapi.py knows).
    Route("/console", console_index, methods=["GET"], include_in_schema=False),
    Route("/console/{path:path}", console_file, methods=["GET"], include_in_schema=False),
]
