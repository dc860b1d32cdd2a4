"""The read-side endpoints over a known history, on both backends: answers and bad input."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from api_helpers import DB, WEB, iso, seed_history

from eventstore import EventStore
from tests.api.conftest import Server, ServerFactory

PROBLEM = "application/problem+json"


@pytest.fixture
async def seeded(store: EventStore, serve_app: ServerFactory) -> Server:
    await seed_history(store)
    return await serve_app()


async def problem(server: Server, path: str, status: int) -> dict[str, object]:
    got, body, response = await server.get(path)
    assert got == status, body
    assert response.headers["Content-Type"].startswith(PROBLEM)
    assert body["status"] == status
    return dict(body)


async def test_inventory_now_then_and_paged(seeded: Server) -> None:
    status, page, _ = await seeded.get("/api/v1/resources?type=qemu")
    assert status == 200, page
    assert [r["id"] for r in page["items"]] == [WEB]  # db was removed at 60
    web = page["items"][0]
    assert (web["node"], web["config"]["memory"], web["tags"]) == ("pve2", "4096", ["prod"])
    status, page, _ = await seeded.get(f"/api/v1/resources?type=qemu&at={iso(15)}")
    assert [r["id"] for r in page["items"]] == [WEB, DB]
    assert page["at"] == iso(15)
    status, first, _ = await seeded.get(f"/api/v1/resources?at={iso(15)}&limit=2")
    assert len(first["items"]) == 2
    assert first["next_cursor"]
    status, second, _ = await seeded.get(f"/api/v1/resources?limit=2&cursor={first['next_cursor']}")
    assert status == 200
    assert second["position"] == first["position"]
    ids = [r["id"] for r in first["items"] + second["items"]]
    assert ids == sorted(ids)
    assert len(set(ids)) == 4


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("node=pve2", ["lab/node/pve2", WEB]),
        ("tag=prod", [WEB]),
        ("q=WE", [WEB]),
        ("status=online", ["lab/node/pve1", "lab/node/pve2"]),
        ("type=lxc", []),
    ],
)
async def test_inventory_filters(seeded: Server, query: str, expected: list[str]) -> None:
    status, page, _ = await seeded.get(f"/api/v1/resources?{query}")
    assert status == 200, page
    assert [r["id"] for r in page["items"]] == expected


async def test_one_resource_in_both_path_forms(seeded: Server) -> None:
    status, plain, _ = await seeded.get(f"/api/v1/resources/{WEB}")
    assert status == 200, plain
    status, encoded, _ = await seeded.get(f"/api/v1/resources/{quote(WEB, safe='')}")
    assert encoded == plain
    assert plain["id"] == WEB
    assert plain["node"] == "pve2"
    status, then, _ = await seeded.get(f"/api/v1/resources/{WEB}?at={iso(25)}")
    assert (then["node"], then["config"]["memory"]) == ("pve1", "4096")
    status, first, _ = await seeded.get(f"/api/v1/resources/{WEB}?position=3")
    assert first["config"]["memory"] == "2048"


async def test_a_removed_resource_is_404_with_when_it_was_seen(seeded: Server) -> None:
    body = await problem(seeded, f"/api/v1/resources/{DB}", 404)
    assert body["first_seen"] == iso(10)
    assert body["last_seen"] is not None
    body = await problem(seeded, "/api/v1/resources/lab/qemu/999", 404)
    assert "first_seen" not in body
    status, then, _ = await seeded.get(f"/api/v1/resources/{DB}?at={iso(30)}")
    assert status == 200
    assert then["name"] == "db"


async def test_history_with_actor_and_window(seeded: Server) -> None:
    status, page, _ = await seeded.get(f"/api/v1/resources/{WEB}/history")
    assert status == 200, page
    events = page["items"]
    assert [e["event"] for e in events] == ["discovered", "config_changed", "migrated"]
    memory = events[1]
    assert memory["actor"]["user"] == "root@pam"
    assert (memory["observed_after"], memory["observed_at"]) == (iso(15), iso(20))
    assert {"field": "config.memory", "old": "2048", "new": "4096"} in memory["changes"]
    assert events[2]["actor"]["user"] == "alice@pve"
    status, window, _ = await seeded.get(
        f"/api/v1/resources/{quote(WEB, safe='')}/history?since={iso(10)}&until={iso(20)}"
    )
    assert [e["event"] for e in window["items"]] == ["config_changed"]
    status, first, _ = await seeded.get(f"/api/v1/resources/{WEB}/history?limit=2")
    status, rest, _ = await seeded.get(
        f"/api/v1/resources/{WEB}/history?cursor={first['next_cursor']}"
    )
    assert [e["event"] for e in rest["items"]] == ["migrated"]
    await problem(seeded, "/api/v1/resources/lab/qemu/999/history", 404)


async def test_changes_between_two_times(seeded: Server) -> None:
    status, page, _ = await seeded.get(f"/api/v1/changes?since={iso(15)}&until={iso(65)}")
    assert status == 200, page
    by_id = {c["id"]: c for c in page["items"]}
    assert by_id[WEB]["change"] == "changed"
    assert by_id[DB]["change"] == "removed"
    fields = {c["field"] for c in by_id[WEB]["changes"]}
    assert {"config.memory", "node"} <= fields
    status, page, _ = await seeded.get(f"/api/v1/changes?since={iso(15)}&type=node")
    assert page["items"] == []


async def test_relations(seeded: Server) -> None:
    status, graph, _ = await seeded.get(f"/api/v1/relations?id={WEB}")
    assert status == 200, graph
    assert {"from": WEB, "rel": "runs_on", "to": "lab/node/pve2"} in [
        {k: e[k] for k in ("from", "rel", "to")} for e in graph["edges"]
    ]
    status, then, _ = await seeded.get(f"/api/v1/relations?id={WEB}&at={iso(25)}")
    assert any(e["rel"] == "runs_on" and e["to"] == "lab/node/pve1" for e in then["edges"])


@pytest.mark.parametrize(
    ("path", "status", "param"),
    [
        ("/api/v1/resources?at=yesterday", 400, "at"),
        ("/api/v1/resources?at=2025-06-01T12:00:00", 400, "at"),
        (f"/api/v1/resources?at={iso(1)}&position=1", 400, "position"),
        ("/api/v1/resources?at=2999-01-01T00:00:00Z", 422, "at"),
        ("/api/v1/resources?position=-1", 400, "position"),
        ("/api/v1/resources?position=99999", 422, "position"),
        ("/api/v1/resources?limit=0", 400, "limit"),
        ("/api/v1/resources?limit=1001", 400, "limit"),
        ("/api/v1/resources?cursor=garbage", 400, "cursor"),
        ("/api/v1/resources?tag=", 400, "tag"),
        ("/api/v1/resources?nodes=pve1", 400, "nodes"),
        ("/api/v1/resources?node=a&node=b", 400, "node"),
        (f"/api/v1/resources/{WEB}?at=13:00", 400, "at"),
        (f"/api/v1/resources/{WEB}?since={iso(1)}", 400, "since"),
        (f"/api/v1/resources/{WEB}/history?since=never", 400, "since"),
        (f"/api/v1/resources/{WEB}/history?until=2999-01-01T00:00:00Z", 422, "until"),
        (f"/api/v1/resources/{WEB}/history?since={iso(30)}&until={iso(20)}", 422, "until"),
        (f"/api/v1/resources/{WEB}/history?cursor=x", 400, "cursor"),
        ("/api/v1/changes", 400, "since"),
        ("/api/v1/changes?since=2025-13-01T00:00:00Z", 400, "since"),
        (f"/api/v1/changes?since={iso(1)}&until=soon", 400, "until"),
        ("/api/v1/changes?since=2999-01-01T00:00:00Z", 422, "since"),
        ("/api/v1/relations?id=nope", 400, "id"),
        ("/api/v1/relations?position=x", 400, "position"),
    ],
)
async def test_bad_input_is_a_problem_naming_the_parameter(
    seeded: Server, path: str, status: int, param: str
) -> None:
    body = await problem(seeded, path, status)
    assert body["param"] == param, body


async def test_rollback_targets_are_not_served_yet(seeded: Server) -> None:
    body = await problem(seeded, f"/api/v1/resources/{WEB}/rollback-targets", 404)
    assert "rollback" in str(body["detail"])


async def test_a_cursor_passed_back_alone_keeps_its_filters(seeded: Server) -> None:
    status, first, _ = await seeded.get("/api/v1/resources?type=node&limit=1")
    assert status == 200
    assert first["next_cursor"]
    cursor = quote(first["next_cursor"])
    status, second, _ = await seeded.get(f"/api/v1/resources?cursor={cursor}")
    assert status == 200
    assert [r["type"] for r in second["items"]] == ["node"]
    status, again, _ = await seeded.get(f"/api/v1/resources?type=node&cursor={cursor}")
    assert (status, again) == (200, second)
    status, body, _ = await seeded.get(f"/api/v1/resources?type=qemu&cursor={cursor}")
    assert (status, body["param"]) == (400, "type")


async def test_the_longest_id_pages_its_history_over_http(
    store: EventStore, serve_app: ServerFactory
) -> None:
    from collectors.events import Discovered, Renamed
    from projections.runner import ProjectionRunner
    from tests.projections.projection_helpers import change, new

    rid = "lab/storage/pve1/" + "s" * (1024 - len("lab/storage/pve1/"))
    state = {"id": rid, "cluster": "lab", "type": "storage", "node": "pve1", "name": "s"}
    await store.append(
        [new(rid, Discovered(state=state), 1)]
        + [new(rid, Renamed(changes=change("name", f"n{i}", f"n{i + 1}")), 2 + i) for i in range(3)]
    )
    await ProjectionRunner(store).catch_up()
    server = await serve_app()
    path = f"/api/v1/resources/{quote(rid, safe='')}/history?limit=1"
    status, page, _ = await server.get(path)
    seen = list(page["items"])
    while page["next_cursor"]:
        status, page, _ = await server.get(f"{path}&cursor={quote(page['next_cursor'])}")
        assert status == 200, page
        seen += page["items"]
    assert len(seen) == 4
