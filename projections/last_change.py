"""A field's last change before a point: when one field of one resource last took the value
it held at a :class:`~projections.points.Point`, by which event, and who made it.

The answer is the newest version boundary within the point where the field's value differs
(as Proxmox means values, :mod:`projections.diff`) from the value just before it. A resource
that does not exist has no value (None): its (re)discovery is a change from None, a removal
a change to None. It is read from ``proj_versions`` newest first, a few versions at a time,
so the cost follows how far back the change lies; the event's type, window and actor come
from the log. Drift reports use it for ``since`` and ``actor``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

import msgspec

from eventstore import Actor, Connection

from .dialect import ProjectionDialect, records
from .diff import NESTED_FIELDS, diff_states
from .fold import decode_state
from .history import decode_actor
from .points import Point

FIRST_READ = 16
"""Versions read at first: most fields asked about changed recently, or the resource is young."""
MAX_READ = 512
"""The most versions read at once (each further read doubles the last, up to this)."""

_EVENT = "SELECT type, observed_at, observed_after, actor FROM events WHERE position = ?"


class LastChange(msgspec.Struct, frozen=True, kw_only=True):
    """The change that gave a field the value it held at a point."""

    resource_id: str
    field: str
    position: int
    """The log position of the event that made the change."""
    at: datetime
    """When the change counts from: its effective time (projections/fold.py)."""
    old: Any
    """The value before (None: unset, or the resource did not exist)."""
    new: Any
    """The value it took (None: unset, or the resource was removed)."""
    event: str
    """The type of the event that made it (``renamed``, ``config_changed``, ``removed``...)."""
    observed_at: datetime
    observed_after: datetime | None
    """With ``observed_at``, the window in which the change really happened."""
    actor: Actor | None


class _Step(msgspec.Struct, frozen=True, gc=False):
    """One version as the walk reads it: its span and the stored text holding the field."""

    valid_from_position: int
    valid_from_time: Any
    valid_to_position: int | None
    valid_to_time: Any
    ended_by_removal: int
    text: str


class _Field:
    """How to read one field out of a version and compare two of its values."""

    def __init__(self, name: str) -> None:
        self.name = name
        prefix, dot, key = name.partition(".")
        self.key = key if dot and prefix in NESTED_FIELDS else None
        self.prefix = prefix if self.key is not None else name
        self.in_config = self.prefix == "config"

    def value(self, text: str) -> Any:
        """The field's value in a version's stored state (or config) text."""
        stored = decode_state(text)
        if self.in_config:
            return stored if self.key is None else stored.get(self.key)
        if self.key is None:
            return stored.get(self.name)
        nested = stored.get(self.prefix)
        return nested.get(self.key) if isinstance(nested, dict) else None

    def differs(self, old: Any, new: Any) -> bool:
        """Whether two values of the field differ as Proxmox means them (the rule of
        history and net change: :func:`projections.diff.diff_states`)."""
        if self.key is None:
            return bool(diff_states({self.name: old}, {self.name: new}))
        return bool(diff_states({self.prefix: {self.key: old}}, {self.prefix: {self.key: new}}))


def _walk_sql(field: _Field, timed: bool) -> str:
    if field.in_config:
        # Only a version whose own event wrote a config row can hold another config than
        # the version before it; a version ended by a removal is read for that boundary.
        text = "c.config"
        join = " JOIN proj_configs c ON c.position = v.config_position"
        only = " AND (v.config_position = v.valid_from_position OR v.ended_by_removal = 1)"
    else:
        text, join, only = "v.state", "", ""
    # A resource's effective times never go back, so newest first by time is newest first by
    # position; with a time bound that order is the (resource_id, valid_from_time, ...) index.
    bound, order = (
        ("v.valid_from_time <= ? AND v.valid_from_position <= ?", "v.valid_from_time DESC, ")
        if timed
        else ("v.valid_from_position <= ?", "")
    )
    return (
        "SELECT v.valid_from_position, v.valid_from_time, v.valid_to_position, "
        f"v.valid_to_time, v.ended_by_removal, {text} FROM proj_versions v{join} "
        f"WHERE v.resource_id = ? AND {bound}{only} "
        f"ORDER BY {order}v.valid_from_position DESC LIMIT ?"
    )


class _Boundary(NamedTuple):
    """Where the field changed: the event's position, its effective time, old and new."""

    position: int
    time: Any
    old: Any
    new: Any


