"""Database URLs: which backend, and how to show one without its password."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from .errors import UnsupportedDatabaseURLError


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***``, safe for messages and logs.

    Masks the password of the user-info part (which may itself hold ``@``, ``:`` or ``/``)
    and any ``password=`` query parameter (libpq and asyncpg accept one).
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    # The host part starts after the LAST "@" before the path: a password may contain "@".
    path_start = len(rest)
    for mark in "/?#":
        found = rest.find(mark, rest.rfind("@") + 1)
        if found != -1:
            path_start = min(path_start, found)
    netloc, tail = rest[:path_start], rest[path_start:]
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
    tail = re.sub(r"([?&]password=)[^&#]*", r"\1***", tail, flags=re.IGNORECASE)
    return f"{scheme}{sep}{netloc}{tail}"


def dialect_of(url: str) -> str:
    """``sqlite`` or ``postgresql``, from the URL's scheme."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        return "sqlite"
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    raise UnsupportedDatabaseURLError(
        f"unsupported database URL {mask_url(url)!r}: use sqlite:///path/to/file.db "
        "or postgresql://user@host:5432/dbname"
    )


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite:///relative`` or ``sqlite:////absolute`` URL."""
    if not url.startswith("sqlite:///"):
        raise UnsupportedDatabaseURLError(
            f"malformed SQLite URL {url!r}: use sqlite:///relative.db or sqlite:////abs/path.db"
        )
    path = url[len("sqlite:///") :]
    path = path.split("?", 1)[0]
    if not path:
        raise UnsupportedDatabaseURLError(f"SQLite URL {url!r} names no file")
    return path
