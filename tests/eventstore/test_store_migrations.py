"""Migrations: twice, concurrently, refused after an edit; ``pvetrail migrate --check``."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from store_helpers import REPO, cli_env, raw_execute, raw_fetch, run_cli

from eventstore import EventStore, MigrationError, open_store
from eventstore.migrations import load_migrations


def _names(dialect: str) -> list[str]:
    return [m.name for m in load_migrations(dialect)]


async def test_migrate_twice_applies_each_file_once(database_url: str) -> None:
    store = await open_store(database_url)
    try:
        before = await store.pending_migrations()
        assert before.applied == []
        assert before.pending == _names(store.dialect)
        assert "0001_events.sql" in before.pending

        first = await store.migrate()
        assert first.applied == _names(store.dialect)
        second = await store.migrate()
        assert second.applied == []
        after = await store.pending_migrations()
        assert (after.applied, after.pending) == (_names(store.dialect), [])
        rows = await raw_fetch(store, "SELECT name FROM schema_migrations ORDER BY name")
        assert [r[0] for r in rows] == _names(store.dialect)
    finally:
        await store.close()


async def test_racing_migrations_apply_each_file_once(database_url: str) -> None:
    stores = [await open_store(database_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(s.migrate() for s in stores))
        applied = [name for r in results for name in r.applied]
        assert sorted(applied) == _names(stores[0].dialect)  # each exactly once, no error
        assert await stores[1].head() == 0
        assert (await stores[2].pending_migrations()).pending == []
    finally:
        for store in stores:
            await store.close()


async def test_an_edited_applied_migration_is_refused_naming_the_file(store: EventStore) -> None:
    await raw_execute(
        store,
        "UPDATE schema_migrations SET checksum = ? WHERE name = ?",
        "0" * 64,
        "0001_events.sql",
    )
    with pytest.raises(MigrationError, match=r"0001_events\.sql was edited"):
        await store.migrate()
    with pytest.raises(MigrationError, match=r"0001_events\.sql was edited"):
        await store.pending_migrations()


async def test_a_failing_migration_file_applies_nothing_of_itself(
    database_url: str, tmp_path: Path
) -> None:
    """A bad file under a copy of the migrations package: exit 2, its own tables not created."""
    dialect = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    package = _copy_migrations(tmp_path)
    (package / dialect / "0099_broken.sql").write_text(
        "CREATE TABLE half_done (x INTEGER);\nTHIS IS NOT SQL;\n"
    )
    env = cli_env(database_url, pythonpath=str(tmp_path))
    code, _, err = await run_cli("migrate", env=env, cwd=tmp_path)
    assert code == 2
    assert "0099_broken.sql" in err
    assert "Traceback" not in err
    store = await open_store(database_url)
    try:
        status = await store.pending_migrations()
        assert "0001_events.sql" in status.applied  # the good files before it stay applied
        assert "0099_broken.sql" not in status.applied
        table = (
            "SELECT name FROM sqlite_master WHERE name = 'half_done'"
            if dialect == "sqlite"
            else "SELECT to_regclass('half_done') WHERE to_regclass('half_done') IS NOT NULL"
        )
        assert await raw_fetch(store, table) == []
    finally:
        await store.close()


def _copy_migrations(tmp_path: Path) -> Path:
    """A copy of the ``migrations`` package that a subprocess imports instead of ours."""
    package = tmp_path / "migrations"
    shutil.copytree(REPO / "migrations", package, ignore=shutil.ignore_patterns("__pycache__"))
    return package


def test_migrate_check_exit_codes(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``pvetrail migrate --check``: 1 while anything is pending, 0 once migrated."""
    from api.cli import main

    monkeypatch.delenv("PVETRAIL_CONFIG", raising=False)
    monkeypatch.setenv("PVETRAIL_DATABASE_URL", database_url)
    assert main(["migrate", "--check"]) == 1
    assert "0001_events.sql" in capsys.readouterr().out
    assert main(["migrate"]) == 0
    assert "applied" in capsys.readouterr().out
    assert main(["migrate", "--check"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["migrate"]) == 0
    assert "up to date" in capsys.readouterr().out


async def test_an_edited_migration_file_stops_pvetrail_migrate(
    store: EventStore, database_url: str, tmp_path: Path
) -> None:
    """The database seen by a pvetrail whose 0001 file was edited after it was applied."""
    dialect = store.dialect
    package = _copy_migrations(tmp_path)
    edited = package / dialect / "0001_events.sql"
    edited.write_text(edited.read_text() + "\n-- an innocent-looking comment\n")
    env = cli_env(database_url, pythonpath=str(tmp_path))
    results = await asyncio.gather(
        run_cli("migrate", "--check", env=env, cwd=tmp_path),
        run_cli("migrate", env=env, cwd=tmp_path),
    )
    for code, _, err in results:
        assert code == 2
        assert "0001_events.sql was edited" in err
        assert "Traceback" not in err
