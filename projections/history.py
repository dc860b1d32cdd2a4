"""A resource's history (GET /resources/{id}/history): the events of its stream, read from
the log itself, with field-level changes, actor and window.

``since``/``until`` select ``observed_at`` in ``(since, until]`` (CONTRACT.md); pages follow
the stream's versions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from collectors.events import (
    CREATES,
    ENDS,
    ConfigChanged,
    FieldChange,
    ResourceEvent,
    UnknownEventError,
    decode,
)
from eventstore import Actor, Connection, EventStore, format_time, parse_time, utcnow

from .cursors import check_limit, cursor_key, make_cursor, read_cursor
from .dialect import ProjectionDialect, records
from .dialects import dialect_for
from .diff import initial_changes
from .errors import NotFoundError, UnprocessableError
from .models import HistoryEntry, HistoryPage
from .points import check_past

_actor_decoder = msgspec.json.Decoder(Actor)

HEAD_POSITION = "SELECT MAX(position) FROM events"


def _time(text: str | None) -> datetime | None:
    """A time a (signed) cursor carries."""
    return None if text is None else parse_time(text)


STREAM_EVENTS = (
    "SELECT version, position, type, schema_version, observed_at, observed_after, actor, "
    "data FROM events "
    "WHERE stream_key = (SELECT stream_key FROM streams WHERE stream_id = ?) AND version > ?"
)


class StreamEvent(msgspec.Struct, frozen=True, gc=False):
    """One event of a stream as :func:`stream_events` reads it (times in the dialect's
    form; ``actor`` and ``data`` as stored)."""

    version: int
    position: int
    type: str
    schema_version: int
    observed_at: Any
    observed_after: Any
    actor: Any
    data: Any


async def stream_events(
    dialect: ProjectionDialect,
    conn: Connection,
    stream_id: str,
    *,
    after_version: int = 0,
    since: datetime | None = None,
    until: datetime | None = None,
    until_position: int | None = None,
    limit: int | None = None,
) -> list[StreamEvent]:
    """The events of a stream after ``after_version``, oldest first, observed in
    ``(since, until]`` and at or before ``until_position``, at most ``limit``."""
    sql = STREAM_EVENTS
    args: list[Any] = [stream_id, after_version]
    if until_position is not None:
        sql += " AND position <= ?"
        args.append(until_position)
    if since is not None:
        sql += " AND observed_at > ?"
        args.append(dialect.time_in(since))
    if until is not None:
        sql += " AND observed_at <= ?"
        args.append(dialect.time_in(until))
    sql += " ORDER BY version"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)
    return records(StreamEvent, await conn.fetch(sql, args))


def event_changes(type_: str, schema_version: int, data: bytes) -> list[FieldChange]:
    """The field-level changes an event made: a (re)discovery's initial fields as changes
    from null, none for a removal or an event that cannot be read."""
    try:
        payload = decode(type_, schema_version, data)
    except (UnknownEventError, msgspec.DecodeError, msgspec.ValidationError):
        return []  # the projections stop on it and say so; history still lists the event
    if type_ in CREATES:
        return initial_changes(dict(getattr(payload, "state", {})))
    if type_ in ENDS or not isinstance(payload, ResourceEvent):
        return []
    changes = list(payload.changes)
    digest = payload.digest if isinstance(payload, ConfigChanged) else None
    if digest is not None and not any(c.field == "digest" for c in changes):
        changes.append(FieldChange("digest", None, digest))
    return changes


def decode_actor(stored: Any) -> Actor | None:
    """An event's actor as stored (JSON), or None."""
    return _actor_decoder.decode(stored) if stored is not None else None


def history_entry(dialect: ProjectionDialect, event: StreamEvent) -> HistoryEntry:
    """One event as the history answers it."""
    return HistoryEntry(
        position=int(event.position),
        event=event.type,
        observed_at=dialect.time_out(event.observed_at),
        observed_after=dialect.time_or_none(event.observed_after),
        actor=decode_actor(event.actor),
        changes=event_changes(event.type, int(event.schema_version), bytes(event.data)),
    )


async def history(
    store: EventStore,
    resource_id: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> HistoryPage:
    """A resource's events, oldest first, with field-level changes, actor and the window in
    which each change happened (``observed_after`` to ``observed_at``), read from the log.

    A discovery lists its initial fields as changes from null; a removal lists none. Every
    page of one listing answers from the log as it was at the first page (its head then):
    events appended later wait for a new listing.
    """
    check_limit(limit)
    dialect = dialect_for(store)
    key = await cursor_key(store)
    query: dict[str, Any] = {
        "id": resource_id,
        "since": None if since is None else format_time(since),
        "until": None if until is None else format_time(until),
    }
    after_version = 0
    async with store.read_connection() as conn:
        if cursor is not None:
            query, (head, after_version) = read_cursor(key, cursor, "hist", query, (int, int))
            since, until = _time(query["since"]), _time(query["until"])
        else:
            now = utcnow()
            check_past(since, "since", now)
            check_past(until, "until", now)
            if since is not None and until is not None and since > until:
                raise UnprocessableError("since is after until", param="until")
            head = int(await conn.fetchval(HEAD_POSITION) or 0)
        found = await stream_events(
            dialect,
            conn,
            resource_id,
            after_version=after_version,
            since=since,
            until=until,
            until_position=head,
            limit=limit + 1,
        )
        if not found and cursor is None:
            exists = await conn.fetchone(
                "SELECT 1 FROM streams WHERE stream_id = ?", (resource_id,)
            )
            if exists is None:
                raise NotFoundError(f"no resource {resource_id!r} has ever been seen")
    items = [history_entry(dialect, event) for event in found[:limit]]
    next_cursor = None
    if len(found) > limit:
        next_cursor = make_cursor(key, "hist", query, head, int(found[limit - 1].version))
    return HistoryPage(items=items, next_cursor=next_cursor)
