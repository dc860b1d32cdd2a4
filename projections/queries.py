"""The read side: answers about any time or position, as indexed lookups on the projections.

Every function takes the store first and reads through ``store.read_connection()`` (one
resource through the backend's ``short_reads``, which SQLite runs on the loop's thread); the
SQL is written once with ``?`` placeholders and run through the store's backend
(:mod:`projections.dialect`). Time semantics follow CONTRACT.md "What the answers mean" and
the fold's effective times (:mod:`projections.fold`): a change counts from its ``observed_at``;
``since``/``until`` select ``(since, until]``; before the first event the inventory is empty; a
time in the future is a 422. An answer is computed at a log position ``P`` (the projections'
checkpoint when the first page was asked, or the ``position`` given) that every later page of
the same listing keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from collectors.events import (
    CREATES,
    ENDS,
    STATE_FIELDS,
    ConfigChanged,
    FieldChange,
    ResourceEvent,
    UnknownEventError,
    decode,
)
from eventstore import Actor, EventStore, format_time, parse_time, utcnow

from .cursors import make_cursor, read_cursor
from .dialect import ProjectionDialect
from .dialects import dialect_for
from .diff import diff_states, initial_changes
from .errors import InvalidParameterError, NotFoundError, UnprocessableError
from .fold import decode_state
from .models import (
    ChangesPage,
    Edge,
    HistoryEntry,
    HistoryPage,
    InventoryPage,
    NetChange,
    RelationGraph,
    Resource,
)
from .tables import HEAD, READ_CHECKPOINTS

MAX_LIMIT = 1000
_NONE = type(None)
_STANDARD = frozenset((*STATE_FIELDS, "pending"))
_actor_decoder = msgspec.json.Decoder(Actor)


@dataclass(frozen=True, slots=True)
class _Point:
    """What a question resolved to: the time answered (None: no time bound) and position."""

    at: datetime | None  # reported
    t: Any  # the backend's time value, or None for "no bound"
    p: int


# -- parameters ------------------------------------------------------------------------------
def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidParameterError(f"limit must be 1-{MAX_LIMIT}, not {limit}", param="limit")


def _check_past(value: datetime | None, param: str, now: datetime) -> None:
    if value is None:
        return
    if value.tzinfo is None:
        raise InvalidParameterError(f"{param} needs a UTC offset", param=param)
    if value > now:
        raise UnprocessableError(f"{param} {format_time(value)} is in the future", param=param)


async def _checkpoint(backend: ProjectionDialect, conn: Any) -> int:
    rows = await backend.fetch(conn, READ_CHECKPOINTS)
    return min((int(r[1]) for r in rows), default=0)


async def _resolve(
    backend: ProjectionDialect, conn: Any, at: datetime | None, position: int | None
) -> _Point:
    now = utcnow()
    if at is not None and position is not None:
        raise InvalidParameterError("give at or position, not both", param="position")
    _check_past(at, "at", now)
    checkpoint = await _checkpoint(backend, conn)
    if position is None:
        if at is None:
            return _Point(now, None, checkpoint)
        return _Point(at, backend.time_in(at), checkpoint)
    if position < 0:
        raise InvalidParameterError("position must not be negative", param="position")
    if position > checkpoint:
        row = await backend.fetchone(conn, HEAD)
        top = int(row[0]) if row else 0
        where = "past the head of the log" if position > top else "not yet projected"
        raise UnprocessableError(
            f"position {position} is {where} (projections are at {checkpoint})", param="position"
        )
    seen = None
    if position > 0:
        row = await backend.fetchone(
            conn, "SELECT observed_at FROM events WHERE position = ?", (position,)
        )
        seen = backend.time_out(row[0]) if row else None
    return _Point(seen, None, position)


def _point_from_cursor(backend: ProjectionDialect, p: int, t: str | None, at: str | None) -> _Point:
    try:
        reported = parse_time(at) if at is not None else None
        bound = backend.time_in(parse_time(t)) if t is not None else None
    except ValueError as exc:
        raise InvalidParameterError("cursor is malformed", param="cursor") from exc
    return _Point(reported, bound, p)


def _cursor_times(point: _Point, backend: ProjectionDialect) -> tuple[str | None, str | None]:
    t = format_time(backend.time_out(point.t)) if point.t is not None else None
    at = format_time(point.at) if point.at is not None else None
    return t, at


# -- versions at a point ---------------------------------------------------------------------
_VERSION_FIELDS = (
    "v.resource_id, v.valid_from_position, v.valid_to_time, v.valid_from_time, v.state, "
    "v.valid_to_position, v.ended_by_removal, c.config"
)


async def _has_observations(backend: ProjectionDialect, conn: Any) -> bool:
    # The collectors' table (migration 0100) may be missing on an older database.
    if backend.observations_seen:
        return True
    found = await backend.table_exists(conn, "observations")
    if found:
        backend.observations_seen = True
    return found


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True, slots=True)
class _Filters:
    type: str | None = None
    node: str | None = None
    status: str | None = None
    tag: str | None = None
    pool: str | None = None
    q: str | None = None

    def narrows(self) -> bool:
        """Whether any filter is set."""
        fields = (self.type, self.node, self.status, self.tag, self.pool)
        return any(f is not None for f in fields) or bool(self.q)

    def sql(self) -> tuple[str, list[Any]]:
        where: list[str] = []
        args: list[Any] = []
        for column in ("type", "node", "status", "pool"):
            value = getattr(self, column)
            if value is not None:
                where.append(f"v.{column} = ?")
                args.append(value)
        if self.tag is not None:
            where.append("v.tags LIKE ? ESCAPE '\\'")
            args.append(f"%;{_like(self.tag)};%")
        if self.q:
            where.append(
                "(LOWER(v.resource_id) LIKE ? ESCAPE '\\' "
                "OR LOWER(COALESCE(v.name, '')) LIKE ? ESCAPE '\\')"
            )
            pattern = f"%{_like(self.q.lower())}%"
            args += [pattern, pattern]
        return "".join(f" AND {w}" for w in where), args


def _still_held(point: _Point, end_position: str, end_time: str) -> tuple[str, list[Any]]:
    """The condition that a span had not ended at the point: it ends with an event that is
    not within the point (after its position, or effective after its time)."""
    sql = f" AND ({end_position} IS NULL OR {end_position} > ?"
    args: list[Any] = [point.p]
    if point.t is not None:
        sql += f" OR {end_time} > ?"
        args.append(point.t)
    return sql + ")", args


# PostgreSQL's whole inventory at a time T: one scan of a GiST index on each version's span of
# effective times as a point (x: from, y: to; an open version's y is beyond any time), for the
# points in the box x <= T < y (a second wider: the seconds are float8, the exact times are
# compared after), instead of a probe per resource. The expression is the index's in
# migrations/postgresql/0200_projections.sql, character for character in meaning.
_EPOCH = "extract(epoch from {c} - timestamptz 'epoch')::float8"
_SPAN = (
    f"point({_EPOCH.format(c='v.valid_from_time')}, "
    f"coalesce({_EPOCH.format(c='v.valid_to_time')}, 1e15::float8))"
)
_AT = _EPOCH.format(c="?::timestamptz")
_SPANS_HOLDING = (
    f"{_SPAN} <@ box(point(-1e15::float8, {_AT} - 1), point({_AT} + 1, 1e15::float8)) "
    "AND v.valid_from_time <= ? AND v.valid_from_position <= ? "
    "AND (v.valid_to_time IS NULL OR v.valid_to_time > ?)"
)
# A resource's effective times never go back (projections/fold.py), so the version that held at
# (T, P) is the one that began within the point and whose end is not: the spans holding at T
# (above) that began by P, and, for a P older than the projections (a cursor's), the versions
# ended after P by a change effective at or before T: those resources changed after P (read
# from the current state, whose size is the inventory's, not the history's; and only when the
# versions are past P, which they are not when P is the checkpoint the question resolved to).
_ENDED_AFTER = (
    "SELECT v.* FROM proj_resources e "
    "CROSS JOIN LATERAL (SELECT x.* FROM proj_versions x WHERE x.resource_id = e.resource_id "
    "AND x.valid_from_time <= ? AND x.valid_from_position <= ? "
    "ORDER BY x.valid_from_time DESC, x.valid_from_position DESC LIMIT 1) v "
    "WHERE (SELECT position FROM projection_checkpoints WHERE name = 'versions') > ? "
    "AND e.position > ? AND v.valid_to_time <= ? AND v.valid_to_position > ?"
)
_SCAN_FIELDS = (
    "v.resource_id, v.valid_from_position, v.valid_to_time, v.valid_from_time, v.state, "
    "v.valid_to_position, v.ended_by_removal, v.config_position"
)
_SCAN_ROW = (
    "s.resource_id, s.valid_from_position, s.valid_to_time, s.valid_from_time, s.state, "
    "s.valid_to_position, s.ended_by_removal, "
    "(SELECT c.config FROM proj_configs c WHERE c.position = s.config_position), "
    "s.last_observed_at"
)
_HELD_AT = f"(SELECT v.* FROM proj_versions v WHERE {_SPANS_HOLDING} UNION ALL {_ENDED_AFTER}) v"


def _held_at(point: _Point) -> tuple[str, list[Any]]:
    """The FROM-clause part giving ``v``, the versions that held at a time-bound point, as one
    index scan (PostgreSQL), and its arguments."""
    t, p = point.t, point.p
    return _HELD_AT, [t, t, t, p, t, t, p, p, p, t, p]  # the spans' five, the ended's six


async def _versions_at(
    backend: ProjectionDialect,
    conn: Any,
    point: _Point,
    *,
    after: str | None = None,
    ids: Sequence[str] | None = None,
    filters: _Filters | None = None,
    limit: int | None = None,
    include_removed: bool = False,
) -> list[Any]:
    """The version of each resource that held at the point: one index probe per resource, or
    on PostgreSQL, for the whole inventory at a time, one index scan.

    Rows: resource_id, valid_from_position, valid_to_time, valid_from_time, state (without
    config), valid_to_position, ended_by_removal, config, last_observed_at (None without the
    observations table). ``include_removed`` also gives the last version of resources
    removed by then.
    """
    observed = await _has_observations(backend, conn)
    sql, args = _versions_sql(
        backend,
        point,
        observed=observed,
        after=after,
        ids=ids,
        filters=filters,
        limit=limit,
        include_removed=include_removed,
    )
    return await backend.fetch(conn, sql, args)


def _versions_sql(
    backend: ProjectionDialect,
    point: _Point,
    *,
    observed: bool,
    after: str | None = None,
    ids: Sequence[str] | None = None,
    filters: _Filters | None = None,
    limit: int | None = None,
    include_removed: bool = False,
) -> tuple[str, list[Any]]:
    """The statement and arguments of :func:`_versions_at`."""
    # One scan for the whole inventory at a time, or a filtered page of it (probes would walk
    # resources until enough match); probes for a page of the unfiltered inventory (cheaper at
    # 100 rows, even at 1,000), for given ids, removed resources and a position alone.
    scan = (
        backend.name == "postgresql"
        and point.t is not None
        and ids is None
        and not include_removed
        and (limit is None or (filters is not None and filters.narrows()))
    )
    if scan:
        source, args = _held_at(point)
        sql = (
            f"SELECT {_SCAN_FIELDS}, "
            + ("o.last_observed_at" if observed else "NULL AS last_observed_at")
            + f" FROM {source}"
            + (" LEFT JOIN observations o ON o.resource_id = v.resource_id" if observed else "")
            + " WHERE TRUE"
        )
        key = "v.resource_id"
    else:
        sql, args = _probe_sql(backend, point, observed, include_removed)
        key = "r.resource_id"
    if after is not None:
        sql += f" AND {key} > ?"
        args.append(after)
    if ids is not None:
        sql += f" AND {key} IN ({','.join('?' * len(ids))})"
        args += list(ids)
    if filters is not None:
        extra, extra_args = filters.sql()
        sql += extra
        args += extra_args
    sql += f" ORDER BY {key}"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)
    if scan:
        # Sorted first, then each row's config by its key: the sort moves no configs, and
        # however few rows the planner expects of the scan (it cannot know), the configs stay
        # one probe per row, never a join that reads the whole configs table.
        sql = f"SELECT {_SCAN_ROW} FROM ({sql}) s ORDER BY s.resource_id"
    return sql, args


def _probe_sql(
    backend: ProjectionDialect, point: _Point, observed: bool, include_removed: bool
) -> tuple[str, list[Any]]:
    """The versions at the point as one probe per resource of ``proj_resources r``."""
    args: list[Any] = []
    # The newest version that began at or before the point: with a time bound the
    # (resource_id, valid_from_time, valid_from_position) index, else the primary key.
    if point.t is not None:
        where = (
            "x.resource_id = r.resource_id AND x.valid_from_time <= ? "
            "AND x.valid_from_position <= ?"
        )
        order = "x.valid_from_time DESC, x.valid_from_position DESC"
        args += [point.t, point.p]
    else:
        where = "x.resource_id = r.resource_id AND x.valid_from_position <= ?"
        order = "x.valid_from_position DESC"
        args.append(point.p)
    sql = (
        f"SELECT {_VERSION_FIELDS}, "
        + ("o.last_observed_at" if observed else "NULL")
        + " FROM proj_resources r "
        + backend.version_probe(where, order)
        + " JOIN proj_configs c ON c.position = v.config_position"
        + (" LEFT JOIN observations o ON o.resource_id = r.resource_id" if observed else "")
        + " WHERE r.first_position <= ?"
    )
    args.append(point.p)
    if point.t is not None:
        sql += " AND r.first_seen <= ?"
        args.append(point.t)
    if not include_removed:
        held, held_args = _still_held(point, "v.valid_to_position", "v.valid_to_time")
        sql += held
        args += held_args
    return sql, args


def _state(row: Any) -> dict[str, Any]:
    """The whole state of a ``_versions_at`` row: its state and its config."""
    state = decode_state(row[4])
    state["config"] = decode_state(row[7])
    return state


def _resource(backend: ProjectionDialect, row: Any, point: _Point) -> Resource:
    state = _state(row)
    rid = row[0]
    parts = rid.split("/")
    last_observed = backend.time_or_none(row[8])
    # Only with include_removed can the version have ended (by a removal) within the point.
    removed = bool(row[6]) and row[5] is not None and row[5] <= point.p
    if removed and point.t is not None:
        removed = row[2] <= point.t
    if last_observed is not None and point.at is not None and last_observed > point.at:
        last_observed = None  # the observations table knows only the latest one
    tags = state.get("tags") or []
    if isinstance(tags, str):
        tags = [t for t in tags.replace(",", ";").split(";") if t]
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
        observed_at=backend.time_out(row[3]),
        last_observed_at=last_observed,
        position=int(row[1]),
        removed=removed,
        valid_until=backend.time_or_none(row[2]),
        pending=state.get("pending") or {},
        extra={k: v for k, v in state.items() if k not in _STANDARD},
    )


# -- inventory and one resource --------------------------------------------------------------
async def inventory(
    store: EventStore,
    *,
    at: datetime | None = None,
    position: int | None = None,
    type: str | None = None,
    node: str | None = None,
    status: str | None = None,
    tag: str | None = None,
    pool: str | None = None,
    q: str | None = None,
    limit: int | None = 100,
    cursor: str | None = None,
    include_removed: bool = False,
) -> InventoryPage:
    """The inventory as it was at ``at`` or ``position`` (default: now), filtered, by id.

    Each resource costs one index probe into the versions table, whatever the length of its
    history; on PostgreSQL the whole inventory at a time (``limit=None``: every resource in
    one page, for callers in this process) or a filtered page of it is one index scan.
    Filters apply to the state at that time: ``tag`` is one tag, ``q`` a case-insensitive
    substring of the id or name. ``include_removed`` adds the resources removed by then, with
    their last state and ``removed`` true.
    """
    if limit is not None:
        _check_limit(limit)
    backend = dialect_for(store)
    async with store.read_connection() as conn:
        after: str | None = None
        if cursor is not None:
            optional = (str, _NONE)
            p, t, at_text, after = read_cursor(cursor, "inv", (int, optional, optional, str))
            point = _point_from_cursor(backend, p, t, at_text)
        else:
            point = await _resolve(backend, conn, at, position)
        filters = _Filters(type, node, status, tag, pool, q)
        rows = await _versions_at(
            backend,
            conn,
            point,
            after=after,
            filters=filters,
            limit=limit + 1 if limit is not None else None,
            include_removed=include_removed,
        )
    items = [_resource(backend, row, point) for row in rows[:limit]]
    next_cursor = None
    if limit is not None and len(rows) > limit:
        t_text, at_text = _cursor_times(point, backend)
        next_cursor = make_cursor("inv", point.p, t_text, at_text, items[-1].id)
    return InventoryPage(at=point.at, position=point.p, items=items, next_cursor=next_cursor)


async def resource_at(
    store: EventStore,
    resource_id: str,
    *,
    at: datetime | None = None,
    position: int | None = None,
) -> Resource:
    """One resource as it was then; :class:`NotFoundError` (with ``first_seen`` and
    ``last_seen`` when it existed at other times) if it did not exist then."""
    backend = dialect_for(store)
    # A few indexed reads of one resource: the backend's cheapest way to run them.
    async with backend.short_reads(store) as conn:
        point = await _resolve(backend, conn, at, position)
        rows = await _versions_at(backend, conn, point, ids=[resource_id])
        if rows:
            return _resource(backend, rows[0], point)
        observed = await _has_observations(backend, conn)
        row = await backend.fetchone(
            conn,
            "SELECT r.first_seen, r.last_seen, r.removed, r.observed_at, "
            + ("o.last_observed_at" if observed else "NULL")
            + " FROM proj_resources r"
            + (" LEFT JOIN observations o ON o.resource_id = r.resource_id" if observed else "")
            + " WHERE r.resource_id = ?",
            (resource_id,),
        )
    if row is None:
        raise NotFoundError(f"no resource {resource_id!r} has ever been seen")
    when = format_time(point.at) if point.at is not None else f"position {point.p}"
    # Removed: the last observation that showed it. Still there: its latest observation
    # (the collectors' table), else its last change.
    last = row[1] if row[2] else (row[4] if row[4] is not None else row[3])
    raise NotFoundError(
        f"resource {resource_id!r} did not exist at {when}",
        first_seen=backend.time_out(row[0]),
        last_seen=backend.time_or_none(last),
    )


# -- history ---------------------------------------------------------------------------------
def _entry_changes(type_: str, schema_version: int, data: bytes) -> list[Any]:
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

    A discovery lists its initial fields as changes from null; a removal lists none.
    """
    _check_limit(limit)
    now = utcnow()
    _check_past(since, "since", now)
    _check_past(until, "until", now)
    if since is not None and until is not None and since > until:
        raise UnprocessableError("since is after until", param="until")
    backend = dialect_for(store)
    after_version = 0
    if cursor is not None:
        (after_version,) = read_cursor(cursor, "hist:" + resource_id, (int,))
    sql = (
        "SELECT version, position, type, schema_version, observed_at, observed_after, actor, "
        "data FROM events "
        "WHERE stream_key = (SELECT stream_key FROM streams WHERE stream_id = ?) AND version > ?"
    )
    args: list[Any] = [resource_id, after_version]
    if since is not None:
        sql += " AND observed_at > ?"
        args.append(backend.time_in(since))
    if until is not None:
        sql += " AND observed_at <= ?"
        args.append(backend.time_in(until))
    sql += " ORDER BY version LIMIT ?"
    args.append(limit + 1)
    async with store.read_connection() as conn:
        rows = await backend.fetch(conn, sql, args)
        if not rows and cursor is None:
            exists = await backend.fetchone(
                conn, "SELECT 1 FROM streams WHERE stream_id = ?", (resource_id,)
            )
            if exists is None:
                raise NotFoundError(f"no resource {resource_id!r} has ever been seen")
    items = [
        HistoryEntry(
            position=int(r[1]),
            event=r[2],
            observed_at=backend.time_out(r[4]),
            observed_after=backend.time_or_none(r[5]),
            actor=_actor_decoder.decode(r[6]) if r[6] is not None else None,
            changes=_entry_changes(r[2], int(r[3]), bytes(r[7])),
        )
        for r in rows[:limit]
    ]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = make_cursor("hist:" + resource_id, int(rows[limit - 1][0]))
    return HistoryPage(items=items, next_cursor=next_cursor)


