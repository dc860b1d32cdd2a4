"""Paging: page limits, and cursors that carry their whole query.

A cursor holds everything that decides the answer (the filters, the window, the position the
first page resolved to) and where the last page ended, as URL-safe base64 of a small JSON
array, signed with a key kept in the database (``settings``, like the fingerprint key), so
every process serving the database, also after a restart, accepts the cursors of the others.
Passed back alone, a cursor continues the same answer; parameters repeated beside it must
equal the cursor's (a different one is a 400 naming it); ``limit`` may change between pages.
A cursor that does not decode, belongs to another list, or was edited (its signature no
longer matches) is a 400 naming ``cursor``: never a different answer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Any
from weakref import WeakKeyDictionary

import msgspec

from eventstore import EventStore

from .errors import InvalidParameterError

MAX_LIMIT = 1000
"""The largest page a list answers (CONTRACT.md: limit 1-1000, else a 400)."""

KEY_SETTING = "read.cursor_key"
"""The ``settings`` row holding the cursors' signing key (made once, by the first asker)."""

_MAC_BYTES = 16
_encoder = msgspec.json.Encoder(order="sorted")
_decoder = msgspec.json.Decoder(tuple[str, dict[str, Any], list[Any]])
_keys: WeakKeyDictionary[EventStore, bytes] = WeakKeyDictionary()

Query = Mapping[str, str | int | bool | None]
"""What decides a list's answer, as JSON scalars (times as RFC 3339 text)."""


def check_limit(limit: int) -> None:
    """Refuse a page limit outside 1-MAX_LIMIT (a 400 naming ``limit``)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidParameterError(f"limit must be 1-{MAX_LIMIT}, not {limit}", param="limit")


async def cursor_key(store: EventStore) -> bytes:
    """The key that signs this database's cursors (read once per store)."""
    key = _keys.get(store)
    if key is None:
        text = await store.ensure_setting(
            KEY_SETTING, lambda: base64.b64encode(secrets.token_bytes(32)).decode()
        )
        key = _keys[store] = base64.b64decode(text)
    return key


async def read_only_cursor_key(store: EventStore) -> None:
    """Settle ``store``'s signing key without ever writing: the database's key when it has
    one, else a key of this process alone (its cursors then continue only in this process).

    For a reader that must change nothing (``pvetrail mcp``): :func:`cursor_key` stores a new
    key in ``settings`` when the database has none yet, and that is a write.
    """
    if store not in _keys:
        text = await store.get_setting(KEY_SETTING)
        _keys[store] = base64.b64decode(text) if text else secrets.token_bytes(32)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode("ascii"))


def _mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).digest()[:_MAC_BYTES]


def make_cursor(key: bytes, kind: str, query: Query, *state: Any) -> str:
    """A cursor of list ``kind`` for ``query``, continuing after ``state`` (JSON scalars)."""
    body = _encoder.encode((kind, dict(query), list(state)))
    return f"{_b64(body)}.{_b64(_mac(key, body))}"


def read_cursor(
    key: bytes,
    cursor: str,
    kind: str,
    given: Query,
    types: tuple[type | tuple[type, ...], ...],
) -> tuple[dict[str, Any], list[Any]]:
    """The query and the state of a cursor made by :func:`make_cursor` for ``kind``.

    ``given`` holds the parameters the request passed beside the cursor (None: not passed):
    each must equal the cursor's own. ``types`` checks the state's values."""
    body_text, dot, mac_text = cursor.partition(".")
    try:
        body, mac = _unb64(body_text), _unb64(mac_text)
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise InvalidParameterError("cursor is malformed", param="cursor") from exc
    if not dot or not hmac.compare_digest(mac, _mac(key, body)):
        raise InvalidParameterError(
            "cursor was not made by this server for this database, or was edited; "
            "start again without it",
            param="cursor",
        )
    try:
        found_kind, query, state = _decoder.decode(body)
    except msgspec.DecodeError as exc:  # signed, so only an older format of ours
        raise InvalidParameterError("cursor is malformed", param="cursor") from exc
    if found_kind != kind or len(state) != len(types):
        raise InvalidParameterError("cursor does not belong to this list", param="cursor")
    for value, expected in zip(state, types, strict=True):
        if not isinstance(value, expected) or isinstance(value, bool):
            raise InvalidParameterError("cursor is malformed", param="cursor")
    for name, value in given.items():
        if value is not None and query.get(name) != value:
            raise InvalidParameterError(
                f"{name} differs from the query this cursor continues "
                f"({name}={query.get(name)!r}); pass the cursor alone or with the same "
                "parameters",
                param=name,
            )
    return query, state
