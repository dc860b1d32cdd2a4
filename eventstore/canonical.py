"""The hash chain's canonical encoding, documented in docs/event-format.md.

Each event's hash is the SHA-256 (lower-case hex) of one JSON object holding every envelope
field but ``hash`` itself: keys sorted, no whitespace, UTF-8 without escaping non-ASCII, times
in :func:`eventstore.envelope.format_time` form, ``actor`` an object with the keys ``token``,
``upid`` and ``user`` (or null), and ``data`` the payload's stored JSON text as a string. Only
strings, integers and null occur, so any JSON library that sorts keys reproduces the bytes::

    json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import msgspec

from .envelope import Actor, format_time

_encoder = msgspec.json.Encoder(order="sorted")


def canonical_bytes(
    *,
    position: int,
    stream_id: str,
    version: int,
    type: str,
    schema_version: int,
    observed_at: datetime,
    observed_after: datetime | None,
    recorded_at: datetime,
    actor: Actor | None,
    correlation_id: str | None,
    data: bytes,
    prev_hash: str,
) -> bytes:
    """The exact bytes the event's hash is taken over."""
    actor_obj: dict[str, Any] | None = None
    if actor is not None:
        actor_obj = {"token": actor.token, "upid": actor.upid, "user": actor.user}
    obj = {
        "actor": actor_obj,
        "correlation_id": correlation_id,
        "data": data.decode("utf-8"),
        "observed_after": format_time(observed_after) if observed_after is not None else None,
        "observed_at": format_time(observed_at),
        "position": position,
        "prev_hash": prev_hash,
        "recorded_at": format_time(recorded_at),
        "schema_version": schema_version,
        "stream_id": stream_id,
        "type": type,
        "version": version,
    }
    return _encoder.encode(obj)


def event_hash(**fields: Any) -> str:
    """SHA-256 hex of :func:`canonical_bytes` for the given envelope fields."""
    return hashlib.sha256(canonical_bytes(**fields)).hexdigest()
