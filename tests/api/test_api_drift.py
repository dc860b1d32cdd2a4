"""Drift reports and desired sets through a real server, on both backends, over the known log
of :mod:`drift_helpers`."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from api_helpers import ALICE, DB, ROOT, WEB, iso, new
from drift_helpers import BASELINE_15, CACHE, item, renamed, seed_drift_history

from eventstore import EventStore
from projections.runner import ProjectionRunner
from tests.api.conftest import OPERATOR_SECRET, READER_SECRET, TOKENS, Server, ServerFactory


@pytest.fixture
async def seeded(store: EventStore) -> EventStore:
    await seed_drift_history(store)
    return store


async def all_items(server: Server, query: str, *, limit: int = 100) -> list[dict[str, Any]]:
    status, page, _ = await server.get(f"/api/v1/drift?{query}&limit={limit}")
    assert status == 200, page
    items = list(page["items"])
    while page["next_cursor"] is not None:
        status, page, _ = await server.get(f"/api/v1/drift?cursor={page['next_cursor']}")
        assert status == 200, page
        items += page["items"]
    return items


async def test_drift_against_a_baseline_says_since_when_and_who(
    seeded: EventStore, serve_app: ServerFactory
) -> None:
    server = await serve_app()
    status, page, _ = await server.get(f"/api/v1/drift?baseline={iso(15)}")
    assert status == 200, page
    assert page["items"] == BASELINE_15
    assert page["next_cursor"] is None
    assert page["position"] == await seeded.head()
    # a later baseline: only what changed after it; the same time as now: nothing
    assert await all_items(server, f"baseline={iso(85)}") == [
        item(CACHE, "created", since=95, who=ROOT),
        item(WEB, "changed", "name", "web", "web3", 90, ROOT),
    ]
    assert await all_items(server, f"baseline={iso(100)}") == []
    # before the first event everything is created
    created = await all_items(server, "baseline=2000-01-01T00:00:00Z")
    assert {(i["id"], i["kind"]) for i in created} == {
        (CACHE, "created"),
        (WEB, "created"),
        ("lab/node/pve1", "created"),
        ("lab/node/pve2", "created"),
    }
    assert next(i for i in created if i["id"] == WEB)["since"] == iso(10)


async def test_every_page_of_a_report_answers_the_same_question(
    seeded: EventStore, serve_app: ServerFactory
) -> None:
    server = await serve_app()
    assert await all_items(server, f"baseline={iso(15)}", limit=1) == BASELINE_15
    status, page, _ = await server.get(f"/api/v1/drift?baseline={iso(15)}&limit=2")
    cursor = page["next_cursor"]
    # later events do not move the report a cursor continues
    await seeded.append([new(WEB, renamed("web3", "web4"), 110, actor=ROOT)])
    await ProjectionRunner(seeded).catch_up()
    status, same, _ = await server.get(f"/api/v1/drift?cursor={cursor}&baseline={iso(15)}&limit=2")
    assert status == 200
    assert same["items"] == BASELINE_15[2:4]
    assert same["position"] == page["position"]
    status, problem, _ = await server.get(f"/api/v1/drift?cursor={cursor}&baseline={iso(16)}")
    assert (status, problem["param"]) == (400, "baseline")
    status, problem, _ = await server.get(f"/api/v1/drift?cursor={cursor}&unmanaged=true")
    assert (status, problem["param"]) == (400, "unmanaged")
    status, problem, _ = await server.get(f"/api/v1/drift?cursor={cursor[:-2]}AA")
    assert (status, problem["param"]) == (400, "cursor")
    status, problem, _ = await server.get("/api/v1/drift?cursor=bm90IGEgY3Vyc29y")
    assert (status, problem["param"]) == (400, "cursor")


PROD: dict[str, Any] = {
    "resources": [
        {
            "match": {"id": WEB},
            "fields": {
                "config.memory": 4096,  # = "4096"
                "tags": "prod",
                "node": "pve1",  # migrated away at 30 by alice
                "name": "web",  # away at 90 by root
                "config.net0.bridge": "vmbr0",
                "config.net0.model": "virtio",
                "config.net0.macaddr": "bc:24:11:00:00:01",
                "config.net0.tag": 30,  # never 30
                "config.scsi0.size": "32768M",  # = 32G
                "config.scsi0": "size=32G,local-lvm:vm-100-disk-0",  # any order
            },
        },
        {
            "match": {"cluster": "lab", "type": "qemu", "name": "db"},
            "fields": {"status": "running"},
        },
        {"match": {"id": DB}},
        {"match": {"id": "lab/node/pve1"}, "fields": {"status": "online"}},
    ]
}

PROD_DRIFT = [
    item(WEB, "changed", "config.net0.tag", 30, "20"),
    item(WEB, "changed", "name", "web", "web3", 90, ROOT),
    item(WEB, "changed", "node", "pve1", "pve2", 30, ALICE),
    item(DB, "missing", since=60),
    item("lab/qemu?name=db", "missing"),
]


async def put(server: Server, name: str, body: Any, **kwargs: Any) -> tuple[int, Any]:
    data: Any = body if isinstance(body, bytes | str) else json.dumps(body)
    if isinstance(data, bytes) and len(data) > 64 * 1024:
        data = io.BytesIO(data)  # aiohttp warns of a large body given as bytes
    headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
    status, answer, _ = await server.request(
        "PUT", f"/api/v1/desired/{name}", data=data, headers=headers, **kwargs
    )
    return status, answer


async def test_drift_against_a_desired_set_compares_only_what_it_names(
    seeded: EventStore, serve_app: ServerFactory
) -> None:
    server = await serve_app()
    status, stored = await put(server, "prod", PROD)
    assert status == 200, stored
    assert (stored["name"], stored["source"], stored["stored_by"]) == (
        "prod",
        "stored",
        "anonymous",
    )
    assert await all_items(server, "desired=prod") == PROD_DRIFT
    with_unmanaged = await all_items(server, "desired=prod&unmanaged=true", limit=2)
    assert with_unmanaged == [item(CACHE, "unmanaged", since=95, who=ROOT), *PROD_DRIFT]
    # the same set in YAML
    yaml_body = (
        "resources:\n"
        f"  - match: {{id: {WEB}}}\n"
        "    fields:\n"
        "      config.memory: '4096'\n"
        "      tags: [prod]\n"
        "      config.net0.tag: 20\n"
        "      config.scsi0.size: 32G\n"
        "      name: web3\n"
    )
    status, stored = await put(
        server, "web", yaml_body, headers={"Content-Type": "application/yaml"}
    )
    assert status == 200, stored
    assert stored["document"]["resources"][0]["fields"]["config.scsi0.size"] == "32G"
    assert await all_items(server, "desired=web") == []


async def test_ignore_rules_of_the_configuration_and_of_a_spec(
    seeded: EventStore, serve_app: ServerFactory
) -> None:
    server = await serve_app(drift_ignore=["node", "config.mem*"])
    assert await all_items(server, f"baseline={iso(15)}") == [
        item(CACHE, "created", since=95, who=ROOT),
        item(WEB, "changed", "name", "web", "web3", 90, ROOT),
        item(DB, "removed", since=60),
    ]
    spec = {
        "match": {"id": WEB},
        "fields": {
            "node": "pve1",
            "name": "web",
            "config.net0": "virtio=AA:AA:AA:AA:AA:AA,bridge=vmbr0,tag=20",
        },
        "ignore": ["name", "config.net*.macaddr"],
    }
    assert (await put(server, "ignoring", {"resources": [spec]}))[0] == 200
    assert await all_items(server, "desired=ignoring") == []
    spec["ignore"] = ["name"]
    assert (await put(server, "ignoring", {"resources": [spec]}))[0] == 200
    [net0] = await all_items(server, "desired=ignoring")
    assert (net0["field"], net0["actual"]) == (
        "config.net0",
        "virtio=BC:24:11:00:00:01,bridge=vmbr0,tag=20",
    )
    assert net0["since"] is None  # the MAC was never AA:...


async def test_desired_sets_are_listed_with_who_stored_them(
    seeded: EventStore, serve_app: ServerFactory
) -> None:
    server = await serve_app(tokens=TOKENS)
    status, problem = await put(server, "prod", PROD, token=READER_SECRET)
    assert status == 403, problem
    status, stored = await put(server, "prod", PROD, token=OPERATOR_SECRET)
    assert status == 200, stored
    assert stored["stored_by"] == "ops"
    status, listed, _ = await server.get("/api/v1/desired", token=READER_SECRET)
    assert status == 200
    [info] = listed["items"]
    assert (info["name"], info["source"], info["stored_by"], info["resources"]) == (
        "prod",
        "stored",
        "ops",
        4,
    )
    assert info["stored_at"] == stored["stored_at"]
    status, got, _ = await server.get("/api/v1/desired/prod", token=READER_SECRET)
    assert status == 200
    assert got == stored
    status, problem, _ = await server.get("/api/v1/desired/nosuch", token=READER_SECRET)
    assert status == 404
    status, problem = await put(server, ".hidden", PROD, token=OPERATOR_SECRET)
    assert (status, problem["param"]) == (400, "name")
    status, problem, _ = await server.get("/api/v1/desired/.hidden", token=READER_SECRET)
    assert (status, problem["param"]) == (400, "name")
    status, problem, _ = await server.get("/api/v1/drift?desired=nosuch", token=READER_SECRET)
    assert status == 404


BIG = b'{"resources": [' + b'{"match": {"id": "lab/qemu/100"}},' * 40000 + b"{}]}"


@pytest.mark.parametrize(
    ("content_type", "body", "status", "says"),
    [
        ("application/json", b'{"resources": [\n  {"match": {"id": 1},}\n]}', 400, "line 2"),
        ("application/yaml", b"resources:\n  - match: {id: x\n  - : :\n", 400, "line 3"),
        ("application/yaml", b"resources: !!python/object/apply:os.system [ls]\n", 400, "line 1"),
        (
            "application/json",
            b'{"resources": [{"match": {"id": "lab/qemu/100"}, '
            b'"fields": {"config.net0.bridge.name": "x"}}]}',
            422,
            "config.net0.bridge.name",
        ),
        (
            "application/json",
            b'{"resources": [{"match": {"id": "lab/qemu/100"}, "fields": {"digest": "x"}}]}',
            422,
            "'digest'",
        ),
        ("application/json", b'{"resources": [{"match": {"name": "web"}}]}', 422, "match"),
        ("application/json", BIG, 413, "1048576"),
        ("text/plain", json.dumps(PROD).encode(), 415, "application/yaml"),
        ("application/x-www-form-urlencoded", b"resources=1", 415, "application/json"),
    ],
)
async def test_a_bad_set_is_refused_and_changes_nothing(
    seeded: EventStore,
    serve_app: ServerFactory,
    content_type: str,
    body: bytes,
    status: int,
    says: str,
) -> None:
    server = await serve_app()
    assert (await put(server, "prod", PROD))[0] == 200
    _, before, _ = await server.get("/api/v1/desired")
    head = await seeded.head()
    for name in ("prod", "other"):
        got, problem = await put(server, name, body, headers={"Content-Type": content_type})
        assert got == status, problem
        assert says in problem["detail"], problem
    _, after, _ = await server.get("/api/v1/desired")
    assert after == before
    assert await all_items(server, "desired=prod") == PROD_DRIFT
    assert await seeded.head() == head


@pytest.mark.parametrize(
    ("query", "status", "param"),
    [
        ("", 400, "baseline"),
        (f"baseline={iso(15)}&desired=prod", 400, "baseline"),
        ("baseline=yesterday", 400, "baseline"),
        ("baseline=2999-01-01T00:00:00Z", 422, "baseline"),
        (f"baseline={iso(15)}&unmanaged=true", 400, "unmanaged"),
        ("desired=prod&unmanaged=yes", 400, "unmanaged"),
        ("desired=prod&limit=0", 400, "limit"),
        ("desired=prod&since=x", 400, "since"),
        ("desired=-prod", 400, "desired"),
        ("desired=" + "p" * 129, 400, "desired"),
    ],
)
async def test_bad_drift_questions_are_refused_naming_the_parameter(
    seeded: EventStore, serve_app: ServerFactory, query: str, status: int, param: str
) -> None:
    server = await serve_app()
    assert (await put(server, "prod", PROD))[0] == 200
    got, problem, _ = await server.get(f"/api/v1/drift?{query}")
    assert (got, problem.get("param")) == (status, param), problem


async def test_sets_from_desired_dir_are_re_read_and_a_stored_set_wins(
    seeded: EventStore, serve_app: ServerFactory, tmp_path: Path
) -> None:
    directory = tmp_path / "desired"
    directory.mkdir()
    edge = directory / "edge.yaml"
    edge.write_text(f"resources:\n  - match: {{id: {WEB}}}\n    fields: {{node: pve2}}\n")
    (directory / "prod.json").write_text(json.dumps({"resources": []}))
    (directory / "broken.yaml").write_text("resources:\n  - match: {id: x\n")
    (directory / "notes.txt").write_text("not a set")
    server = await serve_app(desired_dir=str(directory))
    status, listed, _ = await server.get("/api/v1/desired")
    assert status == 200
    by_name = {i["name"]: i for i in listed["items"]}
    assert sorted(by_name) == ["broken", "edge", "prod"]
    assert (by_name["edge"]["source"], by_name["edge"]["file"]) == ("file", "edge.yaml")
    assert by_name["edge"]["stored_by"] is None
    assert "line" in by_name["broken"]["error"]
    assert await all_items(server, "desired=edge") == []
    assert await all_items(server, "desired=prod") == []
    status, problem, _ = await server.get("/api/v1/drift?desired=broken")
    assert status == 422
    assert "broken.yaml" in problem["detail"]
    # the file changes: the next question reads it again
    edge.write_text(f"resources:\n  - match: {{id: {WEB}}}\n    fields: {{node: pve1}}\n")
    stamp = edge.stat().st_mtime_ns + 1_000_000_000
    os.utime(edge, ns=(stamp, stamp))
    assert await all_items(server, "desired=edge") == [
        item(WEB, "changed", "node", "pve1", "pve2", 30, ALICE)
    ]
    # a stored set of the same name wins over the file
    assert (await put(server, "prod", PROD))[0] == 200
    assert await all_items(server, "desired=prod") == PROD_DRIFT
    status, listed, _ = await server.get("/api/v1/desired")
    assert {i["name"]: i["source"] for i in listed["items"]}["prod"] == "stored"
    edge.unlink()
    status, _, _ = await server.get("/api/v1/drift?desired=edge")
    assert status == 404


async def test_the_openapi_document_describes_drift_and_desired_sets(server: Server) -> None:
    status, doc, _ = await server.get("/api/v1/openapi.json")
    assert status == 200
    drift = doc["paths"]["/api/v1/drift"]["get"]
    assert {p["name"] for p in drift["parameters"]} == {
        "baseline",
        "desired",
        "unmanaged",
        "cursor",
        "limit",
    }
    put_op = doc["paths"]["/api/v1/desired/{name}"]["put"]
    assert {"application/json", "application/yaml"} <= set(put_op["requestBody"]["content"])
    assert {"400", "413", "415", "422"} <= set(put_op["responses"])
    assert "DriftItem" in doc["components"]["schemas"]


async def test_a_desired_dir_that_does_not_exist_yet_holds_no_sets(
    seeded: EventStore, serve_app: ServerFactory, tmp_path: Path
) -> None:
    directory = tmp_path / "later"
    server = await serve_app(desired_dir=str(directory))
    for _ in range(2):
        status, listed, _ = await server.get("/api/v1/desired")
        assert (status, listed) == (200, {"items": []})
    directory.mkdir()
    (directory / "edge.json").write_text(json.dumps({"resources": [{"match": {"id": WEB}}]}))
    status, listed, _ = await server.get("/api/v1/desired")
    assert [i["name"] for i in listed["items"]] == ["edge"]
    assert await all_items(server, "desired=edge") == []
