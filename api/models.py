"""The msgspec types of the API's own answers and bodies; the OpenAPI document is made from them.

Answers of the read-side queries (inventory, history, changes, relations) are the projections'
own types (``projections.models``); these are the ones the ``api`` package adds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from eventstore import Actor


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An error, as RFC 9457 ``application/problem+json``."""

    type: Annotated[str, msgspec.Meta(description="about:blank: the status says it all")]
    title: str
    status: int
    detail: str
    param: Annotated[str | None, msgspec.Meta(description="the parameter at fault")] = None
    request_id: str | None = None
    first_seen: Annotated[
        datetime | None, msgspec.Meta(description="404 of a resource: when it was first seen")
    ] = None
    last_seen: Annotated[
        datetime | None, msgspec.Meta(description="404 of a resource: when it was last seen")
    ] = None


class EventOut(msgspec.Struct, kw_only=True):
    """One event of the log, as ``GET /events`` lists it."""

    position: int
    stream_id: Annotated[str, msgspec.Meta(description="the resource id")]
    version: int
    type: str
    schema_version: int
    observed_at: datetime
    observed_after: datetime | None
    recorded_at: datetime
    actor: Actor | None
    correlation_id: str | None
    data: Annotated[Any, msgspec.Meta(description="the payload, as JSON")]
    prev_hash: str
    hash: str


class EventPage(msgspec.Struct, kw_only=True):
    """A page of the raw event log, in position order."""

    items: list[EventOut]
    next_cursor: str | None


class Integrity(msgspec.Struct, kw_only=True):
    """The hash chain's check: ``ok`` is false at the first event that breaks it."""

    ok: bool
    checked: int
    head: int
    first_bad_position: int | None = None
    reason: str | None = None
    checked_at: datetime | None = None
    """When the chain was walked: a walk's answer is kept until the head moves or a minute
    passes."""


class Alive(msgspec.Struct, kw_only=True):
    """``/healthz``: the process answers."""

    status: Literal["ok"] = "ok"


class Check(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One readiness check."""

    ok: bool
    detail: str | None = None
    head: int | None = None
    checkpoint: int | None = None
    lag_seconds: float | None = None


class ClusterState(msgspec.Struct, kw_only=True):
    """One cluster's collector state, as ``/readyz`` reports it."""

    state: Annotated[
        str,
        msgspec.Meta(
            description="starting, ok, degraded, down, or standby (another process collects)"
        ),
    ]
    leader: Annotated[
        bool, msgspec.Meta(description="whether this process holds the collector lease")
    ] = False
    last_success: datetime | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    clock_offsets_s: dict[str, float] = {}  # by node: its clock minus ours
    warnings: list[str] = []


class Readiness(msgspec.Struct, kw_only=True):
    """``/readyz``: 200 when ``ready``, 503 otherwise; a Proxmox outage alone never makes it 503."""

    ready: bool
    checks: dict[str, Check]
    clusters: dict[str, ClusterState]


class ResyncRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /resyncs``: poll a cluster (or one node, or one guest) now."""

    cluster: Annotated[str, msgspec.Meta(min_length=1, max_length=63)]
    node: Annotated[str, msgspec.Meta(min_length=1, max_length=255)] | None = None
    vmid: Annotated[int, msgspec.Meta(ge=1, le=999_999_999)] | None = None


class ResyncAccepted(msgspec.Struct, kw_only=True):
    """A queued resync; follow it at ``GET /resyncs/{id}``."""

    id: str


class ResyncStatus(msgspec.Struct, kw_only=True):
    """A resync's progress, as the queue in the database keeps it (any process answers)."""

    id: str
    cluster: str
    status: Literal["queued", "running", "done", "failed"]
    events_appended: int = 0
    error: str | None = None
    node: str | None = None
    vmid: int | None = None
    requested_by: Annotated[
        str | None, msgspec.Meta(description="the token's name, `webhook` or `anonymous`")
    ] = None
    requests: Annotated[int, msgspec.Meta(description="how many requests joined it")] = 1
    requested_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
