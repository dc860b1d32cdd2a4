"""POST /hooks/pve end to end: a real server, a real collector, fakepve behind it.

Bodies are exactly what the target docs/webhooks.md documents renders (pve-api.md §6.1): the
template's keys, `fields` as `{{ json fields }}` gives it, the secret in X-Pvetrail-Secret.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import msgspec
import pytest
from api_helpers import wait_for

from api.config import ConfigError
from api.services import SERVICES
from api.webhooks import resolve_secret
from collectors.service import CollectorService
from eventstore import EventStore
from projections.runner import ProjectionRunner
from tests.api.conftest import OPERATOR_SECRET, TOKENS, Server, ServerFactory
from tests.collectors.conftest import operator, pve_pki, served  # noqa: F401 - fixtures
from tests.pve import ServedPve

SECRET = "webhook-secret-0123456789"
HOOK = "/api/v1/hooks/pve"


def vzdump(hostname: str) -> bytes:
    """What a scheduled backup's notification renders to (pve-api.md §6.2)."""
    return msgspec.json.encode(
        {
            "title": f"vzdump backup status ({hostname}.example.com): backup successful",
            "message": "Details\n=======\nVMID  Name  Status  Time  Size  Filename\n"
            '100   web   ok      36s   1.2 GiB  /mnt/"x"/vzdump-qemu-100.vma.zst\n',
            "severity": "info",
            "timestamp": 1763409600,
            "fields": {"hostname": hostname, "job-id": "backup-83831498-c631", "type": "vzdump"},
        }
    )


# Proxmox's "Test" button: no metadata fields ({{ json fields }} renders an empty object).
TEST_NOTIFICATION = (
    b'{"title":"Test notification","message":"This is a test of the notification target '
    b'\'pvetrail\'.","severity":"info","timestamp":1763409600,"fields":{}}'
)


