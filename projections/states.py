"""A resource's state at a point: the version that held then, as the API's
:class:`~projections.models.Resource`."""

from __future__ import annotations

from collectors.events import STATE_FIELDS
from collectors.values import split_tags
from eventstore import Connection

from .dialect import ProjectionDialect
from .models import Resource
from .points import Point
from .versions import Version, state_of, versions_at

_STANDARD = frozenset((*STATE_FIELDS, "pending"))


def resource_of(dialect: ProjectionDialect, version: Version, point: Point) -> Resource:
    """The resource a version describes, as answered at the point."""
    state = state_of(version)
    rid = version.resource_id
    parts = rid.split("/")
    last_observed = dialect.time_or_none(version.last_observed_at)
    # Only with include_removed can the version have ended (by a removal) within the point.
    ended = version.valid_to_position
    removed = bool(version.ended_by_removal) and ended is not None and ended <= point.position
    if removed and point.time_bound is not None:
        removed = version.valid_to_time <= point.time_bound
    if last_observed is not None and point.at is not None and last_observed > point.at:
        last_observed = None  # the observations table knows only the latest one
    tags = state.get("tags") or []
    if isinstance(tags, str):
        tags = split_tags(tags)
    vmid = state.get("vmid")
    return Resource(
        id=rid,
        cluster=state.get("cluster") or parts[0],
        type=state.get("type") or (parts[1] if len(parts) > 1 else ""),
        node=state.get("node"),
        vmid=int(vmid) if isinstance(vmid, int | str) and str(vmid).isdigit() else None,
        name=state.get("name"),
        status=state.get("status"),
        tags=[str(t) for t in tags],
        pool=state.get("pool"),
        lock=state.get("lock"),
        config=state.get("config") or {},
        digest=state.get("digest"),
        observed_at=dialect.time_out(version.valid_from_time),
        last_observed_at=last_observed,
        position=int(version.valid_from_position),
        removed=removed,
        valid_until=dialect.time_or_none(version.valid_to_time),
        pending=state.get("pending") or {},
        extra={k: v for k, v in state.items() if k not in _STANDARD},
    )


async def state_at(
    dialect: ProjectionDialect, conn: Connection, resource_id: str, point: Point
) -> Resource | None:
    """The resource as it was at the point, or None if it did not exist then."""
    found = await versions_at(dialect, conn, point, ids=[resource_id])
    return resource_of(dialect, found[0], point) if found else None
