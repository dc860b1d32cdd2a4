"""The app on a real loopback server: probes, the raw log, errors, auth, request ids, limits."""

from __future__ import annotations

import io
import json
import logging

import aiohttp
import pytest

from api.app import bound_port, create_app, run_site
from api.auth import check_listen
from api.config import ConfigError
from api.logs import configure_logging
from collectors.service import ClusterHealth
from eventstore import open_store
from projections.models import ProjectionLag
from tests.api.conftest import (
    OPERATOR_SECRET,
    READER_SECRET,
    T0,
    TOKENS,
    Server,
    ServerFactory,
    append_events,
)

PROBLEM = "application/problem+json"
JSON = {"Content-Type": "application/json"}


def assert_problem(status: int, body: object, response: object, expected: int) -> dict[str, object]:
    assert status == expected, body
    assert isinstance(body, dict)
    assert response.headers["Content-Type"].startswith(PROBLEM)  # type: ignore[attr-defined]
    assert body["status"] == expected
    assert {"type", "title", "status", "detail"} <= set(body)
    return body


async def test_healthz_and_readyz(server: Server) -> None:
    status, body, _ = await server.get("/healthz")
    assert (status, body) == (200, {"status": "ok"})
    status, body, _ = await server.get("/readyz")
    assert status == 200, body
    assert body["ready"] is True
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["migrations"]["ok"] is True


async def test_readyz_is_503_while_migrations_are_pending(sqlite_url: str) -> None:
    # The fixture's store is migrated; a second, empty file is not.
    fresh = await open_store(sqlite_url.replace("pvetrail.db", "other.db"))
    runner = await run_site(create_app(fresh), "127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{bound_port(runner)}/readyz"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            status, body = response.status, await response.json()
    finally:
        await runner.cleanup()
        await fresh.close()
    assert status == 503
    assert body["ready"] is False
    assert body["checks"]["migrations"]["ok"] is False


async def test_events_pages_in_position_order(server: Server) -> None:
    await append_events(server.store, 5)
    status, body, _ = await server.get("/api/v1/events?limit=2")
    assert status == 200, body
    assert [e["position"] for e in body["items"]] == [1, 2]
    assert body["next_cursor"] is not None
    first = body["items"][0]
    assert first["stream_id"] == "lab/qemu/100"
    assert first["type"] == "config_changed"
    assert first["data"]["changes"][0] == {"field": "config.memory", "new": 0}
    assert first["observed_at"] == "2026-11-01T12:00:00Z"
    assert first["actor"] is None
    assert body["items"][1]["actor"]["user"] == "root@pam"
    assert len(first["hash"]) == 64
    status, body, _ = await server.get(f"/api/v1/events?limit=2&cursor={body['next_cursor']}")
    assert [e["position"] for e in body["items"]] == [3, 4]
    status, body, _ = await server.get(f"/api/v1/events?cursor={body['next_cursor']}")
    assert [e["position"] for e in body["items"]] == [5]
    assert body["next_cursor"] is None
    status, body, _ = await server.get("/api/v1/events?after=4")
    assert [e["position"] for e in body["items"]] == [5]


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("after=-1", "after"),
        ("after=1.5", "after"),
        ("cursor=%00", "cursor"),
        ("cursor=abc", "cursor"),
        ("cursor=1&after=1", "cursor"),
    ],
)
async def test_events_bad_parameters_are_400_naming_them(
    server: Server, query: str, param: str
) -> None:
    status, body, response = await server.get(f"/api/v1/events?{query}")
    assert assert_problem(status, body, response, 400)["param"] == param


async def test_integrity_reports_the_chain(server: Server) -> None:
    await append_events(server.store, 3)
    status, body, _ = await server.get("/api/v1/integrity")
    assert status == 200
    assert body["ok"] is True
    assert body["checked"] == 3
    assert body["head"] == 3


async def test_unknown_routes_and_methods_are_problems(server: Server) -> None:
    status, body, response = await server.get("/api/v1/nothing-here")
    assert_problem(status, body, response, 404)
    status, body, response = await server.request("DELETE", "/api/v1/events")
    assert_problem(status, body, response, 405)
    assert "GET" in response.headers["Allow"]


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("/api/v1/resources/lab", "not a resource id"),
        ("/api/v1/resources/LAB%2Fqemu%2F100", "not a cluster name"),
        ("/api/v1/resources/lab/%FF/100", "UTF-8"),
        ("/api/v1/resources/lab%2F%2F100/history", "not a resource id"),
    ],
)
async def test_malformed_resource_ids_are_400(server: Server, path: str, detail: str) -> None:
    status, body, response = await server.get(path)
    problem = assert_problem(status, body, response, 400)
    assert problem["param"] == "id"
    assert detail in str(problem["detail"])


