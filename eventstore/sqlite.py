"""The SQLite backend: one file, WAL, one writer connection, a few reader connections.

Writes run in ``BEGIN IMMEDIATE`` with a busy timeout, so a writer in another process (say
``pvetrail sync`` while ``serve`` runs) waits its turn instead of failing. Inside a process an
asyncio lock orders the writer connection's users.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

import aiosqlite
import msgspec

from .envelope import GENESIS_HASH, Actor, NewEvent, RecordedEvent, format_time, parse_time, utcnow
from .errors import (
    AppendOnlyViolationError,
    ConcurrencyError,
    DatabaseUnavailableError,
    EventStoreError,
    MigrationError,
)
from .migrations import MigrationStatus, check_applied, load_migrations
from .sql import Connection, Row
from .store import EventStore, VersionCache, rows_to_events, seal_batch
from .urls import sqlite_path

T = TypeVar("T")

BUSY_TIMEOUT_MS = 30_000
"""How long a writer waits for another process's write lock before giving up."""

READERS = 3
"""Reader connections per process; WAL lets them read while the writer writes."""

CACHE_KIB = 65_536
"""Page cache of the writer and of the inline reader (SQLite's default is 2 MiB): a poll's
batch touches an index page per stream, which should stay in memory between appends, and a
stream's events lie on a page each. The other readers scan the log in order and keep the
default."""

READ_MMAP_BYTES = 0
"""How much of the database file the readers map into memory (``PRAGMA mmap_size``): none.
Mapped, the whole inventory at a time ran about a third faster at a million events, and the
API benchmark's closed loop 1.3-1.8x (docs/benchmarks.md); but mapped pages count in the
process's RSS once per mapping (three readers and the inline one: up to four times the file),
so ``serve`` showed 2.2-2.8 GiB at a million events, against 70-90 MiB unmapped. Operators
budget memory by RSS (container limits, monitoring): reads copy pages from the operating
system's file cache instead. A larger page cache per reader (8 or 32 MiB) bought nothing
measurable."""

WAL_PAGES = 10_000
"""Checkpoint the WAL into the database file after this many pages (SQLite's default: 1,000).
An index page that successive appends rewrite is copied once per checkpoint, not once per
append; the WAL file grows to about 40 MB between checkpoints."""

INLINE_ROWS = 256
"""Reads of at most this many rows run on the event loop's own thread (see ``_inline``)."""

WATCH_INTERVAL = 1.0
"""Seconds between a waiter's periodic looks (``PRAGMA data_version``, then the head): another
process's appends are seen within about this long; this process's own wake waiters at once."""

_COLUMNS = (
    "position, stream_id, version, type, schema_version, observed_at, observed_after, "
    "recorded_at, actor, correlation_id, data, prev_hash, hash"
)
_INSERT = f"INSERT INTO events ({_COLUMNS}, stream_key) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
_INSERT_STREAM = "INSERT INTO streams (stream_key, stream_id) VALUES (?, ?)"
_MAX_KEY = "SELECT COALESCE(MAX(stream_key), 0) FROM streams"
_HEAD = "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1"
_HEAD_POSITION = "SELECT COALESCE(MAX(position), 0) FROM events"
_SINCE = "SELECT stream_id, version, stream_key FROM events WHERE position > ? ORDER BY position"
_BATCH = f"SELECT {_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?"
_STREAM = (
    f"SELECT {_COLUMNS} FROM events "
    "WHERE stream_key = (SELECT stream_key FROM streams WHERE stream_id = ?)"
)
# The existing streams among the given ids, each with its key and newest version: one probe
# per stream (MAX on the unique index's second column), not a GROUP BY over its rows.
_VERSIONS = (
    "SELECT s.stream_id, s.stream_key, "
    "(SELECT MAX(e.version) FROM events e WHERE e.stream_key = s.stream_key) "
    "FROM streams s WHERE s.stream_id IN (SELECT value FROM json_each(?))"
)

