"""The event store's one interface; ``sqlite.py`` and ``postgres.py`` implement it.

The log is append-only, gap-free in ``position`` (strictly increasing in commit order, so a
reader following ``position > last`` never misses a later commit), versioned per stream with
optimistic concurrency, and hash-chained.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from hashlib import sha256
from typing import Any

import msgspec

from .canonical import envelope_bytes
from .envelope import Actor, NewEvent, RecordedEvent
from .errors import ConcurrencyError, InvalidEventError, LockLostError
from .migrations import MigrationStatus
from .sql import Connection, Dialect

# The first event whose row no longer leads to its own stream id through ``streams`` (the
# mapping every read by resource takes), and the first event of a stream id that two
# ``streams`` rows claim (possible only with the unique index dropped).
_FIRST_MISMAPPED = (
    "SELECT MIN(e.position) FROM events e LEFT JOIN streams s ON s.stream_key = e.stream_key "
    "WHERE s.stream_id IS NULL OR s.stream_id <> e.stream_id"
)
_FIRST_SHARED_STREAM_ID = (
    "SELECT MIN(e.position) FROM events e JOIN streams s ON s.stream_id = e.stream_id "
    "WHERE s.stream_key <> e.stream_key"
)


class VerifyResult(msgspec.Struct, frozen=True):
    """What :meth:`EventStore.verify` found."""

    ok: bool
    checked: int
    head: int
    first_bad_position: int | None = None
    reason: str | None = None
    head_hash: str | None = None
    """The hash of the last event verified (keep it elsewhere: a later verify can then prove
    that the log still holds it, which catches a truncated tail too)."""


ProgressCallback = Callable[[int, int], None]
"""Called with (done, total) during long work."""


class EventStore(abc.ABC):
    """An append-only, tamper-evident event log on one database."""

    dialect: Dialect
    url: str

    # -- schema --------------------------------------------------------------------------
    @abc.abstractmethod
    async def migrate(self) -> MigrationStatus:
        """Apply pending migrations, each file atomically; safe when processes race."""

    @abc.abstractmethod
    async def pending_migrations(self) -> MigrationStatus:
        """Applied and pending migrations, applying nothing (refuses on an edited file)."""

    # -- writing -------------------------------------------------------------------------
    @abc.abstractmethod
    async def append(self, events: Sequence[NewEvent]) -> list[RecordedEvent]:
        """Append a batch atomically: all of it or (on any error) none of it.

        Raises :class:`ConcurrencyError` when an expected version does not hold.
        """

    # -- reading -------------------------------------------------------------------------
    @abc.abstractmethod
    async def head(self) -> int:
        """The position of the last event (0 for an empty log)."""

    @abc.abstractmethod
    async def read_batch(self, after: int, limit: int) -> list[RecordedEvent]:
        """Up to ``limit`` events with ``position > after``, in position order."""

    async def read_all(
        self, after: int = 0, *, batch_size: int = 5000, until: int | None = None
    ) -> AsyncIterator[RecordedEvent]:
        """Every event after ``after`` (up to ``until``), in batches: constant memory.

        The next batch is fetched while the caller works through the current one (at most
        two batches in memory), so the database's work overlaps the caller's decoding. It
        ends at the first short batch: events committed meanwhile may or may not be included
        (a follower calls it again after :meth:`wait_for_events`).
        """
        pending: asyncio.Future[list[RecordedEvent]] | None = asyncio.ensure_future(
            self.read_batch(after, batch_size)
        )
        try:
            while pending is not None:
                batch = await pending
                pending = None
                if not batch:
                    return
                last = batch[-1].position
                if len(batch) == batch_size and (until is None or last < until):
                    pending = asyncio.ensure_future(self.read_batch(last, batch_size))
                if until is not None and last > until:
                    batch = [e for e in batch if e.position <= until]
                for event in batch:
                    yield event
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending

    @abc.abstractmethod
    async def read_stream(
        self,
        stream_id: str,
        *,
        until_position: int | None = None,
        until_time: datetime | None = None,
        until_version: int | None = None,
    ) -> list[RecordedEvent]:
        """One stream's events in version order, up to a position, an ``observed_at`` and/or a
        version (each bound inclusive; the stream's index serves a version bound directly)."""

    @abc.abstractmethod
    async def stream_versions(self, stream_ids: Sequence[str]) -> dict[str, int]:
        """The current version of each named stream that exists."""

    @abc.abstractmethod
    async def wait_for_events(self, after: int, timeout: float) -> int:
        """Wait until the head passes ``after`` (appends of any process) or the timeout ends.

        Returns the head. No busy polling: an in-process signal plus LISTEN/NOTIFY (PostgreSQL)
        or a cheap ``PRAGMA data_version`` check about once a second (SQLite).
        """

    # -- companions ----------------------------------------------------------------------
    @abc.abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Connection]:
        """A write transaction on the store's database, yielding a :class:`Connection`.

        For the store's companions (projection tables, the observations table, settings) that
        must commit together. SQLite: ``BEGIN IMMEDIATE`` on the one writer connection, so it
        takes turns with appends; PostgreSQL: a pooled connection in a transaction. A driver
        error raised inside is translated to the store's own exceptions (chained), and the
        transaction is rolled back.
        """

    @abc.abstractmethod
    def read_connection(self) -> AbstractAsyncContextManager[Connection]:
        """A connection for reads, never blocking the writer."""

    def short_reads(self) -> AbstractAsyncContextManager[Connection]:
        """A connection for a request made of a few short, indexed reads (one resource at a
        point): by default one of the readers; a backend may answer such reads more cheaply.
        Only :meth:`Connection.fetch` and its kin run on it."""
        return self.read_connection()

    @abc.abstractmethod
    async def get_setting(self, name: str) -> str | None:
        """A value of the ``settings`` table (kept beside the log, never in it)."""

    @abc.abstractmethod
    async def ensure_setting(self, name: str, make: Callable[[], str]) -> str:
        """The setting's value; when absent, ``make()``'s value, stored once for all processes."""

    @abc.abstractmethod
    def named_lock(
        self, name: str, *, wait: bool = True, on_lost: Callable[[], None] | None = None
    ) -> AbstractAsyncContextManager[bool]:
        """Hold an exclusive lock named ``name`` across every process using this database.

        Yields True when held. With ``wait=False`` it yields False at once when another holder
        has it (a stand-by collector or projection runner then does nothing). PostgreSQL: a
        session advisory lock on a connection kept for the duration; SQLite: an in-process lock
        plus an OS file lock beside the database file.

        ``on_lost`` is called (once, on the event loop) when a held lock is lost while the
        holder still runs: on PostgreSQL when the lock's session ends (the server terminated
        it, or it stopped answering a periodic probe), after which another process may take
        the lock at any moment, so the holder must stop what the lock guards. An OS file lock
        cannot be lost while its process lives: SQLite never calls it.
        """

    @contextlib.asynccontextmanager
    async def guarded_lock(self, name: str, *, wait: bool = True) -> AsyncIterator[bool]:
        """:meth:`named_lock`, with the body cancelled the moment the lock is lost.

        Like ``asyncio.timeout()``: the task inside is cancelled when the lock's session
        ends, and the cancellation leaves the block as :class:`LockLostError`, so work that
        only one process may do (a cluster's polling, the projection runner) stops before
        another process that took the lock starts doing it too.
        """
        task = asyncio.current_task()
        assert task is not None
        lost = False

        def on_lost() -> None:
            nonlocal lost
            if not lost:
                lost = True
                task.cancel()

        try:
            async with self.named_lock(name, wait=wait, on_lost=on_lost) as held:
                yield held
        except asyncio.CancelledError:
            if lost and task.uncancel() == 0:
                raise LockLostError(
                    f"lock {name!r} was lost while held: its database session ended"
                ) from None
            raise
        if lost and task.uncancel() == 0:
            # The body swallowed the cancellation: the lock is gone all the same.
            raise LockLostError(f"lock {name!r} was lost while held: its database session ended")

    @abc.abstractmethod
    async def close(self) -> None:
        """Close every connection."""

    # -- integrity -----------------------------------------------------------------------
    async def verify(self, progress: ProgressCallback | None = None) -> VerifyResult:
        """Walk the hash chain from position 1 and report the first event that breaks it.

        Besides each event's own fields (its hash) and its link (``prev_hash``), the walk
        checks what the hash cannot cover but every read by resource goes through: that each
        event's row points (``stream_key``) at a ``streams`` row holding its sealed
        ``stream_id``, and that each stream's versions run 1, 2, 3, ... in position order.
        Without those checks an edit of ``events.stream_key`` or ``streams.stream_id`` would
        move events between resources while the chain still held.
        """
        from .envelope import GENESIS_HASH

        total = await self.head()
        async with self.read_connection() as conn:
            mismatch = await conn.fetchval(_FIRST_MISMAPPED)
            shared = await conn.fetchval(_FIRST_SHARED_STREAM_ID)
        bad_mapping = min((int(p) for p in (mismatch, shared) if p is not None), default=None)
        versions: dict[str, int] = {}
        prev = GENESIS_HASH
        expected_position = 1
        checked = 0

        def failed(position: int, reason: str) -> VerifyResult:
            return VerifyResult(False, checked, total, position, reason)

        async for event in self.read_all(0):
            if event.position != expected_position:
                return failed(
                    expected_position,
                    f"position {expected_position} is missing (next is {event.position})",
                )
            if event.prev_hash != prev:
                return failed(event.position, "prev_hash does not match the chain")
            if recompute_hash(event) != event.hash:
                return failed(event.position, "hash does not match the event's fields")
            if event.position == bad_mapping:
                return failed(
                    event.position,
                    f"the streams table no longer maps this event to its stream "
                    f"{event.stream_id!r} (events.stream_key or streams.stream_id was edited)",
                )
            version = versions.get(event.stream_id, 0) + 1
            if event.version != version:
                return failed(
                    event.position,
                    f"stream {event.stream_id!r} has version {event.version} where "
                    f"{version} comes next",
                )
            versions[event.stream_id] = version
            prev = event.hash
            expected_position += 1
            checked += 1
            if progress is not None and checked % 10000 == 0:
                progress(checked, total)
        if progress is not None:
            progress(checked, total)
        return VerifyResult(True, checked, max(total, checked), head_hash=prev)

    async def __aenter__(self) -> EventStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def recompute_hash(event: RecordedEvent) -> str:
    """The hash an event's fields give under the canonical encoding."""
    return sha256(envelope_bytes(*msgspec.structs.astuple(event)[:12])).hexdigest()


