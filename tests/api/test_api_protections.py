"""What a web page cannot do to a loopback instance, and answers a client can rely on: the
``Host`` check (DNS rebinding), JSON-only bodies (cross-site forms), ``WWW-Authenticate`` on
401, and a ``method`` metrics label that a client cannot invent values for."""

from __future__ import annotations

import pytest

from api.server import answered_hosts
from eventstore import EventStore
from tests.api.conftest import OPERATOR_SECRET, TOKENS, Server, ServerFactory, append_events
from tests.api.test_api_app import assert_problem

LOOPBACK = answered_hosts("127.0.0.1", ["pvetrail.example.org"])


def test_the_answered_hosts_are_the_listen_address_loopback_names_and_the_configured() -> None:
    assert set(answered_hosts("127.0.0.1", [])) == {"127.0.0.1", "localhost", "::1"}
    assert "::1" in answered_hosts("[::1]", [])
    assert "pvetrail.example.org" in LOOPBACK


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost:8080", "LOCALHOST", "[::1]:8080", "pvetrail.example.org"]
)
async def test_requests_for_this_address_are_answered(serve_app: ServerFactory, host: str) -> None:
    server = await serve_app(hosts=LOOPBACK)
    status, _, _ = await server.get("/api/v1/resources", headers={"Host": host})
    assert status == 200


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8080", "127.0.0.1.evil.example", "localhost.evil"]
)
async def test_a_rebound_name_is_refused_and_reads_nothing(
    serve_app: ServerFactory, host: str
) -> None:
    server = await serve_app(hosts=LOOPBACK)
    await append_events(server.store, 2)
    for path in ("/api/v1/resources", "/api/v1/events", "/api/v1/integrity"):
        status, body, response = await server.get(path, headers={"Host": host})
        problem = assert_problem(status, body, response, 403)
        assert host.split(":")[0].lower() in str(problem["detail"])
        assert "api.allowed_hosts" in str(problem["detail"])
        assert "lab/qemu" not in str(body)


async def test_without_a_host_list_any_host_is_answered(server: Server) -> None:
    status, _, _ = await server.get("/api/v1/resources", headers={"Host": "anything.example"})
    assert status == 200


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (None, b'{"cluster": "lab"}'),
        ("text/plain", b'{"cluster": "lab"}'),
        ("application/x-www-form-urlencoded", b"cluster=lab"),
        ("multipart/form-data; boundary=x", b"--x--"),
        ("application/yaml", b"cluster: lab"),
    ],
)
async def test_a_post_that_is_not_json_is_415_and_queues_nothing(
    serve_app: ServerFactory, store: EventStore, content_type: str | None, body: bytes
) -> None:
    server = await serve_app(tokens=TOKENS, clusters=["lab"])
    headers = {"Content-Type": content_type} if content_type else {}
    if content_type is None:
        headers["Content-Type"] = ""
    status, problem, response = await server.request(
        "POST", "/api/v1/resyncs", token=OPERATOR_SECRET, data=body, headers=headers
    )
    assert_problem(status, problem, response, 415)
    assert "application/json" in str(problem["detail"])
    assert await store.head() == 0


async def test_a_json_post_passes_the_type_check(serve_app: ServerFactory) -> None:
    server = await serve_app(tokens=TOKENS, clusters=["lab"])
    status, body, _ = await server.request(
        "POST",
        "/api/v1/resyncs",
        token=OPERATOR_SECRET,
        data=b'{"cluster": "nope"}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert status != 415, body  # judged on its content (an unknown cluster) instead


async def test_a_401_names_the_bearer_scheme(serve_app: ServerFactory) -> None:
    server = await serve_app(tokens=TOKENS)
    for token in (None, "wrong-secret-0123456789"):
        status, body, response = await server.get("/api/v1/resources", token=token)
        assert_problem(status, body, response, 401)
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="pvetrail"'


async def test_the_metrics_method_label_takes_only_known_methods(server: Server) -> None:
    for method in ("BREW", "PROPFIND", "X-INVENTED-1"):
        await server.request(method, "/api/v1/resources")
    await server.get("/api/v1/resources")
    _, text, _ = await server.get("/metrics")
    assert 'method="other"' in text
    assert 'method="GET"' in text
    for method in ("BREW", "PROPFIND", "X-INVENTED-1"):
        assert f'method="{method}"' not in text
