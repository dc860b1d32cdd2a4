"""Shared fixtures: a real database per test, on SQLite and on PostgreSQL.

PostgreSQL comes from ``PVETRAIL_TEST_POSTGRES_URL`` (default: the local server, database
``test``). Each test gets its own schema, reached with the URL's ``?schema=`` parameter. Where
no PostgreSQL answers, its tests are skipped with the reason, except under ``CI=true``, where
that fails the run: CI must never pass by skipping.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from functools import cache
from pathlib import Path

import asyncpg
import pytest

from api.config import DEFAULT_READER_ROLE as DEFAULT
from eventstore import EventStore, open_store

POSTGRES_URL = os.environ.get(
    "PVETRAIL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@cache
def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used, or None when it answers."""

    async def probe() -> None:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=5)
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception as exc:
        return f"PostgreSQL at {POSTGRES_URL} did not answer ({exc.__class__.__name__}: {exc})"
    return None


def require_postgres() -> None:
    """Skip (or, under CI=true, fail) when PostgreSQL is not there."""
    problem = postgres_problem()
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{problem}; CI=true needs it (set PVETRAIL_TEST_POSTGRES_URL)")
    pytest.skip(f"{problem}; set PVETRAIL_TEST_POSTGRES_URL to run the PostgreSQL tests")


async def _run_admin(sql: str) -> None:
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def postgres_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A PostgreSQL URL whose ``?schema=`` is a fresh schema, dropped after the test.

    Roles are the server's, not a schema's: the reader role a migration makes for the SQL
    views (docs/sql.md) is named after the schema for the test (``PVETRAIL_DATABASE_READER_ROLE``,
    which every configuration the test loads reads) and dropped with it.
    """
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    role = f"reader_{schema}"
    monkeypatch.setenv("PVETRAIL_DATABASE_READER_ROLE", role)
    asyncio.run(_run_admin(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{separator}schema={schema}"
    finally:
        # the schema first: its views take their grants to the role with them
        asyncio.run(_run_admin(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        asyncio.run(_run_admin(f"DROP ROLE IF EXISTS {role}"))


async def _default_reader_role_exists() -> bool:
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        return bool(
            await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", DEFAULT
            )
        )
    finally:
        await conn.close()


@pytest.fixture(scope="session", autouse=True)
def no_role_left_on_the_server() -> Iterator[None]:
    """Roles outlive schemas: a test that migrated with the default reader role's name (a
    configuration loaded without the environment, say) would leave it on the shared server.
    Fail the run if one appeared, and take it away."""
    if postgres_problem() is not None:
        yield
        return
    before = asyncio.run(_default_reader_role_exists())
    yield
    if not before and asyncio.run(_default_reader_role_exists()):
        asyncio.run(_run_admin(f"DROP ROLE IF EXISTS {DEFAULT}"))
        pytest.fail(
            f"a test left the role {DEFAULT} on the server: load configurations with the "
            "environment (the postgres_url fixture names each test's reader role there)"
        )


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A URL of a new SQLite file in the test's own folder."""
    return f"sqlite:///{tmp_path / 'pvetrail.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """The same test on each backend."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[EventStore]:
    """A migrated, empty event store on each backend."""
    opened = await open_store(database_url)
    try:
        await opened.migrate()
        yield opened
    finally:
        await opened.close()