_actor_decoder = msgspec.json.Decoder(Actor)
_actor_encoder = msgspec.json.Encoder(order="sorted")
_ids_encoder = msgspec.json.Encoder()


def _rows_to_events(rows: Iterable[Any]) -> list[RecordedEvent]:
    """The events of a batch of rows (times as ``format_time`` text, actors as JSON)."""
    return rows_to_events(rows, parse_time, _actor_decoder.decode)


def _event_to_row(e: RecordedEvent, stream_key: int) -> tuple[Any, ...]:
    return (
        e.position,
        e.stream_id,
        e.version,
        e.type,
        e.schema_version,
        format_time(e.observed_at),
        format_time(e.observed_after) if e.observed_after is not None else None,
        format_time(e.recorded_at),
        _actor_encoder.encode(e.actor).decode() if e.actor is not None else None,
        e.correlation_id,
        e.data,
        e.prev_hash,
        e.hash,
        stream_key,
    )


@contextlib.contextmanager
def _translated(what: str) -> Iterator[None]:
    """Turn sqlite3 errors into the store's own, chained with ``from``."""
    try:
        yield
    except sqlite3.Error as exc:
        text = str(exc)
        if "append-only" in text:
            raise AppendOnlyViolationError(text) from exc
        if isinstance(exc, sqlite3.IntegrityError) and (
            "events_stream_version" in text or "events.stream_key, events.version" in text
        ):
            raise ConcurrencyError(f"{what}: a concurrent writer took a stream version") from exc
        if "no such table" in text:
            raise EventStoreError(
                f"{what}: the database is not migrated ({text}); run `pvetrail migrate`"
            ) from exc
        raise EventStoreError(f"{what}: {text}") from exc


async def _take_file_lock(fd: int, *, wait: bool) -> bool:
    """Take an exclusive ``flock`` on ``fd``; with ``wait``, retry until it is free.

    Never blocks in a thread: a blocking ``flock`` in a worker thread cannot be cancelled, so
    a cancelled waiter's thread would take the lock later and hold it forever. A non-blocking
    attempt retried on the event loop (every 10 ms rising to 200 ms) is cancellable.
    """
    delay = 0.01
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if not wait:
                return False
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.2)


async def _pragma(conn: aiosqlite.Connection, pragma: str) -> None:
    """Run a PRAGMA and finish its statement, so it holds no lock afterwards."""
    async with conn.execute(f"PRAGMA {pragma}") as cur:
        await cur.fetchall()


