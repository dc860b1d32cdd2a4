"""An append-only, hash-chained event log on SQLite or PostgreSQL. Knows nothing of Proxmox."""

from __future__ import annotations

from .envelope import GENESIS_HASH, Actor, NewEvent, RecordedEvent, format_time, parse_time, utcnow
from .errors import (
    AppendOnlyViolationError,
    ConcurrencyError,
    DatabaseUnavailableError,
    EventStoreError,
    InvalidEventError,
    LockLostError,
    MigrationError,
    UnsupportedDatabaseURLError,
)
from .migrations import MigrationStatus
from .sql import Connection, Dialect, Row
from .store import EventStore, VerifyResult
from .urls import dialect_of, mask_url

__all__ = [
    "GENESIS_HASH",
    "Actor",
    "AppendOnlyViolationError",
    "ConcurrencyError",
    "Connection",
    "DatabaseUnavailableError",
    "Dialect",
    "EventStore",
    "EventStoreError",
    "InvalidEventError",
    "LockLostError",
    "MigrationError",
    "MigrationStatus",
    "NewEvent",
    "RecordedEvent",
    "Row",
    "UnsupportedDatabaseURLError",
    "VerifyResult",
    "dialect_of",
    "format_time",
    "mask_url",
    "open_store",
    "parse_time",
    "utcnow",
]


async def open_store(url: str) -> EventStore:
    """Open the event store a database URL names (``sqlite:///…`` or ``postgresql://…``)."""
    if dialect_of(url) == "sqlite":
        from .sqlite import SQLiteEventStore

        return await SQLiteEventStore.open(url)
    from .postgres import PostgresEventStore

    return await PostgresEventStore.open(url)
