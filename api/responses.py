"""How a handler's answer goes out: msgspec JSON (errors are the middleware's problem+json)."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web


def render(value: Any, status: int = 200) -> web.Response:
    """A JSON answer encoded by msgspec (times in RFC 3339 UTC with ``Z``)."""
    return web.Response(
        body=msgspec.json.encode(value), status=status, content_type="application/json"
    )
