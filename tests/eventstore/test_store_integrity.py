"""Tamper evidence: ``verify`` finds the first bad position; ``pvetrail verify`` exit codes;
a log copied between backends verifies the same, hash for hash."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from store_helpers import (
    cli_env,
    copy_rows,
    drop_append_only_triggers,
    new_event,
    raw_execute,
    run_cli,
    varied_events,
)

from eventstore import EventStore, open_store
from eventstore.store import recompute_hash


async def _log_of(store: EventStore, count: int = 6) -> None:
    await store.append(varied_events(count))
    assert (await store.verify()).ok


async def test_an_edited_payload_is_caught_at_its_position(store: EventStore) -> None:
    await _log_of(store)
    await drop_append_only_triggers(store)
    await raw_execute(store, "UPDATE events SET data = ? WHERE position = 3", b'{"n":999}')
    result = await store.verify()
    assert not result.ok
    assert result.first_bad_position == 3
    assert result.checked == 2
    assert result.head == 6
    assert "hash does not match" in (result.reason or "")


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("stream_id", "lab/qemu/999"),
        ("version", 7),
        ("type", "removed"),
        ("schema_version", 9),
        ("correlation_id", "forged"),
        ("actor", '{"token":null,"upid":null,"user":"mallory@pve"}'),
    ],
)
async def test_any_edited_field_is_caught(store: EventStore, column: str, value: object) -> None:
    await _log_of(store)
    await drop_append_only_triggers(store)
    await raw_execute(store, f"UPDATE events SET {column} = ? WHERE position = 5", value)
    result = await store.verify()
    assert (result.ok, result.first_bad_position) == (False, 5)


async def test_an_edited_time_is_caught(store: EventStore) -> None:
    await _log_of(store)
    await drop_append_only_triggers(store)
    shift = (
        "observed_at = '2020-01-01T00:00:00.000000Z'"
        if store.dialect == "sqlite"
        else "observed_at = observed_at - interval '1 microsecond'"
    )
    await raw_execute(store, f"UPDATE events SET {shift} WHERE position = 2")
    assert (await store.verify()).first_bad_position == 2


async def test_a_rewritten_row_with_a_recomputed_hash_breaks_the_next_link(
    store: EventStore,
) -> None:
    """Recomputing the edited row's own hash does not help: the next prev_hash disagrees."""
    await _log_of(store)
    [original] = await store.read_batch(2, 1)
    forged = original.__class__(
        **{
            **{f: getattr(original, f) for f in original.__struct_fields__},
            "data": b'{"forged":true}',
        }
    )
    forged_hash = recompute_hash(forged)
    await drop_append_only_triggers(store)
    await raw_execute(
        store,
        "UPDATE events SET data = ?, hash = ? WHERE position = 3",
        forged.data,
        forged_hash,
    )
    result = await store.verify()
    assert (result.first_bad_position, result.checked) == (4, 3)
    assert "prev_hash" in (result.reason or "")


async def test_a_deleted_row_is_caught(store: EventStore) -> None:
    await _log_of(store)
    await drop_append_only_triggers(store)
    await raw_execute(store, "DELETE FROM events WHERE position = 4")
    result = await store.verify()
    assert (result.ok, result.first_bad_position) == (False, 4)
    assert "missing" in (result.reason or "")


async def test_a_deleted_tail_is_not_tamper_but_the_first_row_is(store: EventStore) -> None:
    await _log_of(store)
    await drop_append_only_triggers(store)
    await raw_execute(store, "DELETE FROM events WHERE position = 1")
    assert (await store.verify()).first_bad_position == 1


async def test_a_changed_prev_hash_is_caught(store: EventStore) -> None:
    await _log_of(store)
    await drop_append_only_triggers(store)
    await raw_execute(store, "UPDATE events SET prev_hash = ? WHERE position = 6", "f" * 64)
    result = await store.verify()
    assert (result.first_bad_position, result.checked) == (6, 5)


async def test_pvetrail_verify_exit_codes(store: EventStore, database_url: str) -> None:
    env = cli_env(database_url)
    await store.append(varied_events(5))
    code, out, err = await run_cli("verify", env=env)
    assert (code, err) == (0, "")
    assert "5 events verified" in out

    await drop_append_only_triggers(store)
    await raw_execute(store, "UPDATE events SET type = 'removed' WHERE position = 2")
    code, out, err = await run_cli("verify", env=env)
    assert code == 1
    assert "position 2" in err
    assert "Traceback" not in err


async def test_pvetrail_verify_cannot_check_an_empty_database(database_url: str) -> None:
    code, _, err = await run_cli("verify", env=cli_env(database_url))
    assert code == 2
    assert "pvetrail migrate" in err
    assert "Traceback" not in err


@pytest.mark.postgres
async def test_pvetrail_verify_on_an_unreachable_server_exits_2_without_the_password() -> None:
    url = "postgresql://pvetrail:s3cret-pw@127.0.0.1:1/pvetrail"
    code, out, err = await run_cli("verify", env=cli_env(url))
    assert code == 2
    assert "postgresql://pvetrail:***@127.0.0.1:1/pvetrail" in err
    assert "s3cret-pw" not in out + err
    assert "Traceback" not in err