# -- net change ------------------------------------------------------------------------------
# "(resource_id || '') > ?" keeps SQLite's planner on the time index (a plain comparison
# makes it walk the (resource_id, ...) index: the whole history) and means the same on both.
_CANDIDATES = (
    "SELECT resource_id FROM proj_versions WHERE valid_from_time > ? AND valid_from_time <= ? "
    "AND valid_from_position <= ? AND (resource_id || '') > ?{type} "
    "UNION "
    "SELECT resource_id FROM proj_versions WHERE ended_by_removal = 1 "
    "AND valid_to_time > ? AND valid_to_time <= ? "
    "AND valid_to_position <= ? AND (resource_id || '') > ?{type} "
    "ORDER BY resource_id LIMIT ?"
)


async def changes(
    store: EventStore,
    *,
    since: datetime,
    until: datetime | None = None,
    type: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> ChangesPage:
    """The net change of the inventory between ``since`` and ``until`` (default now): each
    resource whose state at ``until`` differs from its state at ``since``.

    Candidates come from the versions table's time indexes (versions that began or ended in
    the window), so the cost follows the number of changes in the window, not the history.
    """
    _check_limit(limit)
    backend = dialect_for(store)
    after = ""
    async with store.read_connection() as conn:
        if cursor is not None:
            p, since_text, until_text, after = read_cursor(cursor, "chg", (int, str, str, str))
            try:
                since, until = parse_time(since_text), parse_time(until_text)
            except ValueError as exc:
                raise InvalidParameterError("cursor is malformed", param="cursor") from exc
        else:
            now = utcnow()
            _check_past(since, "since", now)
            _check_past(until, "until", now)
            until = until or now
            if since > until:
                raise UnprocessableError("since is after until", param="until")
            p = await _checkpoint(backend, conn)
        assert until is not None
        start = _Point(since, backend.time_in(since), p)
        end = _Point(until, backend.time_in(until), p)
        items: list[NetChange] = []
        more = False
        while len(items) < limit:
            type_sql = " AND (type || '') = ?" if type is not None else ""
            args: list[Any] = []
            for _ in range(2):
                args += [start.t, end.t, p, after] + ([type] if type is not None else [])
            args.append(limit)
            ids = [r[0] for r in await backend.fetch(conn, _CANDIDATES.format(type=type_sql), args)]
            if not ids:
                break
            before = {r[0]: r for r in await _versions_at(backend, conn, start, ids=ids)}
            later = {r[0]: r for r in await _versions_at(backend, conn, end, ids=ids)}
            for index, rid in enumerate(ids):
                change = _net_change(rid, before.get(rid), later.get(rid))
                after = rid
                if change is not None:
                    items.append(change)
                    if len(items) == limit:
                        more = index < len(ids) - 1 or len(ids) == limit
                        break
            if len(ids) < limit:
                break
    next_cursor = (
        make_cursor("chg", p, format_time(since), format_time(until), after) if more else None
    )
    return ChangesPage(since=since, until=until, items=items, next_cursor=next_cursor)


def _net_change(rid: str, before: Any, later: Any) -> NetChange | None:
    if before is None and later is None:
        return None  # created and removed within the window
    if before is None:
        return NetChange(id=rid, change="created", changes=initial_changes(_state(later)))
    if later is None:
        return NetChange(id=rid, change="removed", changes=[])
    diff = diff_states(_state(before), _state(later))
    return NetChange(id=rid, change="changed", changes=diff) if diff else None


# -- relations -------------------------------------------------------------------------------
async def relations(
    store: EventStore,
    *,
    at: datetime | None = None,
    position: int | None = None,
    id: str | None = None,
) -> RelationGraph:
    """The relationship graph then: every edge that held, or only those touching ``id``."""
    backend = dialect_for(store)
    async with store.read_connection() as conn:
        point = await _resolve(backend, conn, at, position)
        sql = (
            "SELECT from_id, rel, to_id, attrs, since_time, until_time FROM proj_edges "
            "WHERE since_position <= ?"
        )
        args: list[Any] = [point.p]
        if point.t is not None:
            sql += " AND since_time <= ?"
            args.append(point.t)
        held, held_args = _still_held(point, "until_position", "until_time")
        sql += held
        args += held_args
        if id is not None:
            sql += " AND (from_id = ? OR to_id = ?)"
            args += [id, id]
        sql += " ORDER BY from_id, rel, to_id, attrs"
        rows = await backend.fetch(conn, sql, args)
        if id is not None and not rows:
            known = await backend.fetchone(
                conn,
                "SELECT 1 FROM proj_resources WHERE resource_id = ? UNION ALL "
                "SELECT 1 FROM proj_edges WHERE to_id = ?",
                (id, id),
            )
            if known is None:
                raise NotFoundError(f"no resource {id!r} has ever been seen")
    edges = [
        Edge(
            from_=r[0],
            rel=r[1],
            to=r[2],
            attrs=decode_state(r[3]),
            since=backend.time_out(r[4]),
            until=backend.time_or_none(r[5]),
        )
        for r in rows
    ]
    return RelationGraph(at=point.at, position=point.p, edges=edges)
