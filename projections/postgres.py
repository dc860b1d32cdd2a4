"""The projections on PostgreSQL: ``$n`` placeholders, TIMESTAMPTZ times, row locks."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import asyncpg

from eventstore import Connection
from eventstore.postgres import lock_key

from .dialect import ProjectionDialect
from .errors import ProjectionStateError
from .fold import RESOURCE_COLUMNS
from .models import ReaderGrant

_RESOURCE_TYPES = (
    "text[], text[], text[], text[], int[], text[], text[], text[], text[], text[], text[], "
    "text[], int[], bigint[], timestamptz[], bigint[], timestamptz[], timestamptz[], bigint[]"
)
_UPDATES = ", ".join(
    f"{c} = excluded.{c}" for c in (n.strip() for n in RESOURCE_COLUMNS.split(",")[1:])
)
_PRIMARY_KEY = (
    "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
    "WHERE conrelid = to_regclass($1) AND contype = 'p'"
)
_INDEXES = (
    "SELECT pg_get_indexdef(indexrelid) FROM pg_index "
    "WHERE indrelid = to_regclass($1) AND NOT indisprimary ORDER BY indexrelid"
)
_INDEX_HEAD = re.compile(r"^CREATE (UNIQUE )?INDEX \S+ ON (?:ONLY )?\S+ USING")
# The views that read any of the tables $1, directly or through other views, each with the
# statements that recreate it as it is: its definition (pg_get_viewdef, names qualified as
# the search path needs), options, grants (relacl, the owner's own left out) and comment;
# views on views after the views they read (their depth).
_DEPENDENT_VIEWS = """
WITH RECURSIVE reading(oid, depth) AS (
    SELECT r.ev_class, 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
    WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
      AND d.refobjid IN (SELECT to_regclass(t) FROM unnest($1::text[]) t)
      AND r.ev_class <> d.refobjid
    UNION
    SELECT r.ev_class, reading.depth + 1 FROM reading
    JOIN pg_depend d ON d.refobjid = reading.oid AND d.refclassid = 'pg_class'::regclass
        AND d.classid = 'pg_rewrite'::regclass
    JOIN pg_rewrite r ON r.oid = d.objid
    WHERE r.ev_class <> d.refobjid
)
SELECT c.oid::regclass::text, c.relkind::text,
    ARRAY[format('CREATE VIEW %s%s AS %s', c.oid::regclass,
                 ' WITH (' || array_to_string(c.reloptions, ', ') || ')',
                 pg_get_viewdef(c.oid))]
    || ARRAY(SELECT format('GRANT %s ON %s TO %s%s', a.privilege_type, c.oid::regclass,
                           CASE a.grantee WHEN 0 THEN 'PUBLIC'
                                ELSE quote_ident(pg_get_userbyid(a.grantee)) END,
                           CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
             FROM aclexplode(c.relacl) a WHERE a.grantee <> c.relowner)
    || ARRAY(SELECT format('COMMENT ON VIEW %s IS %L', c.oid::regclass, d.description)
             FROM pg_description d
             WHERE d.objoid = c.oid AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0)
FROM (SELECT oid, max(depth) AS depth FROM reading GROUP BY oid) v
JOIN pg_class c ON c.oid = v.oid
ORDER BY v.depth, c.oid
"""
_MAY_CREATE_ROLES = "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
BULK_SORT_MEMORY = "256MB"
"""maintenance_work_mem while a rebuild builds its indexes."""

# The batch writes as one statement per batch instead of one per row: arrays of each column,
# unnested (the dialect's overrides of the generic statements in projections/dialect.py).
UPSERT_RESOURCES = (
    "INSERT INTO {t} ("
    + RESOURCE_COLUMNS
    + ") SELECT * FROM unnest("
    + ", ".join(f"${i}::{ty.strip()}" for i, ty in enumerate(_RESOURCE_TYPES.split(","), 1))
    + ") ON CONFLICT (resource_id) DO UPDATE SET "
    + _UPDATES
)
CLOSE_VERSIONS = (
    "UPDATE {t} AS v SET valid_to_position = u.tp, valid_to_time = u.tt, "
    "ended_by_removal = u.e FROM unnest($1::bigint[], $2::timestamptz[], $3::int[], "
    "$4::text[], $5::bigint[]) AS u(tp, tt, e, rid, fp) "
    "WHERE v.resource_id = u.rid AND v.valid_from_position = u.fp"
)
CLOSE_EDGES = (
    "UPDATE {t} AS e SET until_position = u.tp, until_time = u.tt "
    "FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], "
    "$6::text[]) AS u(tp, tt, f, r, o, a) WHERE e.from_id = u.f AND e.rel = u.r "
    "AND e.to_id = u.o AND e.attrs = u.a AND e.until_position IS NULL"
)


async def _set_based(
    conn: Connection, statement: str, table: str, rows: Sequence[Sequence[Any]]
) -> None:
    """Run one of the statements above with the rows as one array per column."""
    if rows:
        db: asyncpg.Connection = conn.raw
        columns = [list(column) for column in zip(*rows, strict=True)]
        await db.execute(statement.format(t=table), *columns)


class PostgresDialect(ProjectionDialect):
    """asyncpg connections from the store's pool."""

    name = "postgresql"
    overlap_io = True

    def version_probe(self, where: str, order: str) -> str:
        # Without LATERAL the planner may hash-join the whole versions table (a cost that
        # grows with history); LATERAL ... LIMIT 1 keeps it an index probe per resource.
        return (
            f"CROSS JOIN LATERAL (SELECT x.* FROM proj_versions x WHERE {where} "
            f"ORDER BY {order} LIMIT 1) v"
        )

    async def analyze(self, conn: Connection, table: str) -> None:
        # A rebuild's COPY leaves fresh tables without statistics until autovacuum comes by.
        await conn.execute(f"ANALYZE {table}")

    async def upsert_resources(
        self, conn: Connection, table: str, rows: Sequence[Sequence[Any]]
    ) -> None:
        await _set_based(conn, UPSERT_RESOURCES, table, rows)

    async def close_versions(
        self, conn: Connection, table: str, rows: Sequence[Sequence[Any]]
    ) -> None:
        await _set_based(conn, CLOSE_VERSIONS, table, rows)

    async def close_edges(
        self, conn: Connection, table: str, rows: Sequence[Sequence[Any]]
    ) -> None:
        await _set_based(conn, CLOSE_EDGES, table, rows)

    async def create_like(self, conn: Connection, table: str, shadow: str) -> list[str]:
        # LIKE without its indexes (the primary key is one); they are built after the COPY.
        await conn.execute(f"CREATE TABLE {shadow} (LIKE {table} INCLUDING ALL EXCLUDING INDEXES)")
        db: asyncpg.Connection = conn.raw
        later = [
            f"ALTER TABLE {shadow} ADD {row[0]}" for row in await db.fetch(_PRIMARY_KEY, table)
        ]
        for row in await db.fetch(_INDEXES, table):
            # Unnamed: PostgreSQL picks a name that is free (index names are per schema).
            later.append(_INDEX_HEAD.sub(f"CREATE \\1INDEX ON {shadow} USING", row[0], count=1))
        return later

    async def create_indexes(self, conn: Connection, statements: Sequence[str]) -> None:
        # Index builds sort in maintenance_work_mem (64 MB by default): more spills less.
        await conn.execute(f"SET LOCAL maintenance_work_mem = '{BULK_SORT_MEMORY}'")
        await super().create_indexes(conn, statements)

    async def drop_views(self, conn: Connection, tables: Sequence[str]) -> list[str]:
        db: asyncpg.Connection = conn.raw
        rows = await db.fetch(_DEPENDENT_VIEWS, list(tables))
        kept = [row for row in rows if row[1] == "v"]
        if len(kept) < len(rows):
            others = ", ".join(row[0] for row in rows if row[1] != "v")
            raise ProjectionStateError(
                f"{others} (not a plain view) reads the projection tables a rebuild replaces: "
                "drop it before the rebuild and make it again afterwards"
            )
        if kept:
            # One statement: views that read each other go together, and nothing else does
            # (no CASCADE: whatever else depends on them stops the swap rather than vanish).
            await db.execute(f"DROP VIEW {', '.join(row[0] for row in kept)}")
        return [statement for row in kept for statement in row[2]]

    async def grant_reader(
        self, conn: Connection, role: str, views: Sequence[str]
    ) -> ReaderGrant | None:
        db: asyncpg.Connection = conn.raw
        # Racing processes take turns (concurrent GRANTs on one object can fail with "tuple
        # concurrently updated"); roles are the cluster's, grants this database's.
        await db.execute("SELECT pg_advisory_xact_lock($1)", lock_key("pvetrail.reader", role))
        quoted = f'"{role}"'
        created = False
        if await db.fetchval("SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role):
            if not await db.fetchval(_MAY_CREATE_ROLES):
                return ReaderGrant(
                    role=role,
                    created=False,
                    granted=False,
                    problem="the database user may not create roles (neither superuser nor "
                    "CREATEROLE)",
                )
            try:
                async with db.transaction():  # a savepoint: another database's may win
                    await db.execute(f"CREATE ROLE {quoted} NOLOGIN")
                created = True
            except (asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError):
                pass  # made meanwhile by a migrate of another database of the cluster
        schema = await db.fetchval("SELECT quote_ident(current_schema())")
        try:
            async with db.transaction():
                await db.execute(f"GRANT USAGE ON SCHEMA {schema} TO {quoted}")
                await db.execute(f"GRANT SELECT ON {', '.join(views)} TO {quoted}")
        except asyncpg.InsufficientPrivilegeError as exc:
            return ReaderGrant(role=role, created=created, granted=False, problem=str(exc))
        return ReaderGrant(role=role, created=created, granted=True)

    async def lock_checkpoints(self, conn: Connection) -> dict[str, int]:
        # FOR UPDATE orders the runner and a rebuild's swap: the later one sees the new value.
        rows = await conn.fetch(
            "SELECT name, position FROM projection_checkpoints ORDER BY name FOR UPDATE"
        )
        return {name: int(position) for name, position in rows}