async def _on_thread(conn: aiosqlite.Connection, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(raw_sqlite3_connection, *args)`` on the connection's own worker thread.

    One hop to the thread for a whole append or read, instead of one per statement and per
    fetch: on this path the hops cost more than SQLite's own work. aiosqlite's ``_execute``
    queues the call behind the connection's other work, so nothing runs concurrently on it.
    """

    def call() -> T:
        return fn(conn._conn, *args)

    result: T = await conn._execute(call)  # type: ignore[no-untyped-call]
    return result


def _connect_inline(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=0, check_same_thread=False)
    conn.execute("PRAGMA query_only=1")
    conn.execute(f"PRAGMA mmap_size={READ_MMAP_BYTES}")
    # One stream's events lie on as many pages as it has events: keep them in memory.
    conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    return conn


def _fetch(raw: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Any]:
    return raw.execute(sql, params).fetchall()


def _fetch_events(raw: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[RecordedEvent]:
    return _rows_to_events(raw.execute(sql, params))


def _streams(raw: sqlite3.Connection, stream_ids: Iterable[str]) -> dict[str, tuple[int, int]]:
    """The existing streams among ``stream_ids``: their (stream_key, version)."""
    rows = raw.execute(_VERSIONS, (_ids_encoder.encode(list(stream_ids)).decode(),))
    return {stream_id: (key, version) for stream_id, key, version in rows if version is not None}


def _versions(raw: sqlite3.Connection, stream_ids: set[str]) -> dict[str, int]:
    return {stream_id: version for stream_id, (_, version) in _streams(raw, stream_ids).items()}


def _append_rows(
    raw: sqlite3.Connection, events: Sequence[NewEvent], cache: VersionCache
) -> list[RecordedEvent]:
    """The whole append in one transaction, on the writer's thread.

    ``BEGIN IMMEDIATE`` takes SQLite's write lock first (waiting up to the busy timeout for
    another process), so the head read here stays the head until COMMIT.
    """
    raw.execute("BEGIN IMMEDIATE")
    try:
        row = raw.execute(_HEAD).fetchone()
        head_position, head_hash = (row[0], row[1]) if row else (0, GENESIS_HASH)
        after = cache.catch_up_from(head_position)
        if after is not None:
            cache.caught_up(raw.execute(_SINCE, (after,)).fetchall(), head_position)
        versions, missing = cache.split({e.stream_id for e in events})
        if missing:
            versions.update(cache.learn(missing, _streams(raw, missing)))
        sealed = seal_batch(
            events,
            head_position=head_position,
            head_hash=head_hash,
            current_versions=versions,
            recorded_at=utcnow(),
        )
        new = cache.new_streams(e.stream_id for e in sealed)
        if new:
            after_key = raw.execute(_MAX_KEY).fetchone()[0]
            raw.executemany(_INSERT_STREAM, cache.add_streams(new, after_key))
        keys = cache.keys
        raw.executemany(_INSERT, [_event_to_row(e, keys[e.stream_id]) for e in sealed])
        raw.execute("COMMIT")
    except BaseException:
        cache.reset()
        with contextlib.suppress(sqlite3.Error):
            raw.execute("ROLLBACK")
        raise
    cache.appended(sealed)
    return sealed


class SQLiteConnection(Connection):
    """An aiosqlite connection (the writer in a transaction, or a reader); times are
    ``format_time`` TEXT, so they compare as strings."""

    dialect = "sqlite"
    __slots__ = ("_db",)

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    @property
    def raw(self) -> aiosqlite.Connection:
        return self._db

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        async with self._db.execute(sql, tuple(args)) as cur:
            return list(await cur.fetchall())

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        async with self._db.execute(sql, tuple(args)):
            pass

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._db.executemany(sql, rows)

    async def table_exists(self, name: str) -> bool:
        row = await self.fetchone(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        )
        return row is not None


class _SmallReads(SQLiteConnection):
    """The connection of :meth:`SQLiteEventStore.short_reads`: each read is the store's
    :meth:`~SQLiteEventStore.read_small`; it writes nothing."""

    __slots__ = ("_store",)

    def __init__(self, store: SQLiteEventStore) -> None:
        self._store = store

    @property
    def raw(self) -> aiosqlite.Connection:
        raise EventStoreError("short reads have no connection of their own")

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return await self._store.read_small(sql, tuple(args))

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        raise EventStoreError("short reads cannot execute statements")

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        raise EventStoreError("short reads cannot execute statements")


def split_statements(script: str) -> list[str]:
    """Split a SQL script into statements, keeping trigger bodies whole."""
    statements: list[str] = []
    current: list[str] = []
    for line in script.splitlines(keepends=True):
        current.append(line)
        text = "".join(current)
        if sqlite3.complete_statement(text):
            if text.strip():
                statements.append(text.strip())
            current = []
    rest = "".join(current).strip()
    if rest and not all(ln.strip().startswith("--") or not ln.strip() for ln in rest.splitlines()):
        statements.append(rest)
    return statements


class SQLiteEventStore(EventStore):
    """The event log in one SQLite file."""

    dialect = "sqlite"

    def __init__(self, url: str, path: str) -> None:
        self.url = url
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._all_readers: list[aiosqlite.Connection] = []
        self._watcher: aiosqlite.Connection | None = None
        # A plain connection used on the event loop's thread for small reads (the head, one
        # stream): a hop to a worker thread and back costs more than such a read itself.
        # It never waits (busy timeout 0): a busy database sends the read to a worker thread.
        self._inline: sqlite3.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._appended = asyncio.Event()
        self._data_version: int | None = None
        self._named_locks: dict[str, asyncio.Lock] = {}
        self._versions = VersionCache()

    @classmethod
    async def open(cls, url: str) -> SQLiteEventStore:
        """Open (creating the file if needed) and configure the connections."""
        path = sqlite_path(url)
        folder = os.path.dirname(os.path.abspath(path))  # noqa: ASYNC240 (no I/O)
        if not await asyncio.to_thread(os.path.isdir, folder):
            raise DatabaseUnavailableError(
                f"cannot open database {url!r}: folder {folder!r} does not exist"
            )
        store = cls(url, path)
        try:
            store._writer = await store._connect(cache_kib=CACHE_KIB)
            await _pragma(store._writer, "journal_mode=WAL")
            await _pragma(store._writer, f"wal_autocheckpoint={WAL_PAGES}")
            for _ in range(READERS):
                reader = await store._connect()
                await _pragma(reader, "query_only=1")
                await _pragma(reader, f"mmap_size={READ_MMAP_BYTES}")
                store._all_readers.append(reader)
                store._readers.put_nowait(reader)
            store._watcher = await store._connect()
            store._inline = await asyncio.to_thread(_connect_inline, path)
        except sqlite3.Error as exc:
            await store.close()
            raise DatabaseUnavailableError(f"cannot open database {url!r}: {exc}") from exc
        return store

    async def _connect(self, *, cache_kib: int | None = None) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        await _pragma(conn, f"busy_timeout={BUSY_TIMEOUT_MS}")
        # FULL: a committed poll survives power loss (the benchmark compares at this level).
        await _pragma(conn, "synchronous=FULL")
        if cache_kib is not None:
            await _pragma(conn, f"cache_size=-{cache_kib}")
        return conn

    def _read_inline(self, sql: str, params: Sequence[Any]) -> list[Any] | None:
        """A small read on the loop's thread; None when it would wait or return too much."""
        conn = self._inline
        if conn is None:
            return None
        with _translated("read"):
            try:
                rows = conn.execute(f"{sql} LIMIT {INLINE_ROWS + 1}", params).fetchall()
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                    return None
                raise
        return rows if len(rows) <= INLINE_ROWS else None

    async def read_small(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """All rows of a short, indexed read (a statement without its own LIMIT): on the
        event loop's thread when it returns few rows and the database is not busy, else on a
        reader's worker thread. For the read side's per-request lookups, where the hop to a
        thread and back costs more than the read and contends for the GIL under load."""
        rows = self._read_inline(sql, params)
        if rows is not None:
            return rows
        async with self._read_connection() as conn:
            return await _on_thread(conn, _fetch, sql, params)

    # -- migrations ----------------------------------------------------------------------
    async def migrate(self) -> MigrationStatus:
        """Apply pending migration files, each in its own ``BEGIN IMMEDIATE`` transaction."""
        migrations = load_migrations("sqlite")
        applied: list[str] = []
        while True:
            async with self._transaction() as conn:
                known = await self._known_migrations(conn, create=True)
                pending = check_applied(known, migrations)
                if not pending:
                    break
                migration = pending[0]
                try:
                    for statement in split_statements(migration.sql):
                        await conn.execute(statement)
                except sqlite3.Error as exc:
                    raise MigrationError(f"migration {migration.name} failed: {exc}") from exc
                await conn.execute(
                    "INSERT INTO schema_migrations (name, checksum, applied_at) VALUES (?,?,?)",
                    (migration.name, migration.checksum, format_time(utcnow())),
                )
                applied.append(migration.name)
        return MigrationStatus(applied=applied, pending=[])

    async def pending_migrations(self) -> MigrationStatus:
        """What ``migrate`` would apply, without applying it."""
        migrations = load_migrations("sqlite")
        async with self._read_connection() as conn:
            known = await self._known_migrations(conn, create=False)
        pending = check_applied(known, migrations)
        return MigrationStatus(applied=sorted(known), pending=[m.name for m in pending])

    @staticmethod
    async def _known_migrations(conn: aiosqlite.Connection, *, create: bool) -> dict[str, str]:
        if create:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "name TEXT PRIMARY KEY, checksum TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
        else:
            async with conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_migrations'"
            ) as cur:
                if await cur.fetchone() is None:
                    return {}
        async with conn.execute("SELECT name, checksum FROM schema_migrations") as cur:
            return {name: checksum for name, checksum in await cur.fetchall()}

    # -- writing -------------------------------------------------------------------------
    async def append(self, events: Sequence[NewEvent]) -> list[RecordedEvent]:
        if not events:
            return []
        if self._writer is None:
            raise EventStoreError("the event store is closed")
        async with self._write_lock:
            with _translated("append"):
                work = asyncio.ensure_future(
                    _on_thread(self._writer, _append_rows, events, self._versions)
                )
                try:
                    sealed = await asyncio.shield(work)
                except asyncio.CancelledError:
                    # The worker thread cannot be interrupted: the append goes on and may
                    # commit after its caller gave up. Waiters in this process then hear of
                    # it when it does, not at their next once-a-second data_version check.
                    work.add_done_callback(self._signal_if_appended)
                    raise
        self._signal_append()
        return sealed

    def _signal_if_appended(self, work: asyncio.Future[list[RecordedEvent]]) -> None:
        if not work.cancelled() and work.exception() is None:
            self._signal_append()

    # -- reading -------------------------------------------------------------------------
    async def head(self) -> int:
        rows = self._read_inline(_HEAD_POSITION, ())
        if rows is None:
            async with self._read_connection() as conn:
                rows = await _on_thread(conn, _fetch, _HEAD_POSITION, ())
        return int(rows[0][0]) if rows else 0

    async def read_batch(self, after: int, limit: int) -> list[RecordedEvent]:
        async with self._read_connection() as conn:
            return await _on_thread(conn, _fetch_events, _BATCH, (after, limit))

    async def read_stream(
        self,
        stream_id: str,
        *,
        until_position: int | None = None,
        until_time: datetime | None = None,
        until_version: int | None = None,
    ) -> list[RecordedEvent]:
        sql = _STREAM
        params: list[Any] = [stream_id]
        if until_position is not None:
            # Unary plus: filter on the position, never scan its index (the stream index
            # finds a stream's few rows; a position range can hold most of the log).
            sql += " AND +position <= ?"
            params.append(until_position)
        if until_time is not None:
            sql += " AND observed_at <= ?"
            params.append(format_time(until_time))
        if until_version is not None:
            sql += " AND version <= ?"
            params.append(until_version)
        sql += " ORDER BY version"
        rows = self._read_inline(sql, params)
        if rows is not None:
            return _rows_to_events(rows)
        async with self._read_connection() as conn:  # a long stream: on a worker thread
            return await _on_thread(conn, _fetch_events, sql, params)

    async def stream_versions(self, stream_ids: Sequence[str]) -> dict[str, int]:
        async with self._read_connection() as conn:
            return await _on_thread(conn, _versions, set(stream_ids))

    async def wait_for_events(self, after: int, timeout: float) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            signal = self._appended
            head = await self.head()
            remaining = deadline - loop.time()
            if head > after or remaining <= 0:
                return head
            # Another process's commit shows as a new PRAGMA data_version on this connection:
            # a cheap check about once a second instead of querying the log.
            tick_end = loop.time() + min(WATCH_INTERVAL, remaining)
            while loop.time() < tick_end:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(signal.wait(), tick_end - loop.time())
                if signal.is_set() or await self._data_version_changed():
                    break

    async def _data_version_changed(self) -> bool:
        assert self._watcher is not None
        async with self._watcher.execute("PRAGMA data_version") as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row else 0
        changed = self._data_version is not None and version != self._data_version
        self._data_version = version
        return changed

    # -- companions ----------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self._transaction() as conn:
            yield SQLiteConnection(conn)

    @contextlib.asynccontextmanager
    async def read_connection(self) -> AsyncIterator[Connection]:
        async with self._read_connection() as conn:
            yield SQLiteConnection(conn)

    def short_reads(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        # An indexed read of one resource takes tens of microseconds; each aiosqlite call is
        # a hop to the connection's thread and back, which under load (server and clients
        # sharing the cores, the GIL passed back and forth) cost p99s of hundreds of ms.
        # The inline connection reads on the loop's own thread instead (falling back to a
        # reader when the database is busy). Each read is its own snapshot, as each
        # autocommit statement on a reader already was.
        return contextlib.nullcontext(_SmallReads(self))

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        if self._writer is None:
            raise EventStoreError("the event store is closed")
        async with self._write_lock:
            conn = self._writer
            try:
                with _translated("begin"):
                    await conn.execute("BEGIN IMMEDIATE")
            except asyncio.CancelledError:
                # The BEGIN still runs on aiosqlite's thread; undo it (queued after it), or the
                # writer would stay inside a transaction and refuse the next BEGIN.
                with contextlib.suppress(sqlite3.Error):
                    await conn.execute("ROLLBACK")
                raise
            try:
                # Driver errors of the caller's statements are translated too (the boundary).
                with _translated("transaction"):
                    yield conn
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    await conn.execute("ROLLBACK")
                raise
            else:
                with _translated("commit"):
                    await conn.execute("COMMIT")
                self._signal_append()

    def _signal_append(self) -> None:
        signal, self._appended = self._appended, asyncio.Event()
        signal.set()

    @contextlib.asynccontextmanager
    async def _read_connection(self) -> AsyncIterator[aiosqlite.Connection]:
        if not self._all_readers:
            raise EventStoreError("the event store is closed")
        conn = await self._readers.get()
        try:
            with _translated("read"):
                yield conn
        finally:
            self._readers.put_nowait(conn)

    async def get_setting(self, name: str) -> str | None:
        async with (
            self._read_connection() as conn,
            conn.execute("SELECT value FROM settings WHERE name = ?", (name,)) as cur,
        ):
            row = await cur.fetchone()
        return str(row[0]) if row else None

    async def ensure_setting(self, name: str, make: Callable[[], str]) -> str:
        async with self._transaction() as conn:
            async with conn.execute("SELECT value FROM settings WHERE name = ?", (name,)) as cur:
                row = await cur.fetchone()
            if row is not None:
                return str(row[0])
            value = make()
            await conn.execute("INSERT INTO settings (name, value) VALUES (?, ?)", (name, value))
            return value

    @contextlib.asynccontextmanager
    async def named_lock(
        self, name: str, *, wait: bool = True, on_lost: Callable[[], None] | None = None
    ) -> AsyncIterator[bool]:
        # ``on_lost`` is never called: a file lock lasts as long as its process and handle.
        lock = self._named_locks.setdefault(name, asyncio.Lock())
        if not wait and lock.locked():
            yield False
            return
        async with lock:
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
            # Opened on the loop, not in a thread: no await may come between the open and the
            # try, or a cancellation there would leak the handle (a local file opens in µs).
            handle = open(f"{self.path}.lock-{safe}", "a+b")  # noqa: ASYNC230, SIM115
            try:
                if not await _take_file_lock(handle.fileno(), wait=wait):
                    yield False
                    return
                try:
                    yield True
                finally:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            finally:
                handle.close()

    async def close(self) -> None:
        if self._inline is not None:
            self._inline.close()
            self._inline = None
        conns = [self._writer, self._watcher, *self._all_readers]
        self._writer = None
        self._watcher = None
        self._all_readers = []
        for conn in conns:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
