"""What the read side answers: msgspec Structs the API renders as JSON and describes in OpenAPI.

Every field carries a description (``msgspec.Meta``), which msgspec's JSON Schema generator
puts into the OpenAPI document.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from collectors.events import FieldChange
from eventstore import Actor

__all__ = [
    "Actor",
    "ChangesPage",
    "Edge",
    "FieldChange",
    "HistoryEntry",
    "HistoryPage",
    "InventoryPage",
    "NetChange",
    "ProjectionLag",
    "RebuildResult",
    "RelationGraph",
    "Resource",
]


def _d(text: str) -> msgspec.Meta:
    return msgspec.Meta(description=text)


class Resource(msgspec.Struct, frozen=True, kw_only=True):
    """One resource as it was at the time (or position) asked about."""

    id: Annotated[str, _d("resource id, {cluster}/{pve-id}, e.g. lab/qemu/100")]
    cluster: Annotated[str, _d("cluster name as configured")]
    type: Annotated[str, _d("qemu, lxc, node, storage, pool, snapshot, backup, network, ...")]
    node: Annotated[str | None, _d("Proxmox VE node name; a node's own name for a node")]
    vmid: Annotated[int | None, _d("guest id (guests, their snapshots and backups)")]
    name: Annotated[str | None, _d("guest name, node name, storage id, ...")]
    status: Annotated[str | None, _d("running, stopped, online, available, ...")]
    tags: Annotated[list[str], _d("Proxmox VE tags, as Proxmox orders them")]
    pool: Annotated[str | None, _d("pool the resource is a member of")]
    lock: Annotated[str | None, _d("guest lock (backup, migrate, snapshot, ...)")]
    config: Annotated[
        dict[str, Any],
        _d(
            "config keys and values as Proxmox returns them; "
            "secrets show as their keyed fingerprint"
        ),
    ]
    digest: Annotated[str | None, _d("Proxmox config digest of this state")]
    observed_at: Annotated[datetime, _d("when the change that made this state was observed")]
    last_observed_at: Annotated[
        datetime | None,
        _d(
            "last successful observation of the resource (from the collectors), when known "
            "and not later than the time asked about"
        ),
    ]
    position: Annotated[int, _d("log position of the event that made this state")]
    removed: Annotated[bool, _d("true when the resource is gone (current-state rows only)")] = False
    valid_until: Annotated[
        datetime | None, _d("when this state was replaced, if it was (after the time asked)")
    ] = None
    pending: Annotated[dict[str, Any], _d("pending config values (applied at reboot)")] = {}
    extra: Annotated[
        dict[str, Any], _d("type-specific fields: ha_state, a snapshot's parent, a backup's size")
    ] = {}


class InventoryPage(msgspec.Struct, frozen=True, kw_only=True):
    """A page of the inventory at a time or position."""

    at: Annotated[datetime | None, _d("the time answered for (now when none was asked)")]
    position: Annotated[
        int, _d("the log position the answer is based on; every page of one listing shares it")
    ]
    items: Annotated[list[Resource], _d("resources ordered by id")]
    next_cursor: Annotated[str | None, _d("pass back as cursor for the next page")] = None


class HistoryEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One event of a resource's history."""

    position: Annotated[int, _d("log position of the event")]
    event: Annotated[str, _d("event type: discovered, config_changed, migrated, removed, ...")]
    observed_at: Annotated[datetime, _d("when the change was observed")]
    observed_after: Annotated[
        datetime | None,
        _d("the previous observation that did not show it: the earliest it may have happened"),
    ]
    actor: Annotated[Actor | None, _d("who did it, as far as the Proxmox task log says")]
    changes: Annotated[
        list[FieldChange],
        _d(
            "field-level changes; a (re)discovery lists its initial fields with old null, "
            "a removal none"
        ),
    ]


class HistoryPage(msgspec.Struct, frozen=True, kw_only=True):
    """A page of a resource's history, oldest first."""

    items: Annotated[list[HistoryEntry], _d("events, oldest first")]
    next_cursor: Annotated[str | None, _d("pass back as cursor for the next page")] = None


class NetChange(msgspec.Struct, frozen=True, kw_only=True):
    """How one resource differs between two times."""

    id: Annotated[str, _d("resource id")]
    change: Annotated[Literal["created", "changed", "removed"], _d("kind of net change")]
    changes: Annotated[
        list[FieldChange],
        _d("fields that differ; for created the initial fields (old null), for removed none"),
    ]


class ChangesPage(msgspec.Struct, frozen=True, kw_only=True):
    """Net change of the inventory between two times."""

    since: Annotated[datetime, _d("start of the window (exclusive)")]
    until: Annotated[datetime, _d("end of the window (inclusive; now when none was asked)")]
    items: Annotated[list[NetChange], _d("resources that differ, ordered by id")]
    next_cursor: Annotated[str | None, _d("pass back as cursor for the next page")] = None


class Edge(msgspec.Struct, frozen=True, kw_only=True):
    """A relation between two resources and the span in which it held."""

    from_: Annotated[str, _d("resource id the edge starts at")] = msgspec.field(name="from")
    rel: Annotated[
        str,
        _d("runs_on, uses_storage, member_of, attached_to, snapshot_of, backup_of, ha_managed"),
    ]
    to: Annotated[str, _d("resource id the edge points at")]
    since: Annotated[datetime, _d("when the edge began to hold")]
    until: Annotated[datetime | None, _d("when it stopped holding (null: still holds)")] = None
    attrs: Annotated[
        dict[str, Any], _d("details: config keys and volumes of a disk edge, a NIC's VLAN tag")
    ] = {}


class RelationGraph(msgspec.Struct, frozen=True, kw_only=True):
    """The relationship graph at a time or position."""

    at: Annotated[datetime | None, _d("the time answered for (now when none was asked)")]
    position: Annotated[int, _d("the log position the answer is based on")]
    edges: Annotated[list[Edge], _d("edges that held then")]


class ProjectionLag(msgspec.Struct, frozen=True, kw_only=True):
    """How far the projections are behind the log."""

    head: Annotated[int, _d("position of the last event in the log")]
    checkpoint: Annotated[int, _d("last position applied to every projection")]
    seconds: Annotated[
        float, _d("age of the oldest unapplied event's recorded_at; 0 when none is unapplied")
    ]


class RebuildResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a rebuild did."""

    projections: Annotated[list[str], _d("names of the projections rebuilt")]
    events: Annotated[int, _d("events folded")]
    seconds: Annotated[float, _d("wall time")]
    rate: Annotated[float, _d("events per second")]


class ReaderGrant(msgspec.Struct, frozen=True, kw_only=True):
    """What :func:`projections.views.grant_reader` did for the PostgreSQL reader role."""

    role: str
    created: bool
    """Whether the role was made now (it may exist already: it is then only granted)."""
    granted: bool
    """Whether the role may read the views now (USAGE on the schema, SELECT on each)."""
    problem: str | None = None
    """Why not, when it may not (the database user may not create roles or grant)."""
