"""What the ``pvetrail mcp`` tests share: the tool calls asked of a recorded history (good and
bad), the HTTP request that asks each of them of the API, the comparison of the two answers,
and a dump of every row of the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import mcp.types as types
import msgspec
from mcp import Client

from api.assistant.local import META_KEY
from api.assistant.tools import BY_NAME
from eventstore import EventStore
from eventstore.sqlite import SQLiteEventStore
from tests.api.conftest import Server

WEB, BATCH = "lab/qemu/100", "lab/qemu/101"
FUTURE = "2999-01-01T00:00:00Z"


@dataclass
class Call:
    tool: str
    args: dict[str, Any]
    answers: dict[str, Any] = field(default_factory=dict)
    """Filled by :func:`compare`: the tool's structured answer (or problem)."""


async def points(server: Server, token: str | None, checkpoint: int) -> dict[str, Any]:
    """Positions and times of VM 100's first and last projected events, from the API."""
    status, page, _ = await server.get(f"/api/v1/resources/{WEB}/history", token=token)
    assert status == 200, page
    projected = [e for e in page["items"] if e["position"] <= checkpoint]
    first, last = projected[0], projected[-1]
    return {
        "checkpoint": checkpoint,
        "p_first": first["position"],
        "p_last": last["position"],
        "t_first": first["observed_at"],
        "t_last": last["observed_at"],
    }


def good_calls(p: dict[str, Any]) -> list[Call]:
    """A question of every tool that has an answer (none depends on the time it is asked)."""
    return [
        Call("inventory", {"position": p["p_last"], "limit": 3}),
        Call("inventory", {"at": p["t_last"], "type": "qemu"}),
        Call("resource", {"id": WEB, "position": p["p_last"]}),
        Call("resource", {"id": "lab/node/pve1", "at": p["t_last"]}),
        Call("history", {"id": WEB, "limit": 2}),
        Call("changes", {"since": p["t_first"], "until": p["t_last"]}),
        Call("relations", {"position": p["p_last"]}),
        Call("relations", {"position": p["p_last"], "id": WEB}),
        Call("rollback_targets", {"id": WEB}),
        Call("rollback_plan", {"resource": WEB, "target": {"snapshot": "after"}}),
        Call("rollback_plan", {"resource": WEB, "target": {"position": p["p_first"]}}),
        Call("drift", {"baseline": p["t_first"]}),
        Call("desired_sets", {}),
    ]


def bad_calls(p: dict[str, Any], head: int) -> list[Call]:
    """A refused question of every tool: malformed, impossible, unknown."""
    return [
        Call("inventory", {"limit": 0}),
        Call("inventory", {"at": "yesterday"}),
        Call("inventory", {"at": p["t_last"], "position": p["p_last"]}),
        Call("inventory", {"at": FUTURE}),
        Call("inventory", {"position": head + 1}),  # past the log's head
        Call("inventory", {"sort": "name"}),
        Call("resource", {"id": BATCH, "position": p["checkpoint"]}),  # removed: 404, seen when
        Call("resource", {"id": "lab/qemu/999"}),
        Call("resource", {"id": "nope"}),
        Call("history", {"id": WEB, "since": FUTURE}),
        Call("changes", {"until": p["t_last"]}),
        Call("changes", {"since": p["t_first"], "cursor": "not-a-cursor"}),
        Call("relations", {"id": "nope"}),
        Call("rollback_targets", {"id": "lab/node/pve1"}),
        Call("rollback_plan", {"resource": WEB, "target": {"snapshot": "nope"}}),
        Call("rollback_plan", {"resource": 5, "target": {"position": 1}}),
        Call("drift", {}),
        Call("drift", {"desired": "nope"}),
        Call("drift", {"baseline": "x"}),
        Call("desired_sets", {"name": "web"}),
    ]


async def http_answer(server: Server, call: Call, token: str | None) -> tuple[int, Any]:
    """The HTTP API's status and body for the same question as ``call``."""
    op = BY_NAME[call.tool].operation
    if op.body is not None:
        status, body, _ = await server.request(op.method, op.path, token=token, json=call.args)
        return status, body
    args = dict(call.args)
    path = op.path
    if "{id}" in path:
        path = path.replace("{id}", quote(args.pop("id"), safe=""))
    status, body, _ = await server.request(
        op.method, path, token=token, params={k: str(v) for k, v in args.items()}
    )
    return status, body


def _problem(body: Any) -> Any:
    return {k: v for k, v in body.items() if k != "request_id"}


async def compare(
    client: Client, server: Server, calls: list[Call], *, good: bool, token: str | None = None
) -> list[types.CallToolResult]:
    """Ask every call of the tool and of the API: the same JSON (and for a page with a
    ``next_cursor``, the same next page), or the same refusal; returns the tool results."""
    results = []
    for call in calls:
        result = await client.call_tool(call.tool, call.args)
        status, body = await http_answer(server, call, token)
        results.append(result)
        if not good:
            assert result.is_error, (call, result.content[0])
            assert status >= 400, (call, status, body)
            assert _problem(result.structured_content) == _problem(body), (call, result, body)
            assert result.content[0].text == body["detail"]  # type: ignore[union-attr]
            continue
        assert not result.is_error, (call, result.content)
        assert status == 200, (call, body)
        text = result.content[0].text  # type: ignore[union-attr]
        assert msgspec.json.decode(text) == body, call
        assert result.structured_content == body
        call.answers = body
        cursor = body.get("next_cursor") if isinstance(body, dict) else None
        if cursor:
            more = Call(call.tool, {"cursor": cursor, **_path_args(call)})
            results += await compare(client, server, [more], good=True, token=token)
    return results


def _path_args(call: Call) -> dict[str, Any]:
    return {"id": call.args["id"]} if "{id}" in BY_NAME[call.tool].operation.path else {}


def projections_meta(result: types.CallToolResult) -> Any:
    """What a local answer says of the projections' position."""
    assert result.meta is not None
    return result.meta[META_KEY]


async def every_row(store: EventStore) -> dict[str, list[str]]:
    """Every row of every table (the log, the projections, everything else), sorted."""
    if isinstance(store, SQLiteEventStore):
        listing = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
    else:
        listing = (
            "SELECT table_name FROM information_schema.tables WHERE table_schema = "
            "current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name"
        )
    rows: dict[str, list[str]] = {}
    async with store.read_connection() as conn:
        for (table,) in await conn.fetch(listing):
            found = await conn.fetch(f'SELECT * FROM "{table}"')
            rows[table] = sorted(repr(tuple(r)) for r in found)
    assert {"events", "proj_versions"} <= set(rows), sorted(rows)
    return rows