class VersionCache:
    """The streams' versions and keys as of one head position, kept by a store between appends.

    With one writer (the usual case) an append then reads no versions at all: under its
    append lock it reads the head, and when the head is the one the cache was left at, nobody
    else appended and the cached versions are exact. When another process appended, the cache
    catches up from the events after its head (a short read), or starts over when that would
    be long. The database's unique (stream_key, version) key stays the backstop.

    ``keys`` holds each known stream's ``streams.stream_key``. Under the append lock a stream
    is in ``keys`` exactly when it has events: a stream's row and its first event are written
    in one transaction, and a failed append empties the cache.
    """

    CATCH_UP_LIMIT = 10_000
    """Read at most this many events to catch up; start over beyond it."""

    SIZE_LIMIT = 500_000
    """Streams remembered at most (a few tens of MB); the cache starts over beyond it."""

    def __init__(self) -> None:
        self.head = -1
        self.versions: dict[str, int] = {}
        self.keys: dict[str, int] = {}

    def catch_up_from(self, head: int) -> int | None:
        """Where to read (stream_id, version, stream_key) rows from to be current at ``head``,
        or None.

        None: the cache is current already, or it was just emptied (and is now at ``head``).
        """
        if self.head == head:
            return None
        if self.head < 0 or not 0 < head - self.head <= self.CATCH_UP_LIMIT:
            self.reset(head)
            return None
        return self.head

    def caught_up(self, rows: Sequence[tuple[str, int, int]], head: int) -> None:
        """Apply the (stream_id, version, stream_key) rows after the cache's head, in position
        order."""
        versions = self.versions
        keys = self.keys
        for stream_id, version, stream_key in rows:
            versions[stream_id] = version
            keys[stream_id] = stream_key
        self.head = head

    def split(self, stream_ids: set[str]) -> tuple[dict[str, int], list[str]]:
        """The known versions (0: no such stream) and the ids to look up in the database.

        A cache that would pass ``SIZE_LIMIT`` starts over here, before the batch relies on
        anything it remembers: every stream of the batch is then looked up afresh, so no
        stream of it can lose its key halfway (and be taken for a new one).
        """
        if len(self.versions) + len(stream_ids) > self.SIZE_LIMIT:
            self.versions = {}
            self.keys = {}
        known: dict[str, int] = {}
        missing: list[str] = []
        versions = self.versions
        for stream_id in stream_ids:
            version = versions.get(stream_id)
            if version is None:
                missing.append(stream_id)
            else:
                known[stream_id] = version
        return known, missing

    def learn(
        self, looked_up: Sequence[str], found: Mapping[str, tuple[int, int]]
    ) -> dict[str, int]:
        """Remember what was just read for ``looked_up``: ``found`` maps the streams that exist
        to (stream_key, version); the others are at version 0. Returns the versions."""
        learned: dict[str, int] = {}
        keys = self.keys
        for stream_id in looked_up:
            row = found.get(stream_id)
            if row is None:
                learned[stream_id] = 0
            else:
                keys[stream_id] = row[0]
                learned[stream_id] = row[1]
        self.versions.update(learned)
        return learned

    def new_streams(self, stream_ids: Iterable[str]) -> list[str]:
        """The streams of a batch that have no key yet (no events), in first-seen order."""
        keys = self.keys
        return [s for s in dict.fromkeys(stream_ids) if s not in keys]

    def add_streams(self, stream_ids: Sequence[str], after_key: int) -> list[tuple[int, str]]:
        """Give new streams the keys after ``after_key`` (the highest key in use, read under
        the append lock); returns the ``streams`` rows to insert, (stream_key, stream_id)."""
        rows = [(after_key + i, stream_id) for i, stream_id in enumerate(stream_ids, start=1)]
        self.remember_keys(rows)
        return rows

    def remember_keys(self, rows: Iterable[Sequence[Any]]) -> None:
        """Remember the keys of ``streams`` rows just written, (stream_key, stream_id)."""
        self.keys.update((stream_id, key) for key, stream_id in rows)

    def appended(self, sealed: Sequence[RecordedEvent]) -> None:
        """After a commit: the batch's streams moved on, and so did the head."""
        versions = self.versions
        for event in sealed:
            versions[event.stream_id] = event.version
        self.head = sealed[-1].position

    def reset(self, head: int = -1) -> None:
        """Forget everything (after a failed append, or when catching up would cost more)."""
        self.versions = {}
        self.keys = {}
        self.head = head


