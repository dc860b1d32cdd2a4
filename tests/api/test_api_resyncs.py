"""POST /resyncs runs a real poll; its status says whether the poll observed anything."""

from __future__ import annotations

from typing import Any

from api_helpers import wait_for

from api.auth import Token
from collectors.config import ClusterConfig
from collectors.service import CollectorService
from eventstore import EventStore
from tests.api.conftest import OPERATOR_SECRET, TOKENS, ServerFactory


def _unreachable_cluster() -> ClusterConfig:
    # Port 1 on loopback: the connection is refused at once, so the poll fails fast.
    return ClusterConfig(
        name="lab",
        host="127.0.0.1:1",
        token_id="audit@pve!pvetrail",
        token_secret_env="PVETRAIL_TEST_TOKEN",
        verify_tls=False,
        connect_timeout_s=1,
        read_timeout_s=1,
        retries=0,
    )


async def _finished(server: Any, resync_id: str, token: str) -> dict[str, Any]:
    async def finished() -> dict[str, Any] | None:
        status, body, _ = await server.get(f"/api/v1/resyncs/{resync_id}", token=token)
        assert status == 200, body
        return dict(body) if body["status"] not in ("queued", "running") else None

    return await wait_for(finished, f"resync {resync_id} to finish")


async def test_a_resync_that_observed_nothing_is_failed_not_done(
    store: EventStore, serve_app: ServerFactory
) -> None:
    service = CollectorService(
        store,
        [_unreachable_cluster()],
        fingerprint_key=b"k" * 32,
        environ={"PVETRAIL_TEST_TOKEN": "not-a-real-secret"},
    )
    tokens: list[Token] = list(TOKENS)
    server = await serve_app(tokens=tokens, collectors=service, clusters=["lab"])
    status, body, _ = await server.request(
        "POST", "/api/v1/resyncs", token=OPERATOR_SECRET, json={"cluster": "lab", "vmid": 100}
    )
    assert status == 202, body
    final = await _finished(server, body["id"], OPERATOR_SECRET)
    assert final["status"] == "failed"
    assert final["events_appended"] == 0
    assert final["error"]  # names what went wrong
    assert await store.head() == 0
