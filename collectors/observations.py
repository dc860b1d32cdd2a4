"""The ``observations`` table: when each resource was last successfully observed.

Kept beside the log (outside the hash chain), bulk-upserted once per poll. It gives
``observed_after`` after a restart and lets answers say how stale a resource is. The SQL
differs by dialect only in placeholders and in how times travel (TEXT in ``format_time`` form
on SQLite, TIMESTAMPTZ on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from eventstore import EventStore, format_time, parse_time

LOAD_SQLITE = "SELECT resource_id, last_fast_at, last_deep_at FROM observations WHERE cluster = ?"
LOAD_POSTGRES = (
    "SELECT resource_id, last_fast_at, last_deep_at FROM observations WHERE cluster = $1"
)
UPSERT_SQLITE = """
INSERT INTO observations (resource_id, cluster, last_observed_at, last_fast_at, last_deep_at)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (resource_id) DO UPDATE SET
    cluster = excluded.cluster,
    last_observed_at = excluded.last_observed_at,
    last_fast_at = COALESCE(excluded.last_fast_at, observations.last_fast_at),
    last_deep_at = COALESCE(excluded.last_deep_at, observations.last_deep_at)
"""
UPSERT_POSTGRES = """
INSERT INTO observations (resource_id, cluster, last_observed_at, last_fast_at, last_deep_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (resource_id) DO UPDATE SET
    cluster = excluded.cluster,
    last_observed_at = excluded.last_observed_at,
    last_fast_at = COALESCE(excluded.last_fast_at, observations.last_fast_at),
    last_deep_at = COALESCE(excluded.last_deep_at, observations.last_deep_at)
"""

Seen = tuple[datetime | None, datetime | None]
"""(last fast observation, last deep observation) of one resource."""


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    return parse_time(str(value))


async def load(store: EventStore, cluster: str) -> dict[str, Seen]:
    """Every resource of the cluster with its last fast and deep observation."""
    out: dict[str, Seen] = {}
    async with store.read_connection() as conn:
        if store.dialect == "sqlite":
            async with conn.execute(LOAD_SQLITE, (cluster,)) as cursor:
                rows = list(await cursor.fetchall())
        else:
            rows = list(await conn.fetch(LOAD_POSTGRES, cluster))
    for row in rows:
        out[str(row[0])] = (_time(row[1]), _time(row[2]))
    return out


async def save(
    store: EventStore,
    cluster: str,
    observed: Iterable[tuple[str, datetime | None, datetime | None]],
) -> int:
    """Upsert (resource id, fast time, deep time) rows in one transaction; a None keeps the old."""
    rows: list[tuple[Any, ...]] = []
    for rid, fast, deep in observed:
        latest = max(t for t in (fast, deep) if t is not None)
        if store.dialect == "sqlite":
            rows.append(
                (
                    rid,
                    cluster,
                    format_time(latest),
                    format_time(fast) if fast else None,
                    format_time(deep) if deep else None,
                )
            )
        else:
            rows.append((rid, cluster, latest, fast, deep))
    if not rows:
        return 0
    async with store.transaction() as conn:
        if store.dialect == "sqlite":
            await conn.executemany(UPSERT_SQLITE, rows)
        else:
            await conn.executemany(UPSERT_POSTGRES, rows)
    return len(rows)