def rows_to_events(
    rows: Iterable[Sequence[Any]],
    to_time: Callable[[Any], datetime],
    decode_actor: Callable[[Any], Actor],
) -> list[RecordedEvent]:
    """Build the events of a batch of rows in ``RecordedEvent`` field order, times and actors
    in the backend's stored form: the hot path of every read.

    Positional construction, and each distinct stored time and actor is turned into its value
    once per batch (``to_time``, ``decode_actor``): one poll's events share ``observed_at``
    and one append's share ``recorded_at``, so a full read otherwise converts the same few
    values over and over. The shared values are immutable (aware datetimes, frozen
    ``Actor``s), so sharing them changes no result.
    """
    times: dict[Any, datetime] = {}
    actors: dict[Any, Actor] = {}
    events: list[RecordedEvent] = []
    add = events.append
    for (
        position,
        stream_id,
        version,
        type_,
        schema_version,
        observed_raw,
        after_raw,
        recorded_raw,
        actor_raw,
        correlation_id,
        data,
        prev_hash,
        digest,
    ) in rows:
        observed = times.get(observed_raw)
        if observed is None:
            observed = times[observed_raw] = to_time(observed_raw)
        recorded = times.get(recorded_raw)
        if recorded is None:
            recorded = times[recorded_raw] = to_time(recorded_raw)
        after = None
        if after_raw is not None:
            after = times.get(after_raw)
            if after is None:
                after = times[after_raw] = to_time(after_raw)
        actor = None
        if actor_raw is not None:
            actor = actors.get(actor_raw)
            if actor is None:
                actor = actors[actor_raw] = decode_actor(actor_raw)
        add(
            RecordedEvent(
                position,
                stream_id,
                version,
                type_,
                schema_version,
                observed,
                after,
                recorded,
                actor,
                correlation_id,
                data,
                prev_hash,
                digest,
            )
        )
    return events