async def test_bodies_over_one_mebibyte_are_413(serve_app: ServerFactory) -> None:
    server = await serve_app(tokens=TOKENS, clusters=["lab"])
    big = b"{" + b" " * (1024 * 1024) + b"}"
    status, body, response = await server.request(
        "POST", "/api/v1/resyncs", token=OPERATOR_SECRET, data=io.BytesIO(big), headers=JSON
    )
    assert_problem(status, body, response, 413)

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(17):
            yield b" " * 65536

    status, body, response = await server.request(
        "POST", "/api/v1/resyncs", token=OPERATOR_SECRET, data=chunks(), headers=JSON
    )
    assert_problem(status, body, response, 413)


@pytest.mark.parametrize(
    ("body", "status_code", "param"),
    [
        (b"not json", 400, "body"),
        (b'{"cluster": 5}', 400, "body"),
        (b'{"cluster": "lab", "vmid": -1}', 400, "body"),
        (b'{"cluster": "lab", "surprise": 1}', 400, "body"),
        (b'{"cluster": "elsewhere"}', 422, "cluster"),
    ],
)
async def test_resync_bodies_are_checked(
    serve_app: ServerFactory, body: bytes, status_code: int, param: str
) -> None:
    server = await serve_app(tokens=TOKENS, clusters=["lab"])
    status, answer, response = await server.request(
        "POST", "/api/v1/resyncs", token=OPERATOR_SECRET, data=body, headers=JSON
    )
    assert assert_problem(status, answer, response, status_code)["param"] == param


async def test_auth_reader_operator_and_open_paths(serve_app: ServerFactory) -> None:
    server = await serve_app(tokens=TOKENS)
    status, body, response = await server.get("/api/v1/events")
    assert_problem(status, body, response, 401)
    status, body, response = await server.get("/api/v1/events", token="wrong-token-000000000")
    assert_problem(status, body, response, 401)
    status, body, response = await server.get(
        "/api/v1/events", headers={"Authorization": f"Basic {READER_SECRET}"}
    )
    assert_problem(status, body, response, 401)
    status, body, _ = await server.get("/api/v1/events", token=READER_SECRET)
    assert status == 200
    status, body, _ = await server.get("/api/v1/events", token=OPERATOR_SECRET)
    assert status == 200
    # A reader on an operator route.
    status, body, response = await server.request(
        "POST", "/api/v1/resyncs", token=READER_SECRET, json={"cluster": "lab"}
    )
    assert "reader" in str(assert_problem(status, body, response, 403)["detail"])
    for path in ("/healthz", "/readyz", "/metrics"):
        status, _, _ = await server.get(path)
        assert status == 200, path


def test_no_tokens_means_loopback_only() -> None:
    check_listen("127.0.0.1", [])
    check_listen("::1", [])
    check_listen("0.0.0.0", TOKENS)
    with pytest.raises(ConfigError, match="no API tokens are configured"):
        check_listen("0.0.0.0", [])
    with pytest.raises(ConfigError, match="no API tokens"):
        check_listen("192.168.1.10", [])


async def test_request_ids_and_json_logs_without_secrets(serve_app: ServerFactory) -> None:
    stream = io.StringIO()
    configure_logging(logging.INFO, stream=stream, json_lines=True)
    try:
        server = await serve_app(tokens=TOKENS)
        status, _, response = await server.get(
            "/api/v1/events?limit=1", token=READER_SECRET, headers={"X-Request-Id": "abc-123"}
        )
        assert status == 200
        assert response.headers["X-Request-Id"] == "abc-123"
        _, _, response = await server.get("/api/v1/events", token="not-a-token-00000000")
        generated = response.headers["X-Request-Id"]
        assert len(generated) >= 20
        _, _, response = await server.get("/healthz", headers={"X-Request-Id": "bad id\u00e9"})
        assert response.headers["X-Request-Id"] not in ("bad id\u00e9", generated)
    finally:
        logging.getLogger().handlers.clear()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    access = [entry for entry in lines if entry.get("route") == "/api/v1/events"]
    assert access[0]["request_id"] == "abc-123"
    assert access[0]["status"] == 200
    assert access[0]["token"] == "grafana"
    assert access[1]["request_id"] == generated
    assert access[1]["status"] == 401
    text = stream.getvalue()
    assert READER_SECRET not in text
    assert "not-a-token" not in text


