"""Fixtures of the API tests: a real aiohttp server on a loopback port over a real store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web

from api.app import bound_port, create_app, run_site
from api.auth import Token
from api.ports import CollectorsPort, ProjectionsPort
from eventstore import Actor, EventStore, NewEvent

READER_SECRET = "reader-secret-0123456789"
OPERATOR_SECRET = "operator-secret-0123456789"
TOKENS = [
    Token("grafana", "reader", READER_SECRET.encode()),
    Token("ops", "operator", OPERATOR_SECRET.encode()),
]


@dataclass
class Server:
    """A running app: its base URL, a client session, and the app itself (same event loop)."""

    url: str
    session: aiohttp.ClientSession
    store: EventStore
    app: web.Application

    async def get(
        self, path: str, *, token: str | None = None, **kwargs: Any
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        """GET ``path``; the status, the decoded JSON body (or text) and the response."""
        return await self.request("GET", path, token=token, **kwargs)

    async def request(
        self, method: str, path: str, *, token: str | None = None, **kwargs: Any
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with self.session.request(
            method, self.url + path, headers=headers, **kwargs
        ) as response:
            raw = await response.read()
            ctype = response.headers.get("Content-Type", "")
            body: Any = msgspec.json.decode(raw) if "json" in ctype and raw else raw.decode()
            return response.status, body, response


ServerFactory = Callable[..., Awaitable[Server]]


@pytest.fixture
async def serve_app(store: EventStore) -> AsyncIterator[ServerFactory]:
    """Start the app over the test's store on 127.0.0.1 with a port the system picks."""
    runners = []
    session = aiohttp.ClientSession()

    async def start(
        *,
        tokens: Sequence[Token] = (),
        collectors: CollectorsPort | None = None,
        projections: ProjectionsPort | None = None,
        clusters: Sequence[str] = (),
        desired_dir: str | None = None,
        drift_ignore: Sequence[str] = (),
        hosts: Sequence[str] | None = None,
        webhook_secret: bytes | None = None,
    ) -> Server:
        app = create_app(
            store,
            tokens=tokens,
            collectors=collectors,
            projections=projections,
            clusters=clusters,
            desired_dir=desired_dir,
            drift_ignore=drift_ignore,
            hosts=hosts,
            webhook_secret=webhook_secret,
        )
        runner = await run_site(app, "127.0.0.1", 0)
        runners.append(runner)
        return Server(f"http://127.0.0.1:{bound_port(runner)}", session, store, app)

    try:
        yield start
    finally:
        await session.close()
        for runner in runners:
            await runner.cleanup()


@pytest.fixture
async def server(serve_app: ServerFactory) -> Server:
    """The app with no tokens (open, as on loopback)."""
    return await serve_app()


T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


async def append_events(store: EventStore, count: int, *, stream: str = "lab/qemu/100") -> None:
    """``count`` small events on one stream, a minute apart from T0."""
    await store.append(
        [
            NewEvent(
                stream_id=stream,
                type="config_changed",
                data=msgspec.json.encode(
                    {"type": "config_changed", "changes": [{"field": "config.memory", "new": i}]}
                ),
                observed_at=T0 + timedelta(minutes=i),
                actor=Actor(user="root@pam", upid=f"UPID:pve1:{i}") if i % 2 else None,
            )
            for i in range(count)
        ]
    )
