"""The resync queue in the database: any process accepts a resync, the cluster's collector
leader runs it, and any process answers for it, also after a restart (DESIGN "Several
processes").

Two apps serve one database, each with its own store (its own connections, as two processes
have) and its own collector service; the first holds the cluster's lease. Polls are counted
at fakepve: every targeted poll of guest 101 reads its config once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from api_helpers import wait_for

from api.app import bound_port, create_app, run_site
from collectors import resyncs
from collectors.service import CollectorService
from eventstore import EventStore, open_store
from tests.api.conftest import OPERATOR_SECRET, TOKENS, Server
from tests.collectors.conftest import operator, pve_pki, served  # noqa: F401 - fixtures
from tests.pve import ServedPve

CONFIG_101 = ("GET", "/api2/json/nodes/pve2/qemu/101/config")


class Apps:
    """Apps on stores of their own over the test's database: each one a process of its own."""

    def __init__(self, database_url: str, pve: ServedPve) -> None:
        self.database_url = database_url
        self.served = pve
        self.session = aiohttp.ClientSession()
        self.running: dict[str, tuple[Any, EventStore]] = {}

    async def start(self, *, collect: bool = True) -> tuple[Server, CollectorService | None]:
        store = await open_store(self.database_url)
        await store.migrate()
        collectors = None
        if collect:
            # No scheduled poll while the test runs: only the first ones, at start.
            cluster = self.served.cluster_config("lab", fast_interval_s=3600, deep_interval_s=3600)
            collectors = CollectorService(
                store, [cluster], fingerprint_key=b"k" * 32, environ=self.served.environ
            )
        app = create_app(store, tokens=TOKENS, collectors=collectors, clusters=["lab"])
        runner = await run_site(app, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{bound_port(runner)}"
        self.running[url] = (runner, store)
        return Server(url, self.session, store, app), collectors

    async def stop(self, server: Server) -> None:
        """Stop the app and close its store, as a process that exits."""
        runner, store = self.running.pop(server.url)
        await runner.cleanup()
        await store.close()

    async def close(self) -> None:
        await self.session.close()
        for runner, store in reversed(list(self.running.values())):
            await runner.cleanup()
            await store.close()


@pytest.fixture
async def apps(database_url: str, served: ServedPve) -> AsyncIterator[Apps]:  # noqa: F811
    made = Apps(database_url, served)
    try:
        yield made
    finally:
        await made.close()


def _config_reads(pve: ServedPve) -> int:
    return sum(1 for method, path, _ in pve.pve.requests if (method, path) == CONFIG_101)


async def _post(server: Server, body: dict[str, Any]) -> tuple[int, Any, Any]:
    return await server.request("POST", "/api/v1/resyncs", token=OPERATOR_SECRET, json=body)


async def _finished(server: Server, resync_id: str) -> dict[str, Any]:
    async def finished() -> dict[str, Any] | None:
        status, body, _ = await server.get(f"/api/v1/resyncs/{resync_id}", token=OPERATOR_SECRET)
        assert status == 200, body
        return dict(body) if body["status"] in ("done", "failed") else None

    return await wait_for(finished, f"resync {resync_id} to finish")


async def _leader_polled(collectors: CollectorService) -> bool:
    health = collectors.health()["lab"]
    return health.leader and health.polls_total.get("deep", 0) >= 1


@pytest.mark.slow
async def test_any_process_accepts_the_leader_runs_every_process_answers(
    apps: Apps,
    served: ServedPve,  # noqa: F811 - the imported fixture
    operator: Any,  # noqa: F811 - the imported fixture
) -> None:
    leader, leading = await apps.start()
    assert leading is not None
    await wait_for(lambda: _leader_polled(leading), "the first app to lead and poll")
    other, standing = await apps.start()
    assert standing is not None

    async def stands_by() -> bool:
        return standing.health()["lab"].state == "standby"

    await wait_for(stands_by, "the second app to stand by")
    status, ready, _ = await other.get("/readyz")
    assert status == 200, ready
    assert ready["clusters"]["lab"]["state"] == "standby"
    assert ready["clusters"]["lab"]["leader"] is False
    _, ready, _ = await leader.get("/readyz")
    assert ready["clusters"]["lab"]["leader"] is True
    _, text, _ = await other.get("/metrics")
    assert 'pvetrail_collector_standby{cluster="lab"} 1.0' in text
    assert 'pvetrail_collector_leader{cluster="lab"} 0.0' in text
    _, text, _ = await leader.get("/metrics")
    assert 'pvetrail_collector_standby{cluster="lab"} 0.0' in text
    assert 'pvetrail_collector_leader{cluster="lab"} 1.0' in text

    # A change only a resync (or the next deep poll, an hour away) would see.
    await asyncio.to_thread(operator.nodes("pve2").qemu(101).config.post, description="queued")
    head = await leader.store.head()
    status, body, _ = await _post(other, {"cluster": "lab", "vmid": 101})
    assert status == 202, body
    resync_id = body["id"]
    final = await _finished(other, resync_id)
    assert final["status"] == "done", final
    assert final["events_appended"] >= 1
    assert final["requested_by"] == "ops"
    assert final["vmid"] == 101
    assert final["started_at"] is not None
    assert final["finished_at"] is not None
    # The leader ran it; the stand-by polled nothing.
    assert standing.health()["lab"].polls_total == {}
    assert leading.health()["lab"].polls_total.get("targeted") == 1
    changed = [e async for e in leader.store.read_all(head) if e.stream_id == "lab/qemu/101"]
    assert [e.type for e in changed] == ["config_changed"]
    _, from_leader, _ = await leader.get(f"/api/v1/resyncs/{resync_id}", token=OPERATOR_SECRET)
    assert from_leader == final

    # Every process gone, a new one (collecting nothing) still answers for it.
    await apps.stop(other)
    await apps.stop(leader)
    restarted, _ = await apps.start(collect=False)
    status, after, _ = await restarted.get(f"/api/v1/resyncs/{resync_id}", token=OPERATOR_SECRET)
    assert status == 200
    assert after == final
    status, missing, _ = await restarted.get("/api/v1/resyncs/nosuch", token=OPERATOR_SECRET)
    assert status == 404, missing


@pytest.mark.slow
async def test_a_burst_for_one_scope_is_one_or_two_polls(
    apps: Apps,
    served: ServedPve,  # noqa: F811 - the imported fixture
) -> None:
    leader, leading = await apps.start()
    assert leading is not None
    await wait_for(lambda: _leader_polled(leading), "the app to lead and poll")
    other, _ = await apps.start(collect=False)
    reads = _config_reads(served)
    # Each request to pve2 takes 0.2 s: a poll lasts longer than the burst takes to arrive.
    served.pve.time_scale = 1.0
    served.pve.slow_network(0.2, node="pve2")
    answers = await asyncio.gather(
        *(_post(leader if i % 2 else other, {"cluster": "lab", "vmid": 101}) for i in range(100))
    )
    assert {status for status, _, _ in answers} == {202}
    ids = {body["id"] for _, body, _ in answers}
    assert 1 <= len(ids) <= 2, ids  # the first resync, and one follow-up queued while it ran
    for resync_id in ids:
        assert (await _finished(other, resync_id))["status"] == "done"
    served.pve.slow_network(0.0, node="pve2")
    assert 1 <= _config_reads(served) - reads <= 2
    assert 1 <= leading.health()["lab"].polls_total.get("targeted", 0) <= 2
    joined = [
        (await other.get(f"/api/v1/resyncs/{i}", token=OPERATOR_SECRET))[1]["requests"] for i in ids
    ]
    assert sum(joined) == 100


async def test_a_full_queue_is_503_with_retry_after_and_a_queued_scope_still_joins(
    apps: Apps,
) -> None:
    # No process collects: nothing leaves the queue.
    server, _ = await apps.start(collect=False)
    first = await resyncs.enqueue(
        server.store, resyncs.Scope(cluster="lab", vmid=1), "test", limit=resyncs.MAX_QUEUED
    )
    for vmid in range(2, resyncs.MAX_QUEUED + 1):
        await resyncs.enqueue(server.store, resyncs.Scope(cluster="lab", vmid=vmid), "test")
    status, body, response = await _post(server, {"cluster": "lab", "vmid": 100_000})
    assert status == 503, body
    assert response.headers["Retry-After"] == str(resyncs.RETRY_AFTER_S)
    assert "queued" in body["detail"]
    # A request for a scope already queued joins it, full queue or not.
    status, body, _ = await _post(server, {"cluster": "lab", "vmid": 1})
    assert status == 202, body
    assert body["id"] == first
    _, state, _ = await server.get(f"/api/v1/resyncs/{first}", token=OPERATOR_SECRET)
    assert state["status"] == "queued"
    assert state["requests"] == 2
    assert state["requested_by"] == "test"
    assert await resyncs.unfinished(server.store) == resyncs.MAX_QUEUED
