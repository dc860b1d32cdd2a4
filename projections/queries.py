"""The read side: answers about any time or position, as indexed lookups on the projections.

The import callers use. Each query family has a module of its own, built from small public
building blocks that rollback plans and drift reports use too:

- :mod:`projections.points`: a time or position resolved to a :class:`Point`;
- :mod:`projections.versions`: the version of each resource (or of some) at a point;
- :mod:`projections.states`: a resource's state at a point;
- :mod:`projections.last_change`: a field's last change before a point;
- :mod:`projections.history`: the events of a stream;
- the queries: :mod:`projections.inventory` (the inventory, one resource),
  :mod:`projections.history`, :mod:`projections.changes` (net change) and
  :mod:`projections.graph` (the relationship graph).

Every query takes the store first and reads through ``store.read_connection()`` (one
resource through the store's ``short_reads()``, which SQLite runs on the loop's thread); the
SQL is written once with ``?`` placeholders and runs on the store's
:class:`eventstore.Connection` (what still differs by dialect: :mod:`projections.dialect`).
Time semantics follow CONTRACT.md "What the answers mean" and the fold's effective times
(:mod:`projections.fold`): a change counts from its ``observed_at``; ``since``/``until``
select ``(since, until]``; before the first event the inventory is empty; a time in the
future is a 422. An answer is computed at a log position ``P`` (the projections'
checkpoint when the first page was asked, or the ``position`` given) that every later page of
the same listing keeps.
"""

from __future__ import annotations

from .changes import changes, net_change
from .cursors import MAX_LIMIT, check_limit
from .graph import EdgeSpan, edges_at, relations
from .history import StreamEvent, event_changes, history, history_entry, stream_events
from .inventory import inventory, resource_at
from .last_change import LastChange, last_change
from .points import Point, check_past, read_checkpoint, resolve_point
from .states import resource_of, state_at
from .versions import Filters, Version, has_observations, state_of, versions_at, versions_sql

__all__ = [
    "MAX_LIMIT",
    "EdgeSpan",
    "Filters",
    "LastChange",
    "Point",
    "StreamEvent",
    "Version",
    "changes",
    "check_limit",
    "check_past",
    "edges_at",
    "event_changes",
    "has_observations",
    "history",
    "history_entry",
    "inventory",
    "last_change",
    "net_change",
    "read_checkpoint",
    "relations",
    "resolve_point",
    "resource_at",
    "resource_of",
    "state_at",
    "state_of",
    "stream_events",
    "versions_at",
    "versions_sql",
]
