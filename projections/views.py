"""The stable SQL views (docs/sql.md): their names, and the PostgreSQL role that reads them.

The views themselves are defined once per backend, in ``migrations/*/0400_views.sql``; a
rebuild recreates them from the database's own record of those definitions
(:meth:`~projections.dialect.ProjectionDialect.drop_views`). They are kept stable across
releases like the HTTP API: columns are added, never renamed, removed or given another
meaning.
"""

from __future__ import annotations

from eventstore import EventStore

from .dialects import dialect_for
from .models import ReaderGrant

VIEWS = ("pvetrail_resources", "pvetrail_versions", "pvetrail_changes", "pvetrail_edges")
"""The views docs/sql.md describes, and all that the reader role may read."""


async def grant_reader(store: EventStore, role: str) -> ReaderGrant | None:
    """PostgreSQL: make ``role`` (NOLOGIN) if it is missing and the database user may create
    roles, and let it read the views and nothing else (USAGE on the schema, SELECT on each
    view: not the tables, not the log); idempotent, safe when processes race. None on
    SQLite, which has no roles (open the file read-only instead). ``role`` must be a plain
    role name (:mod:`api.config` checks it)."""
    dialect = dialect_for(store)
    async with store.transaction() as conn:
        return await dialect.grant_reader(conn, role, VIEWS)
