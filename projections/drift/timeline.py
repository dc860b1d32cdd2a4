"""When a value last changed away from what was expected, and who did it: from the log.

A field's departure walks the field's last changes back (the read side's building block,
:func:`projections.queries.last_change`); a resource's (its creation, removal) folds its
history. A report finds its :class:`Difference` rows first (cheap: two inventories compared)
and reads these only for the page it answers.

For a resource, its history (:func:`projections.queries.history`) is folded into its
successive states up to the report's position, read once per report; the answer is the last
event after which the state no longer was as expected while the one before it was (its
discovery is a change from nothing, its removal a change to nothing). Either way None when it
never was as expected in the log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from collectors.events import CREATES, ENDS, apply_changes
from eventstore import Actor, EventStore

from .. import queries
from ..dialects import dialect_for
from ..errors import NotFoundError
from ..models import HistoryEntry
from .models import DriftItem, DriftKind

State = Mapping[str, Any] | None
"""A resource's fields after an event; None while it does not exist."""

Expected = Callable[[State], bool]
"""Whether a state holds the expected value."""

PAGE = 1000


class Departure(NamedTuple):
    """The change away from the expected value: when it was observed and who made it."""

    since: datetime | None
    actor: Actor | None


NEVER = Departure(None, None)


class Difference(NamedTuple):
    """A drift item before its ``since`` and ``actor`` are read from the log."""

    id: str
    kind: DriftKind
    field: str | None = None
    expected: Any = None
    actual: Any = None
    holds: Expected | None = None
    """Whether a state held what was expected (None: nothing in the log can have)."""

    @property
    def key(self) -> tuple[str, str, str]:
        """The report's order: id, field, kind."""
        return (self.id, self.field or "", self.kind)


class Timelines:
    """Resources' states through their history, read at most once each, up to ``position``."""

    def __init__(self, store: EventStore, position: int) -> None:
        self.store = store
        self.position = position
        self._states: dict[str, list[tuple[HistoryEntry, State]]] = {}

    async def states(self, resource_id: str) -> list[tuple[HistoryEntry, State]]:
        """Each event of the resource within the position, with the state it left."""
        found = self._states.get(resource_id)
        if found is None:
            found = self._states[resource_id] = await self._read(resource_id)
        return found

    async def _read(self, resource_id: str) -> list[tuple[HistoryEntry, State]]:
        steps: list[tuple[HistoryEntry, State]] = []
        state: State = None
        cursor: str | None = None
        while True:
            try:
                page = await queries.history(self.store, resource_id, limit=PAGE, cursor=cursor)
            except NotFoundError:
                return steps  # never seen: no history
            for entry in page.items:
                if entry.position > self.position:
                    return steps
                if entry.event in CREATES:
                    state = apply_changes({}, list(entry.changes))
                elif entry.event in ENDS:
                    state = None
                else:
                    state = apply_changes(dict(state or {}), list(entry.changes))
                steps.append((entry, state))
            cursor = page.next_cursor
            if cursor is None:
                return steps

    async def item(self, found: Difference) -> DriftItem:
        """The drift item, with when and by whom it departed from what was expected."""
        if found.holds is None:
            away = NEVER
        elif found.field is not None:
            away = await self.field_departure(found.id, found.field, found.holds)
        else:
            away = await self.departure(found.id, found.holds)
        return DriftItem(
            id=found.id,
            kind=found.kind,
            field=found.field,
            expected=found.expected,
            actual=found.actual,
            since=away.since,
            actor=away.actor,
        )

    async def field_departure(self, resource_id: str, field: str, expected: Expected) -> Departure:
        """The last change after which a field no longer held the expected value: the field's
        last changes (:func:`projections.queries.last_change`, indexed reads of the versions)
        walked back from the report's position until one whose old value held it. While
        walking, each change's new value does not hold it (the first one's is the current
        value, each older one's the old value of the change after it)."""
        stored = _stored_field(field)
        dialect = dialect_for(self.store)
        point = queries.Point(None, None, self.position)
        async with self.store.read_connection() as conn:
            while True:
                change = await queries.last_change(dialect, conn, resource_id, stored, point)
                if change is None:
                    return NEVER
                if expected(_state(stored, change.old)):
                    return Departure(change.observed_at, change.actor)
                point = queries.Point(None, None, change.position - 1)

    async def departure(self, resource_id: str, expected: Expected) -> Departure:
        """The last change after which the state stopped holding the expected value."""
        last = NEVER
        before: State = None
        for entry, state in await self.states(resource_id):
            if expected(before) and not expected(state):
                last = Departure(entry.observed_at, entry.actor)
            before = state
        return last


def _stored_field(field: str) -> str:
    """The field as the versions keep it: ``config.KEY`` for ``config.KEY.SUBKEY``."""
    prefix, _, rest = field.partition(".")
    return f"{prefix}.{rest.partition('.')[0]}" if prefix == "config" and rest else field


def _state(stored: str, value: Any) -> dict[str, Any]:
    """A state holding only ``value`` for the stored field (enough for its predicate)."""
    prefix, _, key = stored.partition(".")
    return {prefix: {key: value}} if prefix == "config" and key else {stored: value}
