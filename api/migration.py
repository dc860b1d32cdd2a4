"""Migrating the database as ``serve`` and ``pvetrail migrate`` both do: the SQL migrations,
then, on PostgreSQL, the reader role of the SQL views (docs/sql.md)."""

from __future__ import annotations

import logging

from eventstore import EventStore, MigrationStatus
from projections.cursors import cursor_key
from projections.models import ReaderGrant
from projections.views import grant_reader

from .config import Config

log = logging.getLogger("pvetrail.migrate")

MANUAL = "run the CREATE ROLE and GRANT lines of docs/sql.md ('The reader role') as a user who may"
"""What to do about a role pvetrail could not make or grant."""


async def migrate_database(
    store: EventStore, config: Config, *, log_grant: bool = True
) -> tuple[MigrationStatus, ReaderGrant | None]:
    """Apply pending migrations, make the cursors' signing key, then let the configured
    reader role read the views (where the database has roles); a role that could not be made
    or granted is logged (unless the caller reports it itself), never an error: the log and
    the API work without it."""
    status = await store.migrate()
    # The key that signs list cursors, made here so that no reader ever writes (the first
    # list asked of a database would otherwise store it; pvetrail mcp and the reader role
    # must change nothing).
    await cursor_key(store)
    grant = await grant_reader(store, config.database_reader_role)
    if grant is not None and log_grant:
        log.log(
            logging.INFO if grant.granted else logging.WARNING,
            describe(grant),
            extra={"role": grant.role},
        )
    return status, grant


def describe(grant: ReaderGrant) -> str:
    """One line on what became of the reader role."""
    if grant.granted:
        made = "created" if grant.created else "exists"
        return f"reader role {grant.role} {made}; it may read the SQL views (SELECT on them alone)"
    return f"reader role {grant.role} was not set up: {grant.problem}; {MANUAL}"