def seal_batch(
    events: Sequence[NewEvent],
    *,
    head_position: int,
    head_hash: str,
    current_versions: Mapping[str, int],
    recorded_at: datetime,
) -> list[RecordedEvent]:
    """Give a batch its positions, versions and hashes, checking expected versions.

    Both backends call this (or its two halves, :func:`assign_versions` then :func:`seal`)
    inside their serialised append, with the head and the streams' versions read in the same
    transaction.
    """
    return seal(
        events,
        assign_versions(events, current_versions),
        head_position=head_position,
        head_hash=head_hash,
        recorded_at=recorded_at,
    )


def assign_versions(events: Sequence[NewEvent], current_versions: Mapping[str, int]) -> list[int]:
    """Each event's version in its stream, checking its expected version: the cheap half of
    sealing, and the only one that can refuse a batch (``ConcurrencyError``)."""
    versions = dict(current_versions)
    assigned: list[int] = []
    for new in events:
        stream_id = new.stream_id
        current = versions.get(stream_id, 0)
        if new.expected_version is not None and new.expected_version != current:
            raise ConcurrencyError(
                f"stream {stream_id!r} is at version {current}, expected {new.expected_version}"
            )
        versions[stream_id] = current + 1
        assigned.append(current + 1)
    return assigned


def seal(
    events: Sequence[NewEvent],
    versions: Sequence[int],
    *,
    head_position: int,
    head_hash: str,
    recorded_at: datetime,
) -> list[RecordedEvent]:
    """Chain ``events`` after the head, with the versions :func:`assign_versions` gave them.

    A batch may be sealed in consecutive slices, each after the last event of the one before
    (the PostgreSQL backend sends one slice while it seals the next).
    """
    prev = head_hash
    sealed: list[RecordedEvent] = []
    position = head_position
    for new, version in zip(events, versions, strict=True):
        position += 1
        fields = (
            position,
            new.stream_id,
            version,
            new.type,
            new.schema_version,
            new.observed_at,
            new.observed_after,
            recorded_at,
            new.actor,
            new.correlation_id,
            new.data,
            prev,
        )
        try:
            canonical = envelope_bytes(*fields)
        except (ValueError, TypeError, AttributeError) as exc:
            raise InvalidEventError(
                f"event {new.type!r} for stream {new.stream_id!r} (version {version}) "
                f"cannot be recorded: {exc.__class__.__name__}: {exc}"
            ) from exc
        digest = sha256(canonical).hexdigest()
        sealed.append(RecordedEvent(*fields, digest))
        prev = digest
    return sealed
