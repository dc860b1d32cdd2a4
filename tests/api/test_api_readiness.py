"""Nothing fails silently: a projection runner that fails is logged, retried with backoff and
reported by ``/readyz`` (503 with the reason) until it recovers, also with nothing new to apply;
one stopped at an event it cannot apply stays 503."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from eventstore import EventStore, NewEvent, utcnow
from projections.runner import ProjectionRunner
from tests.api.conftest import ServerFactory, append_events


async def _until(check: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():  # type: ignore[misc]
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _readyz(server: object) -> tuple[int, dict[str, object]]:
    status, body, _ = await server.get("/readyz")  # type: ignore[attr-defined]
    return status, body


class FailingOnce(ProjectionRunner):
    """Our own runner with a bug in its first catch-up (a fake at our own port)."""

    calls = 0

    async def catch_up(self) -> int:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("a bug in the fold")
        return await super().catch_up()


async def test_an_unexpected_error_is_logged_reported_and_retried(
    serve_app: ServerFactory, store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    await append_events(store, 3)
    runner = FailingOnce(store, idle_timeout=0.2)
    with caplog.at_level(logging.ERROR, logger="pvetrail.projections"):
        server = await serve_app(projections=runner)

        async def failing() -> bool:
            status, body = await _readyz(server)
            detail = str(body["checks"]["projections"].get("detail"))  # type: ignore[index]
            return status == 503 and "RuntimeError: a bug in the fold" in detail

        await _until(failing, "/readyz to report the failure")
        assert any("failed unexpectedly" in r.getMessage() for r in caplog.records)
        assert any(r.exc_info for r in caplog.records)  # with its traceback

        async def recovered() -> bool:
            status, _ = await _readyz(server)
            return status == 200 and runner.position == 3

        await _until(recovered, "the retry (after 1 s) to apply the events")
    assert runner.failure is None


async def test_a_database_failure_is_retried_until_it_clears(
    serve_app: ServerFactory, store: EventStore
) -> None:
    await append_events(store, 2)
    runner = ProjectionRunner(store, idle_timeout=0.2)
    server = await serve_app(projections=runner)
    await _until(lambda: _ready(server), "the first catch-up")
    async with store.transaction() as conn:
        await conn.execute("ALTER TABLE proj_versions RENAME TO proj_versions_away")
    await append_events(store, 1, stream="lab/qemu/101")

    async def failing() -> bool:
        status, body = await _readyz(server)
        detail = str(body["checks"]["projections"].get("detail"))  # type: ignore[index]
        return status == 503 and "failing, retrying with backoff" in detail

    await _until(failing, "/readyz to report the failing runner")
    async with store.transaction() as conn:
        await conn.execute("ALTER TABLE proj_versions_away RENAME TO proj_versions")
    await _until(lambda: _ready(server), "the runner to recover", timeout=60)
    assert runner.position == 3


async def _ready(server: object) -> bool:
    return (await _readyz(server))[0] == 200


async def test_a_runner_stopped_at_an_unreadable_event_stays_503_with_no_lag(
    serve_app: ServerFactory, store: EventStore
) -> None:
    await store.append(
        [NewEvent(stream_id="lab/qemu/100", type="no_such_event", data=b"{}", observed_at=utcnow())]
    )
    runner = ProjectionRunner(store, idle_timeout=0.2)
    server = await serve_app(projections=runner)

    async def stopped() -> bool:
        status, body = await _readyz(server)
        detail = str(body["checks"]["projections"].get("detail"))  # type: ignore[index]
        return status == 503 and detail.startswith("stopped:")

    await _until(stopped, "/readyz to report the stopped runner")
