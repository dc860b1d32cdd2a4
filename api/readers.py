"""Read-side questions apart from HTTP: what a reader is asked, what it may use, and how the
HTTP API serves one.

A *reader* takes the raw strings of a question (:class:`Asked`: the query, the resource id of
a ``/resources/{id}...`` path, the request body) and the read side it may use
(:class:`ReadSide`), parses them with :mod:`api.params` (a malformed one is a 400 naming it),
and returns the msgspec answer. The HTTP API serves each one through :func:`serving`; other
front ends (``pvetrail mcp``, :mod:`api.assistant`) call the very same readers, so a question
is parsed and answered one way whoever asks it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from aiohttp import web

from eventstore import EventStore
from projections.drift import DesiredSets

from .responses import render
from .services import services_of

RESOURCE_ID = web.RequestKey("resource_id", str)
"""The resource id the ``/resources/{id}...`` route found in the path (see :mod:`api.routes`)."""


class Asked(NamedTuple):
    """A question as raw strings, before any parsing."""

    query: Mapping[str, str]
    resource_id: str = ""
    """The ``{id}`` of a ``/resources/{id}...`` path (empty for the other operations)."""
    body: bytes = b""


class ReadSide(Protocol):
    """What a reader may use: the store, and for drift the desired sets and ignored fields
    (:class:`api.services.Services` is one)."""

    @property
    def store(self) -> EventStore: ...

    @property
    def desired(self) -> DesiredSets: ...

    @property
    def drift_ignore(self) -> Sequence[str]: ...


Reader = Callable[[ReadSide, Asked], Awaitable[Any]]
"""A read-side question's parser and answerer (see the module's docstring)."""


def serving(read: Reader) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The HTTP handler of a reader: the request's query, path id and body in, JSON out."""

    async def handler(request: web.Request) -> web.StreamResponse:
        asked = Asked(
            query=request.query,
            resource_id=request.get(RESOURCE_ID, ""),
            body=await request.read() if request.body_exists else b"",
        )
        return render(await read(services_of(request), asked))

    handler.__doc__ = read.__doc__
    return handler