@pytest.mark.postgres
@pytest.mark.parametrize("direction", ["sqlite-to-postgresql", "postgresql-to-sqlite"])
async def test_a_log_copied_between_backends_verifies_the_same(
    sqlite_url: str, postgres_url: str, direction: str
) -> None:
    urls = [sqlite_url, postgres_url]
    if direction == "postgresql-to-sqlite":
        urls.reverse()
    source = await open_store(urls[0])
    target = await open_store(urls[1])
    try:
        await source.migrate()
        await target.migrate()
        await source.append(varied_events(20))
        await source.append([new_event("lab/node/pve1", 30, correlation_id="ü-β")])
        assert await copy_rows(source, target) == 21

        original = [e async for e in source.read_all()]
        copied = [e async for e in target.read_all()]
        assert copied == original
        assert [e.hash for e in copied] == [e.hash for e in original]
        assert await target.verify() == await source.verify()
        assert (await target.verify()).ok
        # The copy keeps growing the same chain.
        [more] = await target.append([new_event("lab/qemu/100", 40)])
        assert more.prev_hash == original[-1].hash
        assert (await target.verify()).ok
    finally:
        await source.close()
        await target.close()


def _hash_as_documented(row: dict[str, object]) -> str:
    """docs/event-format.md's recipe, stdlib only, written against the documented fields."""
    doc = {key: row[key] for key in row if key != "hash"}
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _documented_snippet() -> str:
    """The Python code block of docs/event-format.md that verifies an exported log."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "event-format.md").read_text()
    start = text.index("```python\n") + len("```python\n")
    return text[start : text.index("```", start)]


async def test_the_documented_verifier_accepts_an_exported_log_and_finds_tamper(
    store: EventStore, tmp_path: Path
) -> None:
    """Run docs/event-format.md's own snippet (stdlib only) on a real log, exported as JSONL."""
    await store.append(varied_events(15))
    await store.append([new_event("lab/qemu/100", 40, correlation_id="ü")])
    export = tmp_path / "events.jsonl"
    code, _, err = await run_cli("verify", env=cli_env(store.url))
    assert code == 0, err

    rows = [_export_row(e) async for e in store.read_all()]
    export.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))

    namespace: dict[str, object] = {}
    exec(compile(_documented_snippet(), "docs/event-format.md", "exec"), namespace)
    verify_export = namespace["verify_export"]
    assert callable(verify_export)
    assert verify_export(str(export)) == (True, 16, None)
    assert all(_hash_as_documented(r) == r["hash"] for r in rows)

    rows[6]["data"] = rows[6]["data"].replace("vm-", "VM-")  # type: ignore[union-attr]
    export.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    assert verify_export(str(export)) == (False, 6, 7)


def _export_row(event: object) -> dict[str, object]:
    """One event as the export format of docs/event-format.md lays it out."""
    from eventstore import RecordedEvent, format_time

    assert isinstance(event, RecordedEvent)
    actor = event.actor
    return {
        "position": event.position,
        "stream_id": event.stream_id,
        "version": event.version,
        "type": event.type,
        "schema_version": event.schema_version,
        "observed_at": format_time(event.observed_at),
        "observed_after": format_time(event.observed_after) if event.observed_after else None,
        "recorded_at": format_time(event.recorded_at),
        "actor": None
        if actor is None
        else {"token": actor.token, "upid": actor.upid, "user": actor.user},
        "correlation_id": event.correlation_id,
        "data": event.data.decode("utf-8"),
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def _documented_sqlite_export_query() -> str:
    text = (Path(__file__).resolve().parents[2] / "docs" / "event-format.md").read_text()
    start = text.index('sqlite3 pvetrail.db "') + len('sqlite3 pvetrail.db "')
    return text[start : text.index('" > events.jsonl', start)]


async def test_the_documented_sqlite_export_query_verifies(sqlite_url: str, tmp_path: Path) -> None:
    """docs/event-format.md's export query, run on a real file, feeds the documented verifier."""
    import sqlite3

    store = await open_store(sqlite_url)
    try:
        await store.migrate()
        await store.append(varied_events(9))
    finally:
        await store.close()
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as db:
        lines = [row[0] for row in db.execute(_documented_sqlite_export_query())]
    export = tmp_path / "events.jsonl"
    export.write_text("".join(line + "\n" for line in lines))
    namespace: dict[str, object] = {}
    exec(compile(_documented_snippet(), "docs/event-format.md", "exec"), namespace)
    verify_export = namespace["verify_export"]
    assert callable(verify_export)
    assert verify_export(str(export)) == (True, 9, None)


def test_pvetrail_verify_anchor_catches_a_truncated_log(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cut-off tail leaves a valid chain; the head hash kept from an earlier verify does not."""
    import asyncio

    from api.cli import main

    async def setup() -> None:
        store = await open_store(database_url)
        try:
            await store.migrate()
            await store.append(varied_events(5))
        finally:
            await store.close()

    async def truncate() -> None:
        store = await open_store(database_url)
        try:
            await drop_append_only_triggers(store)
            await raw_execute(store, "DELETE FROM events WHERE position > 3")
        finally:
            await store.close()

    monkeypatch.delenv("PVETRAIL_CONFIG", raising=False)
    monkeypatch.setenv("PVETRAIL_DATABASE_URL", database_url)
    asyncio.run(setup())
    assert main(["verify"]) == 0
    out = capsys.readouterr().out
    head_hash = out.rsplit("hash ", 1)[1].strip()
    assert "head at position 5" in out
    assert len(head_hash) == 64
    assert main(["verify", "--anchor", f"5:{head_hash}"]) == 0
    assert main(["verify", "--anchor", f"5:{'0' * 64}"]) == 1
    assert "no longer has the anchored hash" in capsys.readouterr().err

    asyncio.run(truncate())
    assert main(["verify"]) == 0  # a shorter chain is still a chain
    assert main(["verify", "--anchor", f"5:{head_hash}"]) == 1
    assert "position 5 is gone" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["verify", "--anchor", "5:short"])
    assert exited.value.code == 2