async def _hook(
    server: Server, body: Any, *, secret: str | None = SECRET, query: str = ""
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Pvetrail-Secret"] = secret
    status, answer, _ = await server.request("POST", HOOK + query, data=body, headers=headers)
    return status, answer


async def _finished(server: Server, resync_id: str) -> dict[str, Any]:
    async def finished() -> dict[str, Any] | None:
        _, state, _ = await server.get(f"/api/v1/resyncs/{resync_id}", token=OPERATOR_SECRET)
        return dict(state) if state["status"] in ("done", "failed") else None

    return await wait_for(finished, f"resync {resync_id} to finish")


async def _start(
    store: EventStore,
    serve_app: ServerFactory,
    pve: ServedPve,
    clusters: tuple[str, ...] = ("lab",),
) -> tuple[Server, CollectorService]:
    # No scheduled poll during the test: only the first polls and what a webhook sets off.
    cluster = pve.cluster_config("lab", fast_interval_s=3600, deep_interval_s=3600)
    service = CollectorService(store, [cluster], fingerprint_key=b"k" * 32, environ=pve.environ)
    server = await serve_app(
        tokens=TOKENS, collectors=service, clusters=clusters, webhook_secret=SECRET.encode()
    )

    async def first_polls_done() -> bool:
        polls = service.health()["lab"].polls_total
        return polls.get("fast", 0) >= 1 and polls.get("deep", 0) >= 1

    await wait_for(first_polls_done, "the collector's first fast and deep polls")
    return server, service


async def _types_of(store: EventStore, after: int, stream_id: str) -> list[str]:
    return [e.type async for e in store.read_all(after) if e.stream_id == stream_id]


def test_the_secret_is_resolved_at_start() -> None:
    assert resolve_secret(None, {}) is None
    assert resolve_secret("HOOK", {"HOOK": SECRET}) == SECRET.encode()
    with pytest.raises(ConfigError, match="HOOK is not set"):
        resolve_secret("HOOK", {})
    with pytest.raises(ConfigError, match="shorter than 16"):
        resolve_secret("HOOK", {"HOOK": "short"})


async def test_without_a_configured_secret_the_route_is_404(
    store: EventStore, serve_app: ServerFactory
) -> None:
    server = await serve_app(tokens=TOKENS, clusters=["lab"])
    status, answer = await _hook(server, TEST_NOTIFICATION)
    assert status == 404, answer
    assert "webhook_secret_env" in answer["detail"]


@pytest.mark.slow
async def test_bad_webhooks_queue_nothing(
    store: EventStore,
    serve_app: ServerFactory,
    served: ServedPve,  # noqa: F811 - the imported fixture
) -> None:
    server, _ = await _start(store, serve_app, served)
    resyncs = server.app[SERVICES].resyncs
    head = await store.head()
    asked = len(served.pve.requests)
    cases: list[tuple[Any, str | None, int, str]] = [
        (vzdump("pve1"), None, 401, "X-Pvetrail-Secret"),
        (vzdump("pve1"), "wrong-secret-0123456789", 401, "X-Pvetrail-Secret"),
        (vzdump("pve1"), OPERATOR_SECRET, 401, "X-Pvetrail-Secret"),  # a token is no secret
        (io.BytesIO(b'{"title":"x"' + b" " * (2 << 20) + b"}"), SECRET, 413, "bytes"),
        (b"not json", SECRET, 400, "JSON"),
        (b"[1, 2]", SECRET, 400, "object"),
        (b'{"title":"t","message":"m","severity":"info"}', SECRET, 400, "timestamp"),
        (
            b'{"title":"t","message":"m","severity":"info","timestamp":1,"fields":{"type":5}}',
            SECRET,
            400,
            "$.fields",
        ),
    ]
    for body, secret, expected, named in cases:
        status, answer = await _hook(server, body, secret=secret)
        assert status == expected, (body, answer)
        assert named in answer["detail"], answer
    status, answer = await _hook(server, vzdump("pve1"), query="?cluster=elsewhere")
    assert status == 422, answer
    assert answer["param"] == "cluster"
    await resyncs.wait()
    assert await resyncs.count() == 0, "a refused webhook queued a resync"
    assert served.pve.requests[asked:] == []
    assert await store.head() == head


# (notification, query, the guest changed through the Proxmox API, the resync's node, the
# kind of poll it runs)
ANNOUNCED = [
    pytest.param(vzdump("pve1"), "", ("pve1", 100), "pve1", "targeted", id="backup"),
    pytest.param(TEST_NOTIFICATION, "?cluster=lab", ("pve2", 101), None, "deep", id="test"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("body", "query", "guest", "node", "kind"), ANNOUNCED)
async def test_an_announced_change_lands_in_the_log_in_one_poll(
    store: EventStore,
    serve_app: ServerFactory,
    served: ServedPve,  # noqa: F811 - the imported fixture
    operator: Any,  # noqa: F811 - the imported fixture
    body: bytes,
    query: str,
    guest: tuple[str, int],
    node: str | None,
    kind: str,
) -> None:
    server, service = await _start(store, serve_app, served)
    head = await store.head()
    polls = service.health()["lab"].polls_total
    # A change only a deep or targeted poll sees (a backup: on the node it ran on).
    await asyncio.to_thread(
        operator.nodes(guest[0]).qemu(guest[1]).config.post, description="changed, announced"
    )
    status, answer = await _hook(server, body, query=query)
    assert status == 202, answer
    state = await _finished(server, answer["resync_id"])
    # With the deep interval an hour, only the webhook can have polled (the counts below);
    # how fast is measured by bench/webhook_bench.py, not asserted here (a loaded machine).
    assert state["status"] == "done", state
    assert (state["cluster"], state["node"], state["vmid"]) == ("lab", node, None)
    assert state["requested_by"] == "webhook"
    assert await _types_of(store, head, f"lab/qemu/{guest[1]}") == ["config_changed"]
    assert service.health()["lab"].polls_total == {**polls, kind: polls.get(kind, 0) + 1}


@pytest.mark.slow
async def test_a_fenced_node_and_other_notifications_deep_poll_the_cluster_of_the_host(
    store: EventStore,
    serve_app: ServerFactory,
    served: ServedPve,  # noqa: F811 - the imported fixture
) -> None:
    server, _ = await _start(store, serve_app, served)
    for kind in ("fencing", "replication", "package-updates", "system-mail"):
        body = msgspec.json.encode(
            {
                "title": f"{kind} on pve2",
                "message": "",
                "severity": "error",
                "timestamp": 1763409600,
                "fields": {"hostname": "pve2", "type": kind},
            }
        )
        status, answer = await _hook(server, body)
        assert status == 202, answer
        state = await _finished(server, answer["resync_id"])
        assert (state["cluster"], state["node"], state["vmid"]) == ("lab", None, None), state


@pytest.mark.slow
async def test_a_burst_of_webhooks_is_a_handful_of_polls(
    store: EventStore,
    serve_app: ServerFactory,
    served: ServedPve,  # noqa: F811 - the imported fixture
) -> None:
    server, service = await _start(store, serve_app, served)
    resyncs = server.app[SERVICES].resyncs
    # What one backup notification costs fakepve: one targeted poll of the node.
    asked = len(served.pve.requests)
    status, answer = await _hook(server, vzdump("pve1"))
    assert status == 202, answer
    await _finished(server, answer["resync_id"])
    one_poll = len(served.pve.requests) - asked
    assert one_poll > 0

    kept = await resyncs.count()
    polls = service.health()["lab"].polls_total
    asked = len(served.pve.requests)
    answers = await asyncio.gather(*(_hook(server, vzdump("pve1")) for _ in range(100)))
    assert {status for status, _ in answers} == {202}
    await resyncs.wait()
    # One queued resync, and at most one follow-up of it while it ran (plus one per
    # stretch of the burst that arrived while the previous follow-up was running).
    assert 1 <= await resyncs.count() - kept <= 3
    after = service.health()["lab"].polls_total
    targeted = after.get("targeted", 0) - polls.get("targeted", 0)
    assert 1 <= targeted <= 3
    assert after == {**polls, "targeted": polls.get("targeted", 0) + targeted}
    assert len(served.pve.requests) - asked <= 3 * one_poll


@pytest.mark.slow
async def test_without_cluster_in_the_url_the_node_names_it(
    store: EventStore,
    serve_app: ServerFactory,
    served: ServedPve,  # noqa: F811 - the imported fixture
) -> None:
    # Two clusters configured: only the projections can tell which one has a node pve2.
    server, _ = await _start(store, serve_app, served, clusters=("other", "lab"))
    await ProjectionRunner(store).catch_up()
    status, answer = await _hook(server, vzdump("pve2"))
    assert status == 202, answer
    state = await _finished(server, answer["resync_id"])
    assert (state["cluster"], state["node"]) == ("lab", "pve2"), state
    for body in (vzdump("pve9"), TEST_NOTIFICATION):
        status, answer = await _hook(server, body)
        assert status == 422, answer
        assert answer["param"] == "cluster"
        assert "?cluster=NAME" in answer["detail"]
