"""The tools ``pvetrail mcp`` offers: API read operations, described for an assistant.

Each tool is one operation of :mod:`api.routes` (the single source of its parameters, their
schemas and its answer type): its input schema is the operation's parameters (or, for a
rollback plan, its body), and :func:`question` turns the tool's arguments into the raw
strings an HTTP request would carry, so that the API's own parsing judges them, with the
API's own words. Whoever answers (:mod:`.local`, :mod:`.remote`) answers with the same JSON
the API gives for the same query, paged the same way (``next_cursor`` back as ``cursor``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import msgspec

from ..errors import BadParameterError
from ..openapi import Operation
from ..params import check_query, check_resource_id
from ..readers import Asked
from ..routes import (
    CREATE_ROLLBACK_PLAN,
    GET_DRIFT,
    GET_RELATIONS,
    GET_RESOURCE,
    GET_RESOURCE_HISTORY,
    GET_ROLLBACK_TARGETS,
    LIST_CHANGES,
    LIST_DESIRED,
    LIST_RESOURCES,
)

RESOURCE_ID = (
    "resource id {cluster}/{pve-id}, e.g. lab/qemu/100, lab/lxc/200, lab/node/pve1, "
    "lab/storage/pve1/local-lvm, lab/pool/prod"
)
"""What a tool's ``id`` argument is (the HTTP path parameter's own description is about URL
encoding, which does not concern a tool)."""

PAGING = (
    " Lists are paged: when the answer has a next_cursor, call again with cursor set to it "
    "(and the same other arguments, or none) for the next page."
)


class Answer(NamedTuple):
    """A tool's answer: the API's JSON, and what the answering side adds beside it."""

    body: bytes
    """The JSON the HTTP API gives for the same query."""
    meta: dict[str, Any] = {}
    """The result's ``_meta`` (the projections' position and lag, where known)."""
    notes: tuple[str, ...] = ()
    """Extra text items for the assistant (the answer is behind the log)."""


class Refused(Exception):
    """The question was refused: ``detail`` says why; ``problem`` is the API's problem+json
    body for it (None when no pvetrail answered, e.g. an unreachable server)."""

    def __init__(self, detail: str, problem: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.problem = problem


class ToolSpec(NamedTuple):
    """One tool: its name, the operation it asks, and what it is for."""

    name: str
    operation: Operation
    purpose: str

    @property
    def description(self) -> str:
        """The purpose, then which API operation gives the same answer."""
        op = self.operation
        return f"{self.purpose}\n\nSame answer as pvetrail's HTTP API {op.method} {op.path}."

    def input_schema(self) -> dict[str, Any]:
        """The JSON Schema of the tool's arguments."""
        op = self.operation
        if op.body is not None:
            return _body_schema(op.body)
        properties = {
            p.name: {**p.schema, "description": RESOURCE_ID if p.where == "path" else p.description}
            for p in op.params
        }
        required = [p.name for p in op.params if p.where == "path" or p.required]
        return {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        }


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "inventory",
        LIST_RESOURCES,
        "The Proxmox VE inventory (guests, nodes, storages, pools, snapshots, backups, ...) as "
        "pvetrail had observed it at a time or log position (default now), optionally "
        "filtered by type, node, status, tag, pool or a substring of the id or name. Answers "
        "{at, position, items: [resource], next_cursor}." + PAGING,
    ),
    ToolSpec(
        "resource",
        GET_RESOURCE,
        "One resource as it was at a time or log position (default now): its fields and its "
        "whole config (secrets as fingerprints). If it did not exist then, the error says "
        "when it was first and last seen.",
    ),
    ToolSpec(
        "history",
        GET_RESOURCE_HISTORY,
        "One resource's changes, oldest first: each event with observed_at (the change "
        "happened no later), observed_after (and after this), the actor (Proxmox user and "
        "task, when known) and field-level {field, old, new}. since/until select observed_at "
        "in (since, until]." + PAGING,
    ),
    ToolSpec(
        "changes",
        LIST_CHANGES,
        "The net change of the whole inventory between two times (since is required, until "
        "defaults to now): each resource created, changed (with field-level old/new) or "
        "removed. Use it for questions such as 'what changed on pve2 last night'." + PAGING,
    ),
    ToolSpec(
        "relations",
        GET_RELATIONS,
        "The relationship graph as it was at a time or log position (default now): edges "
        "{from, rel, to}, rel one of runs_on, uses_storage, member_of, attached_to, "
        "snapshot_of, backup_of; with id, only the edges touching that resource.",
    ),
    ToolSpec(
        "rollback_targets",
        GET_ROLLBACK_TARGETS,
        "The points a guest (qemu or lxc) can be taken back to, newest first: its past "
        "configurations, snapshots and backups, each with at, position and label (use one in "
        "rollback_plan).",
    ),
    ToolSpec(
        "rollback_plan",
        CREATE_ROLLBACK_PLAN,
        "Plans, and never runs, the Proxmox VE API calls that would take a guest back to a "
        "time, a log position, one of its snapshots or one of its backups: ordered steps "
        "(method, path, params, reason, disruptive, requires_reboot), blockers and warnings. "
        "Nothing is executed or changed; an operator runs the steps.",
    ),
    ToolSpec(
        "drift",
        GET_DRIFT,
        "What differs now from a baseline time or from a named desired-state set (give "
        "exactly one): items {id, kind, field, expected, actual, since, actor}, kind one of "
        "changed, created, removed, missing, unmanaged (desired_sets names the sets)." + PAGING,
    ),
    ToolSpec(
        "desired_sets",
        LIST_DESIRED,
        "The desired-state sets drift can compare against (give one's name as drift's "
        "desired): each stored set with who stored it and when, and each file of the "
        "configured desired_dir.",
    ),
)
"""Every tool, in the order they are listed."""

BY_NAME: Mapping[str, ToolSpec] = {tool.name: tool for tool in TOOLS}


def question(tool: ToolSpec, arguments: Mapping[str, Any] | None) -> Asked:
    """The tool's arguments as the raw strings of the same HTTP request: the query, the
    resource id of the path, or (a rollback plan) the JSON body. A malformed argument is
    :class:`~api.errors.BadParameterError` naming it, as the API's 400 would."""
    args = dict(arguments or {})
    op = tool.operation
    if op.body is not None:
        return Asked(query={}, body=msgspec.json.encode(args))
    resource_id = ""
    for param in op.params:
        if param.where != "path":
            continue
        value = args.pop(param.name, None)
        if value is None:
            raise BadParameterError(param.name, "is required (a resource id such as lab/qemu/100)")
        if not isinstance(value, str):
            raise BadParameterError(param.name, "must be a string such as lab/qemu/100")
        resource_id = check_resource_id(param.name, value)
    check_query(((name, "") for name in args), op.query_names())
    query = {name: _text(name, value) for name, value in args.items() if value is not None}
    return Asked(query=query, resource_id=resource_id)


def _text(name: str, value: Any) -> str:
    """An argument as the query string would carry it (the API's parser then judges it)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise BadParameterError(name, "must be a single value (a string or a number)")


def _body_schema(body: Any) -> dict[str, Any]:
    """A body type's JSON Schema as one object schema, its parts under ``$defs``."""
    (root,), parts = msgspec.json.schema_components([body], ref_template="#/$defs/{name}")
    schema = dict(parts.pop(root["$ref"].rsplit("/", 1)[1]))
    if parts:
        schema["$defs"] = parts
    return schema
