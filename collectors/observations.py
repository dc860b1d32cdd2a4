"""The ``observations`` table: when each resource was last successfully observed.

Kept beside the log (outside the hash chain), bulk-upserted once per poll. It gives
``observed_after`` after a restart and lets answers say how stale a resource is. The SQL
is written once, for the store's one SQL (:class:`eventstore.Connection`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from eventstore import EventStore

LOAD = "SELECT resource_id, last_fast_at, last_deep_at FROM observations WHERE cluster = ?"
UPSERT = """
INSERT INTO observations (resource_id, cluster, last_observed_at, last_fast_at, last_deep_at)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (resource_id) DO UPDATE SET
    cluster = excluded.cluster,
    last_observed_at = excluded.last_observed_at,
    last_fast_at = COALESCE(excluded.last_fast_at, observations.last_fast_at),
    last_deep_at = COALESCE(excluded.last_deep_at, observations.last_deep_at)
"""

Seen = tuple[datetime | None, datetime | None]
"""(last fast observation, last deep observation) of one resource."""


async def load(store: EventStore, cluster: str) -> dict[str, Seen]:
    """Every resource of the cluster with its last fast and deep observation."""
    async with store.read_connection() as conn:
        rows = await conn.fetch(LOAD, (cluster,))
        return {str(row[0]): (conn.time_or_none(row[1]), conn.time_or_none(row[2])) for row in rows}


async def save(
    store: EventStore,
    cluster: str,
    observed: Iterable[tuple[str, datetime | None, datetime | None]],
) -> int:
    """Upsert (resource id, fast time, deep time) rows in one transaction; a None keeps the old."""
    observed = list(observed)
    if not observed:
        return 0
    async with store.transaction() as conn:

        def time(value: datetime | None) -> Any:
            return None if value is None else conn.time_in(value)

        rows = [
            (
                rid,
                cluster,
                time(max(t for t in (fast, deep) if t is not None)),
                time(fast),
                time(deep),
            )
            for rid, fast, deep in observed
        ]
        await conn.executemany(UPSERT, rows)
    return len(rows)
