"""The PostgreSQL reader role of the SQL views (docs/sql.md): `pvetrail migrate` makes it and
lets it read the views alone; a database user who may not make roles is told what to run, and
the docs' lines do it; a rebuild keeps the grants; the configured name is checked.

Roles are the PostgreSQL server's, not a schema's: each test's names are its own
(tests/conftest.py names the reader role after the test's schema) and dropped afterwards."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
import pytest

from api.cli import main
from api.config import ConfigError, load_config
from api.migration import migrate_database
from eventstore import open_store
from projections.runner import ProjectionRunner, rebuild
from projections.views import VIEWS
from tests.api.sql_examples import reader_role_lines
from tests.conftest import POSTGRES_URL
from tests.projections.projection_helpers import random_events


async def _admin(*statements: str, schema: str | None = None) -> None:
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        if schema is not None:
            await conn.execute(f"SET search_path = {schema}")
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def _schema(url: str) -> str:
    return url.rsplit("schema=", 1)[1]


@pytest.fixture
def role_name(postgres_url: str) -> str:
    """The test's own reader role name, which every configuration it loads reads from the
    environment (tests/conftest.py's ``postgres_url`` sets it, and drops the role)."""
    return os.environ["PVETRAIL_DATABASE_READER_ROLE"]


async def _drop_role(name: str) -> None:
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", name):
            await conn.execute(f"DROP OWNED BY {name}")  # its grants in this database
            await conn.execute(f"DROP ROLE {name}")
    finally:
        await conn.close()


def write_config(path: Path, url: str) -> str:
    path.write_text(f'database_url = "{url}"\n')
    return str(path)


async def fill(url: str) -> None:
    store = await open_store(url)
    try:
        await store.migrate()
        await store.append(random_events(random.Random(2), 120))
        await ProjectionRunner(store).catch_up()
    finally:
        await store.close()


async def as_role(url: str, role: str) -> dict[str, str]:
    """What ``role`` may do in the test's schema: for each view, ``read`` or the error; for
    the tables and the log, and for writes, the error (``read``/``wrote`` if it could)."""
    conn = await asyncpg.connect(POSTGRES_URL)
    outcome: dict[str, str] = {}
    try:
        await conn.execute(f"SET search_path = {_schema(url)}")
        await conn.execute(f"SET ROLE {role}")
        attempts = {f"SELECT count(*) FROM {view}": view for view in VIEWS}
        attempts.update(
            {
                "SELECT count(*) FROM proj_resources": "proj_resources",
                "SELECT count(*) FROM proj_versions": "proj_versions",
                "SELECT count(*) FROM events": "events",
                "UPDATE pvetrail_edges SET rel = 'x'": "update a view",
                # pvetrail_edges reads one table: PostgreSQL would write through it, if allowed
                "DELETE FROM pvetrail_edges": "delete through a view",
                "INSERT INTO settings (name, value) VALUES ('x', 'y')": "insert",
                "INSERT INTO events SELECT * FROM events LIMIT 1": "append",
                "CREATE TABLE mine (x int)": "create",
            }
        )
        for sql, what in attempts.items():
            try:
                async with conn.transaction():
                    await conn.execute(sql)
                outcome[what] = "read" if sql.startswith("SELECT") else "wrote"
            except asyncpg.InsufficientPrivilegeError:
                outcome[what] = "refused"
    finally:
        await conn.close()
    return outcome


ALLOWED = {
    **{view: "read" for view in VIEWS},
    **dict.fromkeys(
        [
            "proj_resources",
            "proj_versions",
            "events",
            "update a view",
            "delete through a view",
            "insert",
            "append",
            "create",
        ],
        "refused",
    ),
}


@pytest.mark.postgres
async def test_migrate_makes_a_role_that_reads_the_views_alone_and_a_rebuild_keeps_it(
    postgres_url: str, role_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await fill(postgres_url)
    config = write_config(tmp_path / "pvetrail.toml", postgres_url)
    assert await asyncio.to_thread(main, ["migrate", "--config", config]) == 0
    assert f"reader role {role_name} created; it may read the SQL views" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["migrate", "--config", config]) == 0  # idempotent
    assert f"reader role {role_name} exists; it may read" in capsys.readouterr().out
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        login = await conn.fetchval(
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", role_name
        )
    finally:
        await conn.close()
    assert login is False
    assert await as_role(postgres_url, role_name) == ALLOWED
    store = await open_store(postgres_url)
    try:
        await rebuild(store)
    finally:
        await store.close()
    assert await as_role(postgres_url, role_name) == ALLOWED


@pytest.fixture
def weak_user(postgres_url: str) -> Iterator[str]:
    """A login that may use the test's schema but not make roles; dropped afterwards."""
    name = f"weak_{uuid.uuid4().hex[:12]}"
    schema = _schema(postgres_url)
    asyncio.run(
        _admin(
            f"CREATE ROLE {name} LOGIN NOSUPERUSER NOCREATEROLE",
            f"GRANT ALL ON SCHEMA {schema} TO {name}",
            f"GRANT CREATE ON DATABASE {urlsplit(POSTGRES_URL).path.lstrip('/')} TO {name}",
        )
    )
    yield name
    asyncio.run(_drop_role(name))


@pytest.mark.postgres
async def test_a_user_who_may_not_make_roles_is_told_what_to_run_and_the_docs_lines_work(
    postgres_url: str, role_name: str, weak_user: str, caplog: pytest.LogCaptureFixture
) -> None:
    parts = urlsplit(postgres_url)
    weak_url = urlunsplit(parts._replace(netloc=f"{weak_user}@{parts.netloc.rsplit('@', 1)[-1]}"))
    store = await open_store(weak_url)
    config = load_config(None)
    try:
        with caplog.at_level(logging.WARNING, logger="pvetrail.migrate"):
            status, grant = await migrate_database(store, config)
        assert status.applied
        assert grant is not None
        assert (grant.created, grant.granted) == (False, False)
        [record] = [r for r in caplog.records if r.name == "pvetrail.migrate"]
        assert record.levelno == logging.WARNING
        assert role_name in record.getMessage()
        assert "may not create roles" in record.getMessage()
        assert "docs/sql.md" in record.getMessage()
        await store.append(random_events(random.Random(4), 60))
        await ProjectionRunner(store).catch_up()
    finally:
        await store.close()
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        assert not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role_name)
    finally:
        await conn.close()
    # an administrator runs the docs' lines (the role's name and the schema put in)
    lines = reader_role_lines().replace("pvetrail_reader", role_name)
    lines = lines.replace("SCHEMA public", f"SCHEMA {_schema(postgres_url)}")
    await _admin(lines, schema=_schema(postgres_url))
    assert await as_role(postgres_url, role_name) == ALLOWED


