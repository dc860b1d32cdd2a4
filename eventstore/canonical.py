"""The hash chain's canonical encoding, documented in docs/event-format.md.

Each event's hash is the SHA-256 (lower-case hex) of one JSON object holding every envelope
field but ``hash`` itself: keys sorted, no whitespace, UTF-8 without escaping non-ASCII, times
in :func:`eventstore.envelope.format_time` form, ``actor`` an object with the keys ``token``,
``upid`` and ``user`` (or null), and ``data`` the payload's stored JSON text as a string. Only
strings, integers and null occur, so any JSON library that sorts keys reproduces the bytes::

    json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from .envelope import Actor, format_time

_encoder = msgspec.json.Encoder(order="sorted")


class _CanonicalActor(msgspec.Struct, frozen=True):
    """``actor`` in the hash input: all three keys, in sorted order."""

    token: str | None
    upid: str | None
    user: str | None


class _Canonical(msgspec.Struct, frozen=True):
    """The hash input. Fields are declared in sorted key order (and the encoder sorts too)."""

    actor: _CanonicalActor | None
    correlation_id: str | None
    data: str
    observed_after: str | None
    observed_at: str
    position: int
    prev_hash: str
    recorded_at: str
    schema_version: int
    stream_id: str
    type: str
    version: int


def envelope_bytes(
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
    """The exact bytes an event's hash is taken over, fields in ``RecordedEvent`` order."""
    return _encoder.encode(
        _Canonical(
            None if actor is None else _CanonicalActor(actor.token, actor.upid, actor.user),
            correlation_id,
            data.decode("utf-8"),
            None if observed_after is None else format_time(observed_after),
            format_time(observed_at),
            position,
            prev_hash,
            format_time(recorded_at),
            schema_version,
            stream_id,
            type,
            version,
        )
    )