class _EventRow(msgspec.Struct, frozen=True, gc=False):
    type: str
    observed_at: Any
    observed_after: Any
    actor: Any


def _change_after(
    wanted: _Field, point: Point, step: _Step, value: Any, newer: tuple[_Step, Any] | None
) -> _Boundary | None:
    """The newest change of the field after ``step`` began: at the start of the version
    after it (``newer``, with its value), or at ``step``'s removal; for the newest version
    (``newer`` None), at its removal if that is within the point."""
    ended_at = step.valid_to_position
    if newer is None:
        if not step.ended_by_removal or ended_at is None or ended_at > point.position:
            return None
        if point.time_bound is not None and step.valid_to_time > point.time_bound:
            return None
        removed = wanted.differs(value, None)
        return _Boundary(ended_at, step.valid_to_time, value, None) if removed else None
    newer_step, newer_value = newer
    before = None if step.ended_by_removal else value
    if wanted.differs(before, newer_value):
        return _Boundary(
            newer_step.valid_from_position, newer_step.valid_from_time, before, newer_value
        )
    if step.ended_by_removal and wanted.differs(value, None):
        assert ended_at is not None  # a removal ends it
        return _Boundary(ended_at, step.valid_to_time, value, None)
    return None


async def _last_boundary(
    dialect: ProjectionDialect, conn: Connection, resource_id: str, wanted: _Field, point: Point
) -> _Boundary | None:
    """The field's newest change within the point: the versions that began within it are
    read newest first, a few at a time, until two neighbours differ."""
    timed = point.time_bound is not None
    sql = _walk_sql(wanted, timed)
    bound, position, size = point.time_bound, point.position, FIRST_READ
    newer: tuple[_Step, Any] | None = None  # the version read before, and its value
    while True:
        args = [resource_id, *([bound] if timed else []), position, size]
        steps = records(_Step, await conn.fetch(sql, args))
        for step in steps:
            value = wanted.value(step.text)
            found = _change_after(wanted, point, step, value, newer)
            if found is not None:
                return found
            newer = (step, value)
        if len(steps) < size:
            break
        # The next read starts below the last version read: older ones are earlier or
        # equal in time and lower in position.
        bound, position = steps[-1].valid_from_time, steps[-1].valid_from_position - 1
        size = min(size * 2, MAX_READ)
    if newer is not None and wanted.differs(None, newer[1]):
        # The oldest version's start: its discovery, a change from nothing.
        oldest, value = newer
        return _Boundary(oldest.valid_from_position, oldest.valid_from_time, None, value)
    return None


async def last_change(
    dialect: ProjectionDialect, conn: Connection, resource_id: str, field: str, point: Point
) -> LastChange | None:
    """The newest change of ``field`` (a resource field such as ``name``, ``node``,
    ``status``, ``tags``, ``pool``, or ``config.KEY``) of a resource at or before the point:
    the version boundary where the field took the value it held then; None if no event
    within the point ever gave it a value other than None."""
    found = await _last_boundary(dialect, conn, resource_id, _Field(field), point)
    if found is None:
        return None
    row = await conn.fetchone(_EVENT, (found.position,))
    assert row is not None  # a version's event is in the log (it is never deleted)
    event = _EventRow(*row)
    return LastChange(
        resource_id=resource_id,
        field=field,
        position=int(found.position),
        at=dialect.time_out(found.time),
        old=found.old,
        new=found.new,
        event=event.type,
        observed_at=dialect.time_out(event.observed_at),
        observed_after=dialect.time_or_none(event.observed_after),
        actor=decode_actor(event.actor),
    )
