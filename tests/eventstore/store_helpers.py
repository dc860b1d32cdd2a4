"""Helpers of the event-store contract suite: events to append and raw SQL on either backend.

Raw SQL is written once with ``?`` placeholders, run through the store's own
:class:`eventstore.Connection`, so a test reads the same on both backends.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

from eventstore import Actor, EventStore, NewEvent, RecordedEvent, format_time, parse_time
from eventstore.postgres import PostgresEventStore, lock_key
from eventstore.sqlite import SQLiteEventStore
from tests.outside import open_handles
from tests.waiting import until

REPO = Path(__file__).resolve().parents[2]
_actor_encoder = msgspec.json.Encoder(order="sorted")
T0 = datetime(2026, 11, 1, 12, 0, 0, 123456, tzinfo=UTC)


def new_event(
    stream_id: str,
    n: int = 0,
    *,
    expected: int | None = None,
    actor: Actor | None = None,
    observed_after: datetime | None = None,
    correlation_id: str | None = None,
    data: bytes | None = None,
    type: str = "config_changed",
) -> NewEvent:
    """An event on ``stream_id`` observed ``n`` seconds after :data:`T0`."""
    return NewEvent(
        stream_id=stream_id,
        type=type,
        data=data if data is not None else b'{"n":%d,"name":"vm-%d"}' % (n, n),
        observed_at=T0 + timedelta(seconds=n),
        observed_after=observed_after,
        actor=actor,
        correlation_id=correlation_id,
        expected_version=expected,
    )


def varied_events(count: int) -> list[NewEvent]:
    """Events using every envelope field: actors, unicode, empty and nested payloads."""
    events = []
    for i in range(count):
        events.append(
            NewEvent(
                stream_id=f"lab/qemu/{100 + i % 3}",
                type=("discovered", "config_changed", "status_changed")[i % 3],
                data=(
                    '{"name":"vm-ü-%d","tags":["a","β"],"cfg":{"memory":%d}}' % (i, 512 * i)  # noqa: UP031
                ).encode()
                if i % 4
                else b"{}",
                observed_at=T0 + timedelta(seconds=i, microseconds=i),
                observed_after=T0 + timedelta(seconds=i - 1) if i % 2 else None,
                schema_version=1 + i % 2,
                actor=Actor(user="root@pam", upid=f"UPID:pve1:{i:08X}") if i % 3 == 1 else None,
                correlation_id=f"poll-{i // 4}" if i % 5 else None,
            )
        )
    return events


async def writing(store: EventStore) -> bool:
    """Whether a write transaction (an append under way) is open in the database right now,
    seen from outside the store: on SQLite the write lock is taken (``BEGIN IMMEDIATE`` from
    another connection fails at once), on PostgreSQL a transaction holds the row-exclusive lock
    that inserting into ``streams`` or ``events`` takes, until it commits or rolls back."""
    if isinstance(store, SQLiteEventStore):
        probe = sqlite3.connect(store.path, timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            return True
        else:
            probe.execute("ROLLBACK")
            return False
        finally:
            probe.close()
    assert isinstance(store, PostgresEventStore)
    schema = store.schema or "public"
    [(held,)] = await raw_fetch(
        store,
        "SELECT count(*) FROM pg_locks WHERE granted AND mode = 'RowExclusiveLock' "
        "AND relation IN (to_regclass(?), to_regclass(?))",
        f"{schema}.events",
        f"{schema}.streams",
    )
    return bool(held)


async def when_writing(store: EventStore, task: asyncio.Task[Any]) -> bool:
    """Wait until the database shows a write transaction open (True: see :func:`writing`)
    or ``task`` is done without one seen (False)."""
    seen = False

    async def check() -> bool:
        nonlocal seen
        seen = await writing(store)
        return seen or task.done()

    await until(check, step=0.001, what="an append writing, or done")
    return seen


async def lock_waiters(store: EventStore, name: str) -> int:
    """How many takers wait for the named lock ``name`` right now, seen from outside the
    store: on PostgreSQL the ungranted advisory lock in ``pg_locks``; on SQLite the lock
    file's open handles in this process beyond the holder's (a waiter opens the file, then
    retries its ``flock``)."""
    if isinstance(store, SQLiteEventStore):
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        return max(open_handles(f"{store.path}.lock-{safe}") - 1, 0)
    assert isinstance(store, PostgresEventStore)
    key = lock_key("pvetrail.named", store.schema or "public", name)
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    [(count,)] = await raw_fetch(
        store,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND classid::bigint = ? AND objid::bigint = ? AND objsubid = 1",
        unsigned >> 32,
        unsigned & 0xFFFF_FFFF,
    )
    return int(count)


async def raw_execute(store: EventStore, sql: str, *params: Any) -> None:
    """Run one statement in the store's own write transaction, bypassing the store's API."""
    async with store.transaction() as conn:
        await conn.execute(sql, params)


async def raw_fetch(store: EventStore, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of one query on a read connection."""
    async with store.read_connection() as conn:
        return [tuple(r) for r in await conn.fetch(sql, params)]


