"""Migration files: discovery and checksums. Each backend applies them in its own dialect."""

from __future__ import annotations

import hashlib
import re
from importlib import resources

import msgspec

from .errors import MigrationError

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class Migration(msgspec.Struct, frozen=True):
    """One SQL file: its name (the id recorded), its text and the SHA-256 of its bytes."""

    name: str
    sql: str
    checksum: str


class MigrationStatus(msgspec.Struct, frozen=True):
    """What :meth:`migrate` or :meth:`pending` found."""

    applied: list[str]
    pending: list[str]


def load_migrations(dialect: str) -> list[Migration]:
    """Every migration file of a dialect, in name order."""
    folder = resources.files("migrations") / dialect
    found: list[Migration] = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        if not _NAME.match(entry.name):
            raise MigrationError(
                f"migration file {dialect}/{entry.name} is not named NNNN_name.sql"
            )
        raw = entry.read_bytes()
        found.append(Migration(entry.name, raw.decode("utf-8"), hashlib.sha256(raw).hexdigest()))
    found.sort(key=lambda m: m.name)
    return found


def check_applied(known: dict[str, str], migrations: list[Migration]) -> list[Migration]:
    """The migrations not yet applied; refuses when an applied file's checksum changed."""
    by_name = {m.name: m for m in migrations}
    for name, checksum in known.items():
        current = by_name.get(name)
        if current is None:
            raise MigrationError(
                f"migration {name} is recorded as applied but its file is missing: "
                "this pvetrail is older than the database"
            )
        if current.checksum != checksum:
            raise MigrationError(
                f"migration {name} was edited after it was applied "
                f"(recorded checksum {checksum[:12]}…, file {current.checksum[:12]}…); "
                "restore the file, and put changes in a new migration"
            )
    return [m for m in migrations if m.name not in known]