async def test_metrics_count_requests_by_route_and_status(server: Server) -> None:
    await server.get("/api/v1/events")
    await server.get("/api/v1/events?limit=0")
    status, text, response = await server.get("/metrics")
    assert status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert (
        'pvetrail_http_requests_total{method="GET",route="/api/v1/events",status="200"} 1.0' in text
    )
    assert 'route="/api/v1/events",status="400"} 1.0' in text
    assert "pvetrail_http_request_duration_seconds_bucket" in text


async def test_openapi_document_lists_the_routes(server: Server) -> None:
    status, doc, _ = await server.get("/api/v1/openapi.json")
    assert status == 200
    assert doc["openapi"].startswith("3.1")
    assert "/api/v1/events" in doc["paths"]
    events = doc["paths"]["/api/v1/events"]["get"]
    assert {p["name"] for p in events["parameters"]} == {"after", "cursor", "limit"}
    assert "EventPage" in doc["components"]["schemas"]
    assert "Problem" in doc["components"]["schemas"]
    assert doc["paths"]["/healthz"]["get"]["security"] == []


def test_t0_is_utc() -> None:
    assert T0.utcoffset() is not None


class LaggingProjections:
    """A projection runner (our own port) that reports a fixed lag."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def lag(self) -> ProjectionLag:
        return ProjectionLag(head=12, checkpoint=10, seconds=self.seconds)

    def problem(self) -> str | None:
        return None


class DownCollectors:
    """A collector service (our own port) whose one cluster is down."""

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def sync(self, cluster: str, **_: object) -> None:
        raise AssertionError("not called")

    def health(self) -> dict[str, ClusterHealth]:
        return {
            "lab": ClusterHealth(
                state="down",
                last_error="connection refused",
                consecutive_failures=3,
                polls_total={"fast": 5, "deep": 1},
                poll_errors_total={"connect": 3},
                events_appended_total=42,
                last_poll_duration_s={"fast": 0.25},
                clock_offsets_s={"pve1": 300.5},
                warnings=["node pve1's clock is +300 s off ours (±0.5 s)"],
            )
        }


async def test_readyz_reports_lag_and_clusters_and_a_pve_outage_is_not_503(
    serve_app: ServerFactory,
) -> None:
    server = await serve_app(projections=LaggingProjections(3.0), collectors=DownCollectors())
    status, body, _ = await server.get("/readyz")
    assert status == 200, body
    assert body["checks"]["projections"]["lag_seconds"] == 3.0
    assert body["clusters"]["lab"]["state"] == "down"
    assert body["clusters"]["lab"]["consecutive_failures"] == 3
    assert body["clusters"]["lab"]["clock_offsets_s"] == {"pve1": 300.5}
    assert "pve1's clock" in body["clusters"]["lab"]["warnings"][0]
    status, text, _ = await server.get("/metrics")
    assert 'pvetrail_polls_total{cluster="lab",kind="fast"} 5.0' in text
    assert 'pvetrail_poll_errors_total{cluster="lab",kind="connect"} 3.0' in text
    assert 'pvetrail_events_appended_total{cluster="lab"} 42.0' in text
    assert 'pvetrail_collector_up{cluster="lab"} 0.0' in text
    assert 'pvetrail_node_clock_offset_seconds{cluster="lab",node="pve1"} 300.5' in text
    assert "pvetrail_projection_lag_events 2.0" in text
    assert "pvetrail_projection_lag_seconds 3.0" in text


async def test_readyz_is_503_when_projections_lag_over_30_seconds(
    serve_app: ServerFactory,
) -> None:
    server = await serve_app(projections=LaggingProjections(45.0))
    status, body, _ = await server.get("/readyz")
    assert status == 503
    assert body["checks"]["projections"]["ok"] is False
    assert "45" in body["checks"]["projections"]["detail"]
