"""The envelope every event travels in: what the store records around a payload.

The store knows nothing about Proxmox: ``type`` names the payload's schema and ``data`` holds
its msgspec-encoded JSON bytes, which the store keeps byte for byte.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

import msgspec

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the event at position 1."""


class Actor(msgspec.Struct, frozen=True, omit_defaults=False):
    """Who caused a change, as far as the Proxmox task log says (any part may be unknown)."""

    user: str | None = None
    token: str | None = None
    upid: str | None = None


class NewEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event to append. The store assigns position, version, recorded_at and the hashes.

    ``expected_version`` is the stream's version before this event (0: the stream must not
    exist yet); ``None`` appends without a check. Two events of one batch on the same stream
    take consecutive versions, so the second one's expected version is the first one's plus one.
    """

    stream_id: str
    type: str
    data: bytes
    observed_at: datetime
    observed_after: datetime | None = None
    schema_version: int = 1
    actor: Actor | None = None
    correlation_id: str | None = None
    expected_version: int | None = None


class RecordedEvent(msgspec.Struct, frozen=True):
    """An event as the log holds it (fields in the ``events`` table's column order).

    Positional construction is allowed (and used by the backends' row readers: it is the
    fastest way to build one); the field order is part of the interface.
    """

    position: int
    stream_id: str
    version: int
    type: str
    schema_version: int
    observed_at: datetime
    observed_after: datetime | None
    recorded_at: datetime
    actor: Actor | None
    correlation_id: str | None
    data: bytes
    prev_hash: str
    hash: str


def utcnow() -> datetime:
    """Now, in UTC, at the microsecond precision the log keeps."""
    return datetime.now(UTC)


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with exactly six fractional digits and ``Z``: the canonical time form.

    One fixed width keeps the text sortable (SQLite compares it as text) and makes the hash
    input the same on every backend.
    """
    if value.tzinfo is None:
        raise ValueError("naive datetime: the event log keeps only aware times")
    return _format_aware(value)


@lru_cache(maxsize=4096)
def _format_aware(value: datetime) -> str:
    # Cached: the events of one poll share observed_at and one batch shares recorded_at, and
    # formatting is the costliest step of sealing an event. Equal instants in other time
    # zones hash alike and map to the same UTC text, so the cache cannot answer wrongly.
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")[:-6] + "Z"


def parse_time(text: str) -> datetime:
    """Read a time written by :func:`format_time` (or any RFC 3339 time with an offset)."""
    value = datetime.fromisoformat(text)  # Python 3.11 reads the "Z" itself
    if value.tzinfo is None:
        raise ValueError(f"time without offset: {text!r}")
    return value if value.tzinfo is UTC else value.astimezone(UTC)