async def drop_append_only_triggers(store: EventStore) -> None:
    """What an attacker with write access to the database would do first."""
    for table in ("events", "streams"):
        for trigger in (f"{table}_no_update", f"{table}_no_delete"):
            on = "" if store.dialect == "sqlite" else f" ON {table}"
            await raw_execute(store, f"DROP TRIGGER {trigger}{on}")


async def insert_event_row(store: EventStore, event: RecordedEvent, stream_key: int) -> None:
    """Write one event row as it is (a forger's hand, bypassing the store's append)."""
    async with store.transaction() as conn:
        times = [
            None if t is None else conn.time_in(t)
            for t in (event.observed_at, event.observed_after, event.recorded_at)
        ]
        actor = event.actor
        await conn.execute(
            f"INSERT INTO events ({_COLUMNS}, stream_key) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                event.position,
                event.stream_id,
                event.version,
                event.type,
                event.schema_version,
                *times,
                None if actor is None else _actor_encoder.encode(actor).decode(),
                event.correlation_id,
                event.data,
                event.prev_hash,
                event.hash,
                stream_key,
            ),
        )


_COLUMNS = (
    "position, stream_id, version, type, schema_version, observed_at, observed_after, "
    "recorded_at, actor, correlation_id, data, prev_hash, hash"
)


async def copy_rows(source: EventStore, target: EventStore) -> int:
    """Copy the log (its streams, then its events) row by row with plain SQL, as an operator
    would; only times change form.

    SQLite keeps times as ``format_time`` text and PostgreSQL as TIMESTAMPTZ; every other
    column (the actor's JSON text, the payload bytes, the hashes) is copied as it is.
    """
    streams = await raw_fetch(source, "SELECT stream_key, stream_id FROM streams")
    for stream in streams:
        await raw_execute(
            target, "INSERT INTO streams (stream_key, stream_id) VALUES (?, ?)", *stream
        )
    rows = await raw_fetch(source, f"SELECT {_COLUMNS}, stream_key FROM events ORDER BY position")
    for row in rows:
        values = list(row)
        for i in (5, 6, 7):
            if values[i] is None:
                continue
            if target.dialect == "sqlite" and isinstance(values[i], datetime):
                values[i] = format_time(values[i])
            elif target.dialect == "postgresql" and isinstance(values[i], str):
                values[i] = parse_time(values[i])
        values[10] = bytes(values[10])
        await raw_execute(
            target,
            f"INSERT INTO events ({_COLUMNS}, stream_key) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            *values,
        )
    return len(rows)


def cli_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment for ``python -m api`` against ``database_url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVETRAIL_")}
    env["PVETRAIL_DATABASE_URL"] = database_url
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [extra.pop("pythonpath", ""), str(REPO)]))
    env.update(extra)
    return env


async def run_cli(*args: str, env: dict[str, str], cwd: Path = REPO) -> tuple[int, str, str]:
    """Run ``python -m api ARGS`` as its own process: exit code, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "api",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


class PgRelay:
    """A TCP relay to PostgreSQL that can stop relaying without closing anything (``frozen``:
    what a cut network looks like to both ends) or relay slowly (``delay`` seconds per
    chunk: a slow network); ``open`` counts the client connections it relays now."""

    def __init__(self) -> None:
        self.frozen = False
        self.delay = 0.0
        self.open = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self, url: str) -> str:
        """Relay to the server of ``url``; the same URL through the relay."""
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 5432

        async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    if self.delay:
                        await asyncio.sleep(self.delay)
                    if not self.frozen:
                        writer.write(data)
                        await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        async def accept(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
            server_r, server_w = await asyncio.open_connection(host, port)
            self._writers += [client_w, server_w]
            self.open += 1
            try:
                await asyncio.gather(relay(client_r, server_w), relay(server_r, client_w))
            finally:
                self.open -= 1

        self._server = await asyncio.start_server(accept, "127.0.0.1", 0)
        relay_port = int(self._server.sockets[0].getsockname()[1])
        userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return urlunsplit(parts._replace(netloc=f"{userinfo}127.0.0.1:{relay_port}"))

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()
