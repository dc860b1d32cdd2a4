"""Points: what a question about the past resolves to, before anything is read at it.

A point is a log position ``P`` and, when a time ``T`` was asked, a time bound: the answer is
the fold of every event at or before ``P`` that counts at or before ``T``. Time semantics
follow CONTRACT.md "What the answers mean" and the fold's effective times
(:mod:`projections.fold`): a change counts from its ``observed_at``, never before an earlier
change of the same resource; before the first event the inventory is empty; a time in the
future is a 422. Without a position the point is at the projections' checkpoint when the
question was asked, which every later page of the same listing keeps (its cursor carries it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventstore import Connection, format_time, parse_time, utcnow

from .dialect import ProjectionDialect
from .errors import InvalidParameterError, UnprocessableError
from .tables import HEAD, READ_CHECKPOINTS

EVENT_TIME = "SELECT observed_at FROM events WHERE position = ?"


@dataclass(frozen=True, slots=True)
class Point:
    """A time or position resolved: what to report, what bounds the rows, and where."""

    at: datetime | None
    """The time the answer is reported for (None: a position without a known time)."""
    time_bound: Any
    """The dialect's time value that bounds effective times (None: no time bound)."""
    position: int
    """The log position the answer is based on."""

    @classmethod
    def of_time(cls, dialect: ProjectionDialect, at: datetime, position: int) -> Point:
        """The point at time ``at``, as the log stood at ``position``."""
        return cls(at, dialect.time_in(at), position)


def check_past(value: datetime | None, param: str, now: datetime) -> None:
    """Refuse a naive time (400) or one in the future (422), naming the parameter."""
    if value is None:
        return
    if value.tzinfo is None:
        raise InvalidParameterError(f"{param} needs a UTC offset", param=param)
    if value > now:
        raise UnprocessableError(f"{param} {format_time(value)} is in the future", param=param)


async def read_checkpoint(dialect: ProjectionDialect, conn: Connection) -> int:
    """The position up to which every projection has applied the log."""
    rows = await conn.fetch(READ_CHECKPOINTS)
    return min((int(r[1]) for r in rows), default=0)


async def resolve_point(
    dialect: ProjectionDialect, conn: Connection, at: datetime | None, position: int | None
) -> Point:
    """The point a question names: a time (default now) at the projections' checkpoint, or a
    position already projected (reported at its event's ``observed_at``); a bad or future
    one is a :class:`~projections.errors.QueryError` naming the parameter."""
    now = utcnow()
    if at is not None and position is not None:
        raise InvalidParameterError("give at or position, not both", param="position")
    check_past(at, "at", now)
    checkpoint = await read_checkpoint(dialect, conn)
    if position is None:
        if at is None:
            return Point(now, None, checkpoint)
        return Point.of_time(dialect, at, checkpoint)
    if position < 0:
        raise InvalidParameterError("position must not be negative", param="position")
    if position > checkpoint:
        row = await conn.fetchone(HEAD)
        top = int(row[0]) if row else 0
        where = "past the head of the log" if position > top else "not yet projected"
        raise UnprocessableError(
            f"position {position} is {where} (projections are at {checkpoint})", param="position"
        )
    seen = None
    if position > 0:
        row = await conn.fetchone(EVENT_TIME, (position,))
        seen = dialect.time_out(row[0]) if row else None
    return Point(seen, None, position)


def point_from_cursor(
    dialect: ProjectionDialect, position: int, bound: str | None, at: str | None
) -> Point:
    """The point a cursor carries (see :func:`cursor_times`); a bad time is a 400."""
    try:
        reported = parse_time(at) if at is not None else None
        time_bound = dialect.time_in(parse_time(bound)) if bound is not None else None
    except ValueError as exc:
        raise InvalidParameterError("cursor is malformed", param="cursor") from exc
    return Point(reported, time_bound, position)


def cursor_times(point: Point, dialect: ProjectionDialect) -> tuple[str | None, str | None]:
    """The point's time bound and reported time as text, for a cursor."""
    bound = None
    if point.time_bound is not None:
        bound = format_time(dialect.time_out(point.time_bound))
    at = format_time(point.at) if point.at is not None else None
    return bound, at


def still_held(point: Point, end_position: str, end_time: str) -> tuple[str, list[Any]]:
    """The condition that a span had not ended at the point: it ends with an event that is
    not within the point (after its position, or effective after its time), and its
    arguments; ``end_position`` and ``end_time`` name the span's end columns."""
    sql = f" AND ({end_position} IS NULL OR {end_position} > ?"
    args: list[Any] = [point.position]
    if point.time_bound is not None:
        sql += f" OR {end_time} > ?"
        args.append(point.time_bound)
    return sql + ")", args
