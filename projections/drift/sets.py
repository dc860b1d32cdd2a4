"""Where desired-state sets come from: the database (``PUT /desired/{name}``) and the
configuration's ``desired_dir``.

Stored sets live in the ``desired_sets`` table, beside the log and outside its hash chain,
with who stored them and when. A directory holds one set per ``*.yaml``/``*.yml``/``*.json``
file, named after the file, so sets can live in git; a file is parsed again whenever its
modification time or size changes, and a set stored under the same name wins over it. A file
that is not a valid set is listed with its error and cannot be used until it is fixed.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from eventstore import EventStore, Row, utcnow

from ..errors import NotFoundError, QueryError, UnprocessableError
from .desired import DesiredDocument, check_set_name, parse_document
from .models import DesiredSet, DesiredSetInfo

log = logging.getLogger("pvetrail.drift")

ANONYMOUS = "anonymous"
"""``stored_by`` of a set stored while the API has no tokens."""

SUFFIXES = {".json": False, ".yaml": True, ".yml": True}
"""File suffixes of a desired directory, and whether each is YAML."""

UPSERT = """
INSERT INTO desired_sets (name, document, stored_by, stored_at) VALUES (?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET
    document = excluded.document,
    stored_by = excluded.stored_by,
    stored_at = excluded.stored_at
"""
SELECT_ONE = "SELECT name, document, stored_by, stored_at FROM desired_sets WHERE name = ?"
SELECT_ALL = "SELECT name, document, stored_by, stored_at FROM desired_sets ORDER BY name"

_encoder = msgspec.json.Encoder(order="sorted")
_decoder = msgspec.json.Decoder(DesiredDocument)


@dataclass(frozen=True)
class _File:
    """One file of the directory as last read: its stamp, and its set or its error."""

    stamp: tuple[int, int]
    path: Path
    found: DesiredSet | None
    error: str | None


class DesiredSets:
    """Desired-state sets by name: stored ones, then the directory's (re-read on change)."""

    def __init__(self, store: EventStore, directory: str | os.PathLike[str] | None = None) -> None:
        self.store = store
        self.directory = Path(directory) if directory is not None else None
        self._files: dict[Path, _File] = {}
        self._lock = asyncio.Lock()
        self._problem: str | None = None

    async def put(self, name: str, document: DesiredDocument, stored_by: str) -> DesiredSet:
        """Store (or replace) a set."""
        check_set_name(name)
        stored_at = utcnow()
        async with self.store.transaction() as conn:
            await conn.execute(
                UPSERT,
                (name, _encoder.encode(document).decode(), stored_by, conn.time_in(stored_at)),
            )
        return DesiredSet(
            name=name, source="stored", stored_by=stored_by, stored_at=stored_at, document=document
        )

    async def get(self, name: str, *, param: str = "name") -> DesiredSet:
        """The set of that name (a stored one wins); 404 when there is none, 422 when its
        file is not a valid set; ``param`` is the parameter a bad name is blamed on."""
        check_set_name(name, param)
        async with self.store.read_connection() as conn:
            row = await conn.fetchone(SELECT_ONE, (name,))
            if row is not None:
                return _stored(row, conn.time_out(row[3]))
        for entry in (await self._read_directory()).values():
            if entry.path.stem != name:
                continue
            if entry.found is None:
                raise UnprocessableError(
                    f"desired set {name!r} ({entry.path.name} in desired_dir) is not valid: "
                    f"{entry.error}",
                    param="desired",
                )
            return entry.found
        raise NotFoundError(f"no desired set named {name!r} (see GET /api/v1/desired)")

    async def list(self) -> list[DesiredSetInfo]:
        """Every set by name; a file shadowed by a stored set of its name is not listed."""
        found: dict[str, DesiredSetInfo] = {}
        for entry in (await self._read_directory()).values():
            name = entry.path.stem
            if name in found:
                continue  # two files of one name: the first in sorted order (see _read)
            if entry.found is not None:
                found[name] = _info(entry.found)
            else:
                found[name] = DesiredSetInfo(
                    name=name,
                    source="file",
                    stored_by=None,
                    stored_at=datetime.fromtimestamp(entry.stamp[0] / 1e9, UTC),
                    resources=0,
                    file=entry.path.name,
                    error=entry.error,
                )
        async with self.store.read_connection() as conn:
            for row in await conn.fetch(SELECT_ALL):
                found[str(row[0])] = _info(_stored(row, conn.time_out(row[3])))
        return [found[name] for name in sorted(found)]

    async def _read_directory(self) -> dict[Path, _File]:
        if self.directory is None:
            return {}
        async with self._lock:  # one re-read at a time
            self._files, problem = await asyncio.to_thread(_read, self.directory, self._files)
            if problem is not None and problem != self._problem:
                # Once, not at every question: the directory may appear later (a checkout).
                log.warning("%s", problem)
            self._problem = problem
            return self._files


def _stored(row: Row, stored_at: datetime) -> DesiredSet:
    name, document, stored_by = row[0], row[1], row[2]
    return DesiredSet(
        name=str(name),
        source="stored",
        stored_by=str(stored_by),
        stored_at=stored_at,
        document=_decoder.decode(str(document)),
    )


def _info(found: DesiredSet) -> DesiredSetInfo:
    return DesiredSetInfo(
        name=found.name,
        source=found.source,
        stored_by=found.stored_by,
        stored_at=found.stored_at,
        resources=len(found.document.resources),
        file=found.file,
    )


def _read(directory: Path, known: dict[Path, _File]) -> tuple[dict[Path, _File], str | None]:
    """The directory's set files, parsing only those that are new or changed since ``known``;
    or why the directory cannot be read."""
    try:
        paths = sorted(p for p in directory.iterdir() if p.suffix in SUFFIXES and p.is_file())
    except OSError as exc:
        return {}, f"cannot read desired_dir {directory}: {exc.strerror or exc}"
    files: dict[Path, _File] = {}
    for path in paths:
        try:
            info = path.stat()
        except OSError:
            continue  # removed meanwhile
        stamp = (info.st_mtime_ns, info.st_size)
        entry = known.get(path)
        if entry is None or entry.stamp != stamp:
            entry = _parse(path, stamp)
        files[path] = entry
    return files, None


def _parse(path: Path, stamp: tuple[int, int]) -> _File:
    name = path.stem
    try:
        check_set_name(name)
        body = path.read_bytes()
        document = parse_document(body, yaml_text=SUFFIXES[path.suffix])
    except QueryError as exc:
        log.warning("desired set file %s is not valid: %s", path, exc.detail)
        return _File(stamp, path, None, exc.detail)
    except OSError as exc:
        return _File(stamp, path, None, f"cannot read it: {exc.strerror or exc}")
    found = DesiredSet(
        name=name,
        source="file",
        stored_by=None,
        stored_at=datetime.fromtimestamp(stamp[0] / 1e9, UTC),
        document=document,
        file=path.name,
    )
    return _File(stamp, path, found, None)
