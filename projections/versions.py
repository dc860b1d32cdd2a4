"""Versions at a point: the version of each resource (or of some, or of those a filter keeps)
that held at a :class:`~projections.points.Point`, as indexed lookups on ``proj_versions``.

A resource's effective times never go back (:mod:`projections.fold`), so the version that held
at (T, P) is the newest one that began at or before both, unless an event within the point
ended it (a removal). Each resource costs one index probe, whatever the length of its history;
on PostgreSQL the whole inventory at a time, or a filtered page of it, is one index scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from eventstore import Connection

from .dialect import ProjectionDialect, records
from .fold import decode_state
from .points import Point, still_held


class Version(msgspec.Struct, frozen=True, gc=False):
    """A version that held at a point, as :func:`versions_at` reads it (times in the
    dialect's own form; ``state`` and ``config`` as stored JSON text)."""

    resource_id: str
    valid_from_position: int
    valid_to_time: Any
    valid_from_time: Any
    state: str
    """The state without its config."""
    valid_to_position: int | None
    ended_by_removal: int
    config: str
    last_observed_at: Any
    """The resource's last successful observation (None without the observations table)."""


def state_of(version: Version) -> dict[str, Any]:
    """The whole state of a version: its state and its config."""
    state = decode_state(version.state)
    state["config"] = decode_state(version.config)
    return state


async def has_observations(dialect: ProjectionDialect, conn: Connection) -> bool:
    """Whether the collectors' ``observations`` table is there (remembered once found)."""
    # The collectors' table (migration 0100) may be missing on an older database.
    if dialect.observations_seen:
        return True
    found = await conn.table_exists("observations")
    dialect.observations_seen = found
    return found


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True, slots=True)
class Filters:
    """What an inventory keeps, applied to the state at the point: ``tag`` is one tag, ``q``
    a case-insensitive substring of the id or name."""

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
        """The conditions on the versions ``v`` (each `` AND ...``) and their arguments."""
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


_VERSION_FIELDS = (
    "v.resource_id, v.valid_from_position, v.valid_to_time, v.valid_from_time, v.state, "
    "v.valid_to_position, v.ended_by_removal, c.config"
)

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


def _held_at(point: Point) -> tuple[str, list[Any]]:
    """The FROM-clause part giving ``v``, the versions that held at a time-bound point, as one
    index scan (PostgreSQL), and its arguments."""
    t, p = point.time_bound, point.position
    return _HELD_AT, [t, t, t, p, t, t, p, p, p, t, p]  # the spans' five, the ended's six


async def versions_at(
    dialect: ProjectionDialect,
    conn: Connection,
    point: Point,
    *,
    after: str | None = None,
    ids: Sequence[str] | None = None,
    filters: Filters | None = None,
    limit: int | None = None,
    include_removed: bool = False,
) -> list[Version]:
    """The version of each resource that held at the point, by id: only ``ids`` if given,
    only those ``filters`` keep, those after the id ``after``, at most ``limit``.

    One index probe per resource, or on PostgreSQL, for the whole inventory at a time, one
    index scan. ``include_removed`` also gives the last version of resources removed by then.
    """
    observed = await has_observations(dialect, conn)
    sql, args = versions_sql(
        dialect,
        point,
        observed=observed,
        after=after,
        ids=ids,
        filters=filters,
        limit=limit,
        include_removed=include_removed,
    )
    return records(Version, await conn.fetch(sql, args))


def versions_sql(
    dialect: ProjectionDialect,
    point: Point,
    *,
    observed: bool,
    after: str | None = None,
    ids: Sequence[str] | None = None,
    filters: Filters | None = None,
    limit: int | None = None,
    include_removed: bool = False,
) -> tuple[str, list[Any]]:
    """The statement and arguments of :func:`versions_at` (``observed``: whether the
    observations table is there to join)."""
    # One scan for the whole inventory at a time, or a filtered page of it (probes would walk
    # resources until enough match); probes for a page of the unfiltered inventory (cheaper at
    # 100 rows, even at 1,000), for given ids, removed resources and a position alone.
    scan = (
        dialect.name == "postgresql"
        and point.time_bound is not None
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
        sql, args = _probe_sql(dialect, point, observed, include_removed)
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
    dialect: ProjectionDialect, point: Point, observed: bool, include_removed: bool
) -> tuple[str, list[Any]]:
    """The versions at the point as one probe per resource of ``proj_resources r``."""
    args: list[Any] = []
    # The newest version that began at or before the point: with a time bound the
    # (resource_id, valid_from_time, valid_from_position) index, else the primary key.
    if point.time_bound is not None:
        where = (
            "x.resource_id = r.resource_id AND x.valid_from_time <= ? "
            "AND x.valid_from_position <= ?"
        )
        order = "x.valid_from_time DESC, x.valid_from_position DESC"
        args += [point.time_bound, point.position]
    else:
        where = "x.resource_id = r.resource_id AND x.valid_from_position <= ?"
        order = "x.valid_from_position DESC"
        args.append(point.position)
    sql = (
        f"SELECT {_VERSION_FIELDS}, "
        + ("o.last_observed_at" if observed else "NULL")
        + " FROM proj_resources r "
        + dialect.version_probe(where, order)
        + " JOIN proj_configs c ON c.position = v.config_position"
        + (" LEFT JOIN observations o ON o.resource_id = r.resource_id" if observed else "")
        + " WHERE r.first_position <= ?"
    )
    args.append(point.position)
    if point.time_bound is not None:
        sql += " AND r.first_seen <= ?"
        args.append(point.time_bound)
    if not include_removed:
        held, held_args = still_held(point, "v.valid_to_position", "v.valid_to_time")
        sql += held
        args += held_args
    return sql, args
