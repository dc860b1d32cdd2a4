"""Answers from a remote pvetrail over HTTP (``pvetrail mcp --api URL``).

Each tool call is the same HTTP request a script would send (:func:`.tools.question` gives its
query, path id or body), with the reader token from ``PVETRAIL_TOKEN`` as a bearer token: never
a flag (it would show in ``ps``), never logged. The server's answer passes through as it is;
its problem+json refusals become tool errors with the server's own words, and a refused token
or an unreachable server says what to do about it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
import msgspec
from yarl import URL

from eventstore import mask_url

from ..readers import Asked
from .tools import Answer, Refused, ToolSpec

TOKEN_ENV = "PVETRAIL_TOKEN"
TIMEOUT_S = 60.0
"""How long one request may take (a drift report over a large inventory takes seconds)."""


def base_url(text: str) -> str:
    """The server's base URL (``http(s)://host[:port]``, an ``/api/v1`` suffix dropped);
    :class:`ValueError` naming what is wrong."""
    url = text.strip().rstrip("/")
    url = url.removesuffix("/api/v1")
    parts = urlsplit(url)
    shown = repr(mask_url(text))  # a password given in the URL is never echoed
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--api {shown} is not an http(s) URL such as http://pvetrail:8080")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(
            f"--api {shown}: give the server's URL alone (the token goes in {TOKEN_ENV})"
        )
    return url


class RemoteSource:
    """Asks a pvetrail server; one HTTP session for the whole MCP session."""

    def __init__(self, url: str, token: str | None, session: aiohttp.ClientSession) -> None:
        self.url = url
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._session = session

    async def answer(self, tool: ToolSpec, asked: Asked) -> Answer:
        """The server's answer to the tool's request, or :class:`Refused` saying why not."""
        op = tool.operation
        path = op.path.replace("{id}", quote(asked.resource_id, safe=""))
        query = urlencode(dict(asked.query), quote_via=quote)
        target = URL(f"{self.url}{path}" + (f"?{query}" if query else ""), encoded=True)
        headers = dict(self._headers)
        if op.body is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with self._session.request(
                op.method,
                target,
                data=asked.body if op.body is not None else None,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=TIMEOUT_S),
            ) as response:
                status, raw = response.status, await response.read()
                kind = response.content_type
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            reason = str(exc) or type(exc).__name__
            raise Refused(f"cannot reach the pvetrail at {self.url}: {reason}") from None
        if status == 200:
            return Answer(raw, {"pvetrail/source": self.url})
        raise Refused(self._why(status, kind, raw), _problem(kind, raw))

    def _why(self, status: int, kind: str, raw: bytes) -> str:
        problem = _problem(kind, raw)
        detail = str(problem.get("detail")) if problem else f"HTTP {status}"
        if status == 401:
            given = (
                f"the token in {TOKEN_ENV} is not one it knows"
                if self._headers
                else f"{TOKEN_ENV} is not set"
            )
            return (
                f"the pvetrail at {self.url} refused the request (401: {detail}): {given}; "
                f"set {TOKEN_ENV} to a reader token of that server (api.tokens, role reader) "
                "in the MCP client's configuration"
            )
        if status == 403:
            return f"the pvetrail at {self.url} refused the request (403: {detail})"
        return detail if problem else f"the pvetrail at {self.url} answered HTTP {status}"


def _problem(kind: str, raw: bytes) -> dict[str, Any] | None:
    if not kind.endswith("json"):
        return None
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None
    return body if isinstance(body, dict) and "detail" in body else None
