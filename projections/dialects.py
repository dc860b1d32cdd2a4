"""Which projection dialect a store speaks: the factory, kept apart from the port
(:mod:`projections.dialect`) so that the port imports none of its implementations."""

from __future__ import annotations

from weakref import WeakKeyDictionary

from eventstore import EventStore

from .dialect import ProjectionDialect
from .postgres import PostgresDialect
from .sqlite import SQLiteDialect

_dialects: WeakKeyDictionary[EventStore, ProjectionDialect] = WeakKeyDictionary()
"""One dialect per open store (it caches converted SQL); gone with the store."""


def dialect_for(store: EventStore) -> ProjectionDialect:
    """The projection dialect of a store (the same instance for each call on that store)."""
    found = _dialects.get(store)
    if found is None:
        found = SQLiteDialect() if store.dialect == "sqlite" else PostgresDialect()
        _dialects[store] = found
    return found
