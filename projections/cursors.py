"""Paging: page limits, and opaque cursors carrying what a first page resolved, so later pages
answer the same question.

A cursor is URL-safe base64 of a small JSON array; it is not secret (it holds positions and
times the client could ask for anyway), only checked: a cursor that does not decode, or that
belongs to another kind of list, is a 400 naming ``cursor``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import msgspec

from .errors import InvalidParameterError

MAX_LIMIT = 1000
"""The largest page a list answers (CONTRACT.md: limit 1-1000, else a 400)."""

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(list[Any])


def check_limit(limit: int) -> None:
    """Refuse a page limit outside 1-MAX_LIMIT (a 400 naming ``limit``)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidParameterError(f"limit must be 1-{MAX_LIMIT}, not {limit}", param="limit")


def make_cursor(kind: str, *values: Any) -> str:
    """A cursor of ``kind`` carrying ``values`` (JSON scalars)."""
    raw = _encoder.encode([kind, *values])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read_cursor(cursor: str, kind: str, types: tuple[type | tuple[type, ...], ...]) -> list[Any]:
    """The values of a cursor made by :func:`make_cursor` for ``kind``, checked by type."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = _decoder.decode(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (binascii.Error, ValueError, UnicodeEncodeError, msgspec.DecodeError) as exc:
        raise InvalidParameterError("cursor is malformed", param="cursor") from exc
    if not values or values[0] != kind or len(values) != len(types) + 1:
        raise InvalidParameterError("cursor does not belong to this list", param="cursor")
    for value, expected in zip(values[1:], types, strict=True):
        if not isinstance(value, expected) or isinstance(value, bool):
            raise InvalidParameterError("cursor is malformed", param="cursor")
    return values[1:]
