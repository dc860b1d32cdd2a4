"""Parsing of raw request strings: times, integers, limits, cursors and resource ids.

Only form is checked here (a malformed value is a 400 naming the parameter); what a value
means (a time in the future, a cursor of another query) is the read side's to judge.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from urllib.parse import unquote

from .errors import BadParameterError

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_POSITION = 2**63 - 1  # BIGINT on PostgreSQL, INTEGER on SQLite
MAX_TEXT = 512
MAX_ID = 1024
MAX_CURSOR = 8192
"""A cursor carries its whole query: an id of MAX_ID characters or every filter at MAX_TEXT,
encoded, fits (api/openapi.py's CURSOR says the same)."""

# RFC 3339 date-time (section 5.6): a full date, "T" (or, as the RFC allows, a space), a time
# with optional fraction, and a required offset. fromisoformat alone accepts more (no offset,
# week dates, "24:00"), so the shape is checked first.
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)
_CLUSTER = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_SUB_RESOURCES = ("history", "rollback-targets")


def parse_time(param: str, text: str) -> datetime:
    """An RFC 3339 time with offset, as an aware datetime in UTC."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise BadParameterError(
            param, f"{_show(text)} is not an RFC 3339 time such as 2026-11-01T14:03:00Z"
        )
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micro = int((fraction or ".0")[1:7].ljust(6, "0"))
    try:
        if offset in ("Z", "z"):
            tz_text = "+00:00"
        else:
            tz_text = offset
            if int(offset[1:3]) > 23 or int(offset[4:6]) > 59:
                raise ValueError("offset out of range")
        value = datetime.fromisoformat(
            f"{year}-{month}-{day}T{hour}:{minute}:{second}.{micro:06d}{tz_text}"
        )
        if int(second) == 60:
            raise ValueError("leap seconds are not supported")
        return value.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise BadParameterError(param, f"{_show(text)} is not a valid time ({exc})") from None


def parse_int(param: str, text: str, *, minimum: int = 0, maximum: int = MAX_POSITION) -> int:
    """A decimal integer within ``[minimum, maximum]``."""
    if not re.fullmatch(r"[+-]?\d{1,19}", text):
        raise BadParameterError(param, f"{_show(text)} is not an integer")
    value = int(text)
    if not minimum <= value <= maximum:
        raise BadParameterError(param, f"{value} is outside {minimum}..{maximum}")
    return value


def parse_limit(query: Mapping[str, str], param: str = "limit") -> int:
    """``limit``: 1 to 1000, default 100."""
    text = query.get(param)
    if text is None:
        return DEFAULT_LIMIT
    return parse_int(param, text, minimum=1, maximum=MAX_LIMIT)


def optional_time(query: Mapping[str, str], param: str) -> datetime | None:
    """The named time parameter, or None when absent."""
    text = query.get(param)
    return None if text is None else parse_time(param, text)


def optional_int(query: Mapping[str, str], param: str, *, minimum: int = 0) -> int | None:
    """The named integer parameter, or None when absent."""
    text = query.get(param)
    return None if text is None else parse_int(param, text, minimum=minimum)


def optional_text(query: Mapping[str, str], param: str) -> str | None:
    """A free-text filter: printable, at most 512 characters."""
    text = query.get(param)
    if text is None:
        return None
    check_text(param, text, MAX_TEXT)
    return text


def check_text(param: str, text: str, max_length: int) -> None:
    """Refuse empty, over-long or control-character values."""
    if not text:
        raise BadParameterError(param, "must not be empty")
    if len(text) > max_length:
        raise BadParameterError(param, f"longer than {max_length} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise BadParameterError(param, "contains control characters")


def at_or_position(query: Mapping[str, str]) -> tuple[datetime | None, int | None]:
    """``at`` or ``position`` (not both): the point in time a query answers for."""
    at = optional_time(query, "at")
    position = optional_int(query, "position")
    if at is not None and position is not None:
        raise BadParameterError("position", "give either at or position, not both")
    return at, position


def check_resource_id(param: str, resource_id: str) -> str:
    """A resource id of the form ``{cluster}/{pve-id}`` (at least two non-empty parts)."""
    check_text(param, resource_id, MAX_ID)
    parts = resource_id.split("/")
    if len(parts) < 2 or not all(parts):
        raise BadParameterError(
            param, f"{_show(resource_id)} is not a resource id such as lab/qemu/100"
        )
    if not _CLUSTER.fullmatch(parts[0]):
        raise BadParameterError(param, f"{_show(parts[0])} is not a cluster name")
    return resource_id


def split_resource_path(raw_tail: str) -> tuple[str, str | None]:
    """The resource id and sub-resource in the raw (percent-encoded) path after ``/resources/``.

    The id is one path segment per part (``lab/qemu/100``) or one percent-encoded segment
    (``lab%2Fqemu%2F100``). A last raw segment ``history`` or ``rollback-targets`` is the
    sub-resource; an id that itself ends in such a word is reached in its encoded form, whose
    last raw segment is then not that word.
    """
    segments = raw_tail.split("/")
    sub: str | None = None
    if len(segments) > 1 and segments[-1] in _SUB_RESOURCES:
        sub = segments.pop()
    try:
        parts = [unquote(s, errors="strict") for s in segments]
    except UnicodeDecodeError:
        raise BadParameterError("id", "is not valid UTF-8 once percent-decoded") from None
    return check_resource_id("id", "/".join(parts)), sub


def check_query(pairs: Iterable[tuple[str, str]], allowed: frozenset[str]) -> None:
    """400 naming the first query parameter that is not in ``allowed`` or comes twice.

    ``pairs`` holds every name as often as it was given (``request.query.items()``), so that a
    typo such as ``?sinse=`` is refused rather than ignored, and so is a repeated parameter.
    """
    seen: set[str] = set()
    for name, _ in pairs:
        if name not in allowed:
            shown = name if len(name) <= 40 else name[:37] + "..."
            known = ", ".join(sorted(allowed)) or "none"
            raise BadParameterError(shown, f"unknown query parameter (this route takes: {known})")
        if name in seen:
            raise BadParameterError(name, "given more than once")
        seen.add(name)


def _show(text: str) -> str:
    """A value quoted for a message, cut short so a huge parameter cannot flood a response."""
    return repr(text if len(text) <= 64 else text[:61] + "...")
