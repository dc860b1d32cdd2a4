"""Invariant 7 of DESIGN.md: bad input gets a clear error and changes nothing; nothing a client
sends can alter the log except through a resync.

The server runs a real collector against a fakepve, so a request that reached the collector
WOULD append; the test waits for every resync a request queued to end, then checks that none
was queued, fakepve was asked nothing and the log is unchanged. It then shows that one valid
resync does append.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest
from api_helpers import wait_for

from api.ports import CollectorsPort
from api.services import SERVICES
from collectors.service import CollectorService
from eventstore import EventStore
from tests.api.conftest import OPERATOR_SECRET, READER_SECRET, TOKENS, Server, ServerFactory
from tests.collectors.conftest import operator, pve_pki, served  # noqa: F401 - fixtures
from tests.pve import ServedPve

BAD_REQUESTS: list[tuple[str, str, str | None, Any]] = [
    # (method, path, token, body)
    ("POST", "/api/v1/resyncs", OPERATOR_SECRET, b"not json"),
    ("POST", "/api/v1/resyncs", OPERATOR_SECRET, b'{"cluster": 5}'),
    ("POST", "/api/v1/resyncs", OPERATOR_SECRET, b'{"cluster": "lab", "vmid": -1}'),
    ("POST", "/api/v1/resyncs", OPERATOR_SECRET, b'{"cluster": "lab", "surprise": 1}'),
    ("POST", "/api/v1/resyncs", OPERATOR_SECRET, b'{"cluster": "elsewhere"}'),
    ("POST", "/api/v1/resyncs", OPERATOR_SECRET, "oversized"),  # 2 MiB, see below
    ("POST", "/api/v1/resyncs", READER_SECRET, b'{"cluster": "lab"}'),
    ("POST", "/api/v1/resyncs", None, b'{"cluster": "lab"}'),
    ("POST", "/api/v1/resyncs", "not-a-token-0000000000", b'{"cluster": "lab"}'),
    ("POST", "/api/v1/resources", OPERATOR_SECRET, b'{"id": "lab/qemu/100"}'),
    ("PUT", "/api/v1/resources/lab/qemu/100", OPERATOR_SECRET, b'{"name": "x"}'),
    ("DELETE", "/api/v1/resources/lab/qemu/100", OPERATOR_SECRET, None),
    ("DELETE", "/api/v1/events", OPERATOR_SECRET, None),
    ("POST", "/api/v1/events", OPERATOR_SECRET, b'[{"type": "removed"}]'),
    ("GET", "/api/v1/resources?at=yesterday", READER_SECRET, None),
    ("GET", "/api/v1/resources?limit=0", READER_SECRET, None),
    ("GET", "/api/v1/events?after=-1", READER_SECRET, None),
    (
        "GET",
        "/api/v1/resources/lab/qemu/100/history?since=2999-01-01T00:00:00Z",
        READER_SECRET,
        None,
    ),
]


async def _log(store: EventStore) -> list[tuple[int, str]]:
    return [(e.position, e.hash) async for e in store.read_all(0)]


async def _resync(server: Server, body: dict[str, Any]) -> dict[str, Any]:
    status, answer, _ = await server.request(
        "POST", "/api/v1/resyncs", token=OPERATOR_SECRET, json=body
    )
    assert status == 202, answer

    async def finished() -> dict[str, Any] | None:
        _, state, _ = await server.get(f"/api/v1/resyncs/{answer['id']}", token=OPERATOR_SECRET)
        return dict(state) if state["status"] in ("done", "failed") else None

    return await wait_for(finished, f"resync {answer['id']} to finish")


@pytest.mark.slow
async def test_bad_requests_change_nothing_and_only_a_resync_appends(
    store: EventStore,
    serve_app: ServerFactory,
    served: ServedPve,  # noqa: F811 - the imported fixture
    operator: Any,  # noqa: F811 - the imported fixture
) -> None:
    # No scheduled poll may come while the test runs: only its first fast and deep polls
    # (they run at start) and what a request sets off may ask fakepve anything.
    cluster = served.cluster_config("lab", fast_interval_s=3600, deep_interval_s=3600)
    service = CollectorService(store, [cluster], fingerprint_key=b"k" * 32, environ=served.environ)
    collectors: CollectorsPort = service
    server = await serve_app(tokens=TOKENS, collectors=collectors, clusters=["lab"])
    resyncs = server.app[SERVICES].resyncs

    async def first_polls_done() -> bool:
        polls = service.health()["lab"].polls_total
        return polls.get("fast", 0) >= 1 and polls.get("deep", 0) >= 1

    await wait_for(first_polls_done, "the collector's first fast and deep polls")
    before = await _log(store)
    assert before, "the first polls recorded the cluster"

    # A change only a deep or targeted poll sees: any request that wrongly reached the
    # collector would append it.
    await asyncio.to_thread(
        operator.nodes("pve2").qemu(101).config.post, description="changed for the test"
    )
    polls = service.health()["lab"].polls_total
    asked = len(served.pve.requests)  # every request fakepve answered, in order
    for method, path, token, body in BAD_REQUESTS:
        if body == "oversized":
            body = io.BytesIO(b'{"cluster": "lab"' + b" " * (2 << 20) + b"}")
        status, answer, response = await server.request(method, path, token=token, data=body)
        assert 400 <= status < 500, (method, path, status, answer)
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert answer["detail"], (method, path, answer)  # a clear error, not an empty one
    # The barrier: whatever a request queued has run to its end once the app's resyncs are
    # done, so a request that wrongly queued one shows here as a resync kept, a request to
    # fakepve, a poll counted or an event appended; no sleep could promise that.
    await resyncs.wait()
    assert await resyncs.count() == 0, "a bad request queued a resync"
    assert served.pve.requests[asked:] == [], "a bad request made the collector ask Proxmox"
    assert service.health()["lab"].polls_total == polls
    assert await _log(store) == before

    # The one way in: a resync appends the change, in exactly one poll of its own. (It waits
    # for any poll in flight, so a poll a bad request had set off would have run before it
    # and left it nothing to append.)
    state = await _resync(server, {"cluster": "lab", "vmid": 101})
    assert state["status"] == "done", state
    one_more = {**polls, "targeted": polls.get("targeted", 0) + 1}
    assert service.health()["lab"].polls_total == one_more
    after = await _log(store)
    assert after[: len(before)] == before
    assert state["events_appended"] == len(after) - len(before) >= 1
    changed = [e async for e in store.read_all(before[-1][0]) if e.stream_id == "lab/qemu/101"]
    assert [e.type for e in changed] == ["config_changed"]