async def test_sqlite_has_no_role_to_make(sqlite_url: str, tmp_path: Path) -> None:
    store = await open_store(sqlite_url)
    try:
        _, grant = await migrate_database(store, load_config(None, {}))
    finally:
        await store.close()
    assert grant is None


@pytest.mark.parametrize(
    "name",
    ["Reader", "1reader", "read-only", "read only", 'a"b', "pg_reader", "r" * 64, ""],
)
def test_the_role_name_must_be_a_plain_identifier(name: str, tmp_path: Path) -> None:
    path = tmp_path / "pvetrail.toml"
    path.write_text(f"database_reader_role = {msgspec.json.encode(name).decode()}\n")
    with pytest.raises(ConfigError, match="database_reader_role") as raised:
        load_config(str(path), {})
    assert "lower-case letters, digits and '_'" in str(raised.value)


def test_the_role_name_defaults_to_pvetrail_reader(tmp_path: Path) -> None:
    assert load_config(None, {}).database_reader_role == "pvetrail_reader"
    path = tmp_path / "pvetrail.toml"
    path.write_text('database_reader_role = "_analysts_2"\n')
    assert load_config(str(path), {}).database_reader_role == "_analysts_2"
    environ = {"PVETRAIL_DATABASE_READER_ROLE": "ops_ro"}
    assert load_config(str(path), environ).database_reader_role == "ops_ro"
    with pytest.raises(ConfigError, match="database_reader_role 'Ops'"):
        load_config(str(path), {"PVETRAIL_DATABASE_READER_ROLE": "Ops"})


async def test_migrate_makes_the_cursor_key_so_that_reading_writes_nothing(
    database_url: str,
) -> None:
    """The first paged list asked of a database needs the cursors' signing key: migrating
    makes it, so a reader (the API's GETs, pvetrail mcp, the reader role) never writes it."""
    from projections import queries
    from projections.cursors import KEY_SETTING

    store = await open_store(database_url)
    try:
        await migrate_database(store, load_config(None))
        key = await store.get_setting(KEY_SETTING)
        assert key
    finally:
        await store.close()
    # Another process (a fresh store: no key in memory) pages a list: the key is the same row.
    store = await open_store(database_url)
    try:
        page = await queries.inventory(store, limit=1)
        assert page.items == []
        assert await store.get_setting(KEY_SETTING) == key
    finally:
        await store.close()
