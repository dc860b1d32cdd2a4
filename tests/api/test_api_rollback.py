"""Rollback targets and plans over HTTP, on both backends, over a known history (see
api_helpers): answers, problems, the document, and that a plan changes nothing."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from api_helpers import DB, ROOT, WEB, iso, seed_history

from eventstore import EventStore
from tests.api.conftest import READER_SECRET, TOKENS, Server, ServerFactory

PROBLEM = "application/problem+json"


@pytest.fixture
async def seeded(store: EventStore, serve_app: ServerFactory) -> Server:
    await seed_history(store)
    return await serve_app()


async def test_rollback_targets_list_past_configurations(seeded: Server) -> None:
    for path in (WEB, quote(WEB, safe="")):
        status, body, _ = await seeded.get(f"/api/v1/resources/{path}/rollback-targets")
        assert status == 200, body
        assert body["resource"] == WEB
        [version] = body["items"]  # the migration alone is no other configuration
        assert version["kind"] == "version"
        assert version["at"] == iso(10)  # memory 2048 until 20 (the migration came later)
        assert version["differs"] == ["memory"]
        assert "memory 2048 (now 4096)" in version["label"]
        assert version["changed_by"]["user"] == ROOT.user


async def test_a_plan_over_http_changes_nothing(seeded: Server) -> None:
    head = await seeded.store.head()
    status, plan, response = await seeded.request(
        "POST",
        "/api/v1/rollback-plans",
        json={"resource": WEB, "target": {"at": iso(15)}},
    )
    assert status == 200, plan
    assert response.headers["Content-Type"].startswith("application/json")
    assert plan["based_on_digest"] == "d2"
    assert [(s["order"], s["action"], s["method"], s["path"]) for s in plan["steps"]] == [
        (1, "config", "PUT", "/nodes/pve2/qemu/100/config"),
        (2, "migrate", "POST", "/nodes/pve2/qemu/100/migrate"),
        (3, "reboot", "POST", "/nodes/pve1/qemu/100/status/reboot"),
    ]
    config, migrate, reboot = plan["steps"]
    assert config["params"] == {"memory": "2048", "digest": "d2"}
    # memory is hotplugged only with hotplug=memory (pve-api.md §5.1), off by default
    assert config["requires_reboot"]
    assert "pending until the guest restarts: memory" in config["reason"]
    assert migrate["params"] == {"target": "pve1", "online": 1}
    assert (reboot["disruptive"], reboot["requires_reboot"]) == (True, True)
    assert await seeded.store.head() == head


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"resource": "lab/qemu/999", "target": {"at": iso(15)}}, 404, "has ever been seen"),
        ({"resource": "lab/node/pve1", "target": {"at": iso(15)}}, 422, "not a guest"),
        ({"resource": WEB, "target": {"at": "2999-01-01T00:00:00Z"}}, 422, "future"),
        ({"resource": WEB, "target": {"at": iso(5)}}, 422, "did not exist"),
        ({"resource": WEB, "target": {"snapshot": "nope"}}, 422, "no snapshot"),
        ({"resource": WEB, "target": {"backup": "local:backup/x.vma"}}, 422, "no backup"),
        ({"resource": WEB, "target": {}}, 400, "exactly one"),
        ({"resource": WEB, "target": {"at": iso(15), "position": 3}}, 400, "exactly one"),
        ({"resource": WEB, "target": {"when": iso(15)}}, 400, "when"),
        ({"resource": "nonsense", "target": {"at": iso(15)}}, 400, "resource id"),
    ],
)
async def test_impossible_plans_are_problems(
    seeded: Server, body: dict[str, object], status: int, words: str
) -> None:
    head = await seeded.store.head()
    got, problem, response = await seeded.request("POST", "/api/v1/rollback-plans", json=body)
    assert got == status, problem
    assert response.headers["Content-Type"].startswith(PROBLEM)
    assert words in problem["detail"], problem
    assert await seeded.store.head() == head


@pytest.mark.parametrize(
    ("rid", "status"), [("lab/qemu/999", 404), ("lab/node/pve1", 422), (DB, 200)]
)
async def test_rollback_targets_of_unknown_non_guest_and_removed(
    seeded: Server, rid: str, status: int
) -> None:
    got, body, _ = await seeded.get(f"/api/v1/resources/{rid}/rollback-targets")
    assert got == status, body
    if status == 200:  # a removed guest has targets too: its last configuration
        assert [t["kind"] for t in body["items"]] == ["version"]
        assert "gone now" in body["items"][0]["label"]


async def test_the_document_describes_both_routes(seeded: Server) -> None:
    _, doc, _ = await seeded.get("/api/v1/openapi.json")
    targets = doc["paths"]["/api/v1/resources/{id}/rollback-targets"]["get"]
    assert targets["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RollbackTargets"
    }
    plans = doc["paths"]["/api/v1/rollback-plans"]["post"]
    assert plans["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PlanRequest"
    }
    assert {"400", "404", "422"} <= set(plans["responses"])
    step = doc["components"]["schemas"]["PlanStep"]["properties"]
    assert {"order", "action", "method", "path", "params", "reason"} <= set(step)
    assert {"disruptive", "requires_reboot"} <= set(step)


async def test_readers_may_plan_and_a_plan_takes_only_json(
    store: EventStore, serve_app: ServerFactory
) -> None:
    await seed_history(store)
    server = await serve_app(tokens=TOKENS)
    body = {"resource": WEB, "target": {"at": iso(15)}}
    status, plan, _ = await server.request(
        "POST", "/api/v1/rollback-plans", token=READER_SECRET, json=body
    )
    assert status == 200, plan
    status, problem, _ = await server.request(
        "POST",
        "/api/v1/rollback-plans",
        token=READER_SECRET,
        data=b"resource=lab/qemu/100",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 415, problem
