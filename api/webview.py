"""The web view: one page (``GET /``) and its static files (``GET /ui/NAME``), no token needed.

The page is plain HTML, CSS and JavaScript shipped inside the package (``api/ui/``): no
external asset, no CDN, no vendored library, so it works offline. It reads the same JSON API
as any client; its data calls carry a ``reader`` token the user types once, kept in the tab's
``sessionStorage`` (none is asked for when the API answers without one, as on loopback).
"""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

UI_DIR = Path(__file__).parent / "ui"
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*\.(?:js|css|svg|png)")
_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".html": "text/html",
}
HEADERS = {
    # Everything comes from this origin; nothing may frame the page.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidated each load: an upgrade shows at once
}


def _file(path: Path) -> web.Response:
    return web.Response(
        body=path.read_bytes(),
        headers={**HEADERS, "Content-Type": f"{_TYPES[path.suffix]}; charset=utf-8"}
        if path.suffix not in (".png",)
        else {**HEADERS, "Content-Type": _TYPES[path.suffix]},
    )


async def index(request: web.Request) -> web.Response:
    """The page (its state lives in the URL's fragment, so one path serves every view)."""
    return _file(UI_DIR / "index.html")


async def static(request: web.Request) -> web.Response:
    """A file of ``api/ui/`` by its plain name; 404 for anything else (no paths, no dots)."""
    name = request.match_info["name"]
    path = UI_DIR / name
    if not _NAME.fullmatch(name) or not path.is_file():
        raise web.HTTPNotFound(text=f"no such file of the web view: {name}")
    return _file(path)
