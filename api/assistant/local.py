"""Answers from the configured database, through the API's own readers, writing nothing.

``pvetrail mcp`` without ``--api`` opens the database the configuration names (as the other
commands do), but unlike them it never migrates, never runs the projection runner (the query
commands catch the projections up first: a write) and never starts a collector. So its
answers describe the log up to the projections' checkpoint: each carries that position and
the log's head in ``_meta``, and, when the projections are behind (no ``pvetrail serve`` keeps
them current), a note saying by how much.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import msgspec

from eventstore import EventStore, dialect_of, mask_url, open_store
from eventstore.urls import sqlite_path
from projections.cursors import read_only_cursor_key
from projections.drift import DesiredSets
from projections.models import ProjectionLag
from projections.runner import ProjectionRunner

from ..config import Config
from ..middleware import refusal
from ..readers import Asked
from .tools import Answer, Refused, ToolSpec

META_KEY = "pvetrail/projections"
"""The ``_meta`` member of every local answer: ``{checkpoint, head, behind, lag_seconds}``."""


class LocalSourceError(Exception):
    """The configured database cannot be read as it is (missing, not migrated)."""


@dataclass(frozen=True)
class LocalSource:
    """The read side of one database (an :class:`api.readers.ReadSide`)."""

    store: EventStore
    desired: DesiredSets
    drift_ignore: Sequence[str]

    async def answer(self, tool: ToolSpec, asked: Asked) -> Answer:
        """The tool's answer: the API's JSON and where the projections stand."""
        read = tool.operation.read
        assert read is not None, tool.name
        # The runner's own reading of its lag: two reads, it applies nothing (start() would).
        lag = await ProjectionRunner(self.store).lag()
        try:
            found = await read(self, asked)
        except Exception as exc:
            problem = refusal(exc)
            if problem is None:
                raise
            body = msgspec.to_builtins(problem)
            raise Refused(problem.detail, body) from exc
        return Answer(msgspec.json.encode(found), {META_KEY: _position(lag)}, _notes(lag))


def _position(lag: ProjectionLag) -> dict[str, object]:
    return {
        "checkpoint": lag.checkpoint,
        "head": lag.head,
        "behind": lag.head - lag.checkpoint,
        "lag_seconds": round(lag.seconds, 3),
    }


def _notes(lag: ProjectionLag) -> tuple[str, ...]:
    behind = lag.head - lag.checkpoint
    if behind <= 0:
        return ()
    return (
        f"Note: this answer describes the event log up to position {lag.checkpoint}; the "
        f"log's head is {lag.head}, {behind} event(s) later (the oldest of them recorded "
        f"{lag.seconds:.0f} s ago). pvetrail mcp reads the projections as they are and never "
        "updates them; `pvetrail serve` keeps them current while it runs on this database.",
    )


@asynccontextmanager
async def local_source(config: Config) -> AsyncIterator[LocalSource]:
    """The configured database's read side; :class:`LocalSourceError` when it does not exist
    or is not migrated (nothing is created or migrated here)."""
    url = config.database_url
    if dialect_of(url) == "sqlite" and not await asyncio.to_thread(
        os.path.exists, sqlite_path(url)
    ):
        raise LocalSourceError(
            f"the database {mask_url(url)} does not exist: point database_url (or "
            "PVETRAIL_DATABASE_URL) at pvetrail's database, or create it with `pvetrail serve`"
        )
    store = await open_store(url)
    try:
        status = await store.pending_migrations()
        if status.pending:
            raise LocalSourceError(
                f"the database {mask_url(store.url)} is not migrated "
                f"({len(status.pending)} migration(s) pending): run `pvetrail migrate` (or "
                "`pvetrail serve`) first; pvetrail mcp only reads and never migrates"
            )
        # Paging signs cursors with the database's key, which the first asker would store.
        await read_only_cursor_key(store)
        yield LocalSource(store, DesiredSets(store, config.desired_dir), tuple(config.drift_ignore))
    finally:
        await store.close()
