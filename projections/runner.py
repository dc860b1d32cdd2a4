"""The projection runner (follows the log) and the rebuild (from position 0 into fresh tables).

Each batch is one transaction that writes the rows and advances the checkpoints together, so a
crash between events can neither skip nor double-apply one. The runner checks, inside that
transaction, that the checkpoints are still where it read its events from: another process's
catch-up or a rebuild's swap makes it drop its cache and continue from the new checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

from eventstore import Connection, EventStore, EventStoreError, utcnow

from .dialect import ProjectionDialect
from .dialects import dialect_for
from .errors import ProjectionStateError, ProjectionStoppedError
from .fold import PROJECTIONS, TABLES, BatchOutput, Folder, RawEvent, Tracked, carry_open
from .models import ProjectionLag, RebuildResult
from .tables import (
    READ_CHECKPOINTS,
    RECORDED_AT,
    head,
    load_tracked,
    read_events,
    set_checkpoints,
    write_batch,
)

log = logging.getLogger("pvetrail.projections")

RUNNER_LOCK = "projections"
"""The named lock one runner per database holds while it applies events."""

REBUILD_LOCK = "projections-rebuild"
"""Held by a rebuild while it fills its shadow tables."""

SHADOW_SUFFIX = "__rebuild"

BATCH_SIZE = 2000
"""Events per transaction while following (small: appends wait for it on SQLite)."""

REBUILD_BATCH_SIZE = 50_000
"""Events per transaction in a rebuild (large: fewer commits and version UPDATEs)."""

RETRY_FIRST_S = 1.0
RETRY_MAX_S = 60.0
"""After a failed batch the runner waits 1 s, then twice as long each time, up to a minute."""

CACHE_LIMIT = 200_000
"""Resources the runner keeps in memory between batches before it starts again from the table."""

YIELD_EVERY = 1000
"""Events folded between two yields to the event loop."""

_NO_LIMIT = 2**62

LIVE = {table: table for tables in TABLES.values() for table in tables}
"""Every projection table, written in place (the runner)."""


def common_checkpoint(checkpoints: Mapping[str, int]) -> int:
    """The one checkpoint all projections share; they move together, else the runner stops."""
    missing = [name for name in PROJECTIONS if name not in checkpoints]
    if missing:
        raise ProjectionStateError(
            f"projection checkpoints missing for {', '.join(missing)}: run `pvetrail migrate`"
        )
    values = {checkpoints[name] for name in PROJECTIONS}
    if len(values) != 1:
        raise ProjectionStateError(
            f"projection checkpoints differ ({dict(checkpoints)}): run `pvetrail rebuild`"
        )
    return values.pop()


async def fold_events(
    events: Sequence[RawEvent], cache: dict[str, Tracked], out: BatchOutput | None = None
) -> tuple[BatchOutput, ProjectionStoppedError | None]:
    """Fold events in memory (into ``out``, e.g. a rebuild's carried rows, else a new
    output); returns the rows and, if an event could not be applied, the error (the rows of
    the events before it are kept). Yields to the event loop now and then, so a long batch
    does not stall the rest of the process."""
    out = BatchOutput() if out is None else out
    folder = Folder(cache)
    for index, event in enumerate(events):
        try:
            folder.apply(event, out)
        except ProjectionStoppedError as exc:
            return out, exc
        if index % YIELD_EVERY == YIELD_EVERY - 1:
            await asyncio.sleep(0)
    return out, None


async def fold_batch(
    dialect: ProjectionDialect,
    conn: Connection,
    events: Sequence[RawEvent],
    cache: dict[str, Tracked],
    tables: Mapping[str, str],
    *,
    load_from: str,
) -> tuple[BatchOutput, ProjectionStoppedError | None]:
    """Inside a transaction: load the resources missing from ``cache`` from ``load_from``,
    fold the events and write their rows into ``tables``."""
    missing = sorted({e.stream_id for e in events if e.stream_id not in cache})
    await load_tracked(dialect, conn, load_from, missing, cache)
    out, stopped = await fold_events(events, cache)
    await write_batch(dialect, conn, out, tables)
    return out, stopped


class ProjectionRunner:
    """Applies new events to every projection; one per database is active at a time."""

    def __init__(
        self,
        store: EventStore,
        *,
        batch_size: int = BATCH_SIZE,
        idle_timeout: float = 5.0,
        standby_interval: float = 5.0,
    ) -> None:
        self.store = store
        self.dialect = dialect_for(store)
        self.batch_size = batch_size
        self.idle_timeout = idle_timeout
        self.standby_interval = standby_interval
        self.error: ProjectionStoppedError | None = None
        """Set when a projection stopped at an event it cannot apply."""
        self.active = False
        """True while this runner holds the runner lock (False: stand-by or stopped)."""
        self._cache: dict[str, Tracked] = {}
        self._checkpoint: int | None = None
        self._advanced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.failure: str | None = None
        """The last unexpected error while it is being retried (None once a batch applies)."""

    @property
    def position(self) -> int | None:
        """The checkpoint this runner last applied or saw (None before its first batch)."""
        return self._checkpoint

    # -- following -----------------------------------------------------------------------
    async def start(self) -> None:
        """Start following the log in the background: catch up, then apply events as they
        arrive (``wait_for_events``, no busy polling). While another process holds the runner
        lock this one stands by, trying again every ``standby_interval`` seconds."""
        if self._task is None or self._task.done():
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="pvetrail-projections")

    async def stop(self) -> None:
        """Stop following; a batch in flight is rolled back (its events are applied later)."""
        task, self._task = self._task, None
        self._stopping = True
        if task is not None:
            # Python 3.11's wait_for (inside wait_for_events) can swallow a cancellation that
            # races with its own timeout: cancel again until the task is really done.
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.active = False

    def problem(self) -> str | None:
        """Why the projections are not following the log, for ``/readyz``; None while they
        are (or while another process's runner holds the lock and this one stands by)."""
        if self.error is not None:
            return f"stopped: {self.error}"
        if self.failure is not None:
            return f"failing, retrying with backoff: {self.failure}"
        if self._task is None or self._stopping:
            return "not running"
        if self._task.done():
            return "the runner's task ended"
        return None

    async def _run(self) -> None:
        backoff = RETRY_FIRST_S
        while not self._stopping:
            try:
                async with self.store.guarded_lock(RUNNER_LOCK, wait=False) as held:
                    self.active = held
                    if not held:
                        await asyncio.sleep(self.standby_interval)
                        continue
                    while not self._stopping:
                        checkpoint = await self.catch_up()
                        self.failure = None
                        backoff = RETRY_FIRST_S
                        await self.store.wait_for_events(checkpoint, self.idle_timeout)
            except ProjectionStoppedError as exc:
                self.error = exc
                self.active = False
                log.error("%s; the projections stay at position %d", exc, exc.position - 1)
                return
            except (EventStoreError, ProjectionStateError) as exc:
                self.active = False
                self.failure = f"{type(exc).__name__}: {exc}"
                log.warning("projection runner: %s; retrying in %.0f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RETRY_MAX_S)
            except Exception as exc:  # a bug: say so loudly, keep trying, /readyz reports it
                self.active = False
                self.failure = f"{type(exc).__name__}: {exc}"
                log.exception("projection runner failed unexpectedly; retrying in %.0f s", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RETRY_MAX_S)
            finally:
                self.active = False

    async def wait_until(self, position: int, timeout: float) -> bool:
        """Wait until the projections have applied ``position``; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._checkpoint is None or self._checkpoint < position:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            signal = self._advanced
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signal.wait(), min(remaining, 0.5))
            if self._checkpoint is None or self._checkpoint < position:
                self._checkpoint = await self.checkpoint()
        return True

    # -- applying ------------------------------------------------------------------------
    async def checkpoint(self) -> int:
        """The projections' checkpoint as the database holds it now."""
        async with self.store.read_connection() as conn:
            rows = await conn.fetch(READ_CHECKPOINTS)
        return common_checkpoint({name: int(position) for name, position in rows})

    async def catch_up(self) -> int:
        """Apply everything up to the head now; returns the checkpoint reached.

        Safe to call from several processes at once (each batch checks the checkpoint it read
        from); raises :class:`ProjectionStoppedError` at an event it cannot apply.
        """
        while True:
            if not await self._apply_batch():
                assert self._checkpoint is not None
                return self._checkpoint

    async def _apply_batch(self) -> bool:
        """One batch in one transaction; False when there was nothing to apply."""
        if self._checkpoint is None:
            self._checkpoint = await self.checkpoint()
        expected = self._checkpoint
        async with self.store.read_connection() as conn:
            events = await read_events(self.dialect, conn, expected, _NO_LIMIT, self.batch_size)
        if not events:
            return False
        if len(self._cache) > CACHE_LIMIT:
            self._cache.clear()
        stopped: ProjectionStoppedError | None = None
        try:
            async with self.store.transaction() as conn:
                current = common_checkpoint(await self.dialect.lock_checkpoints(conn))
                if current != expected:
                    # Another catch-up or a rebuild's swap moved it: our cache is stale.
                    self._cache.clear()
                    self._checkpoint = current
                    return True
                out, stopped = await fold_batch(
                    self.dialect, conn, events, self._cache, LIVE, load_from="proj_resources"
                )
                if out.events:
                    await set_checkpoints(self.dialect, conn, PROJECTIONS, out.last_position)
        except BaseException:
            # The transaction rolled back; the cache may hold states it never wrote.
            self._cache.clear()
            self._checkpoint = None
            raise
        if out.events:
            self._checkpoint = out.last_position
            signal, self._advanced = self._advanced, asyncio.Event()
            signal.set()
        if stopped is not None:
            self.error = stopped
            raise stopped
        return True

    async def lag(self) -> ProjectionLag:
        """How far the projections are behind the log (for /readyz and /metrics)."""
        checkpoint = await self.checkpoint()
        async with self.store.read_connection() as conn:
            top = await head(self.dialect, conn)
            seconds = 0.0
            if top > checkpoint:
                row = await conn.fetchone(RECORDED_AT, (checkpoint + 1,))
                if row is not None:
                    age = utcnow() - self.dialect.time_out(row[0])
                    seconds = max(0.0, age.total_seconds())
        return ProjectionLag(head=top, checkpoint=checkpoint, seconds=seconds)


# -- rebuild ---------------------------------------------------------------------------------
def _chosen(names: Sequence[str] | None) -> list[str]:
    if not names:
        return list(PROJECTIONS)
    unknown = [n for n in names if n not in PROJECTIONS]
    if unknown:
        raise ProjectionStateError(
            f"unknown projection {', '.join(map(repr, unknown))} (known: {', '.join(PROJECTIONS)})"
        )
    return [n for n in PROJECTIONS if n in names]


async def rebuild(
    store: EventStore,
    names: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    *,
    batch_size: int = REBUILD_BATCH_SIZE,
) -> RebuildResult:
    """Rebuild projections (all by default) from position 0 into fresh tables, then swap them
    in within one transaction, so readers never see half a rebuild; safe while a runner runs.

    The rebuilt projections end at the others' checkpoint (or at the head when all are
    rebuilt), so all checkpoints stay equal. ``progress`` gets (done, total) per batch.
    """
    chosen = _chosen(names)
    others = [n for n in PROJECTIONS if n not in chosen]
    dialect = dialect_for(store)
    shadows = {t: t + SHADOW_SUFFIX for n in chosen for t in TABLES[n]}
    started = time.perf_counter()
    async with store.named_lock(REBUILD_LOCK, wait=False) as held:
        if not held:
            raise ProjectionStateError("another rebuild is running on this database")
        if others:
            await ProjectionRunner(store).catch_up()
        try:
            with _collector_paused():
                done = await _rebuild_into(store, chosen, others, shadows, batch_size, progress)
        finally:
            with contextlib.suppress(EventStoreError):
                async with store.transaction() as conn:
                    for shadow in shadows.values():
                        await dialect.drop_table(conn, shadow)
                    await dialect.bulk_mode(conn, False)
    seconds = time.perf_counter() - started
    return RebuildResult(
        projections=chosen, events=done, seconds=seconds, rate=done / seconds if seconds else 0.0
    )


async def _rebuild_into(
    store: EventStore,
    chosen: Sequence[str],
    others: Sequence[str],
    shadows: Mapping[str, str],
    batch_size: int,
    progress: Callable[[int, int], None] | None,
) -> int:
    """Fill the shadow tables, index them and swap them in; returns the position reached."""
    dialect = dialect_for(store)
    later: list[str] = []
    async with store.transaction() as conn:
        await dialect.bulk_mode(conn, True)
        for table, shadow in shadows.items():
            await dialect.drop_table(conn, shadow)
            later += await dialect.create_like(conn, table, shadow)
    # While loading, the shadows get only rows already closed (open versions and edges
    # are carried in memory until closed) and no resources (written once, at the end):
    # inserts alone, into tables without indexes.
    loading = {k: v for k, v in shadows.items() if k != "proj_resources"}
    cache: dict[str, Tracked] = {}
    carried = BatchOutput()
    done = 0

    async def read(after: int) -> tuple[int, list[RawEvent]]:
        async with store.read_connection() as conn:
            target = await _target(dialect, conn, others, lock=False)
            return target, await read_events(dialect, conn, after, target, batch_size)

    async def write(closed: BatchOutput) -> None:
        async with store.transaction() as conn:
            await write_batch(dialect, conn, closed, loading)

    # Where the dialect's database works in a process of its own (PostgreSQL), the next
    # batch is read and the last one written while this one folds; else one after another.
    overlap = dialect.overlap_io
    reading: asyncio.Task[tuple[int, list[RawEvent]]] | None = None
    writing: asyncio.Task[None] | None = None
    try:
        while True:
            target, events = await (reading if reading is not None else read(done))
            reading = None
            if not events:
                break
            if overlap:
                reading = asyncio.create_task(read(events[-1].position))
            # Folded outside the transaction: the shadow tables are the rebuild's alone, and
            # on SQLite the write lock is then held only while the rows are written.
            closed, carried = carry_open(await _fold_shadow(events, cache, carried))
            if writing is not None:
                await writing
                writing = None
            if overlap:
                writing = asyncio.create_task(write(closed))
            else:
                await write(closed)
            done = closed.last_position
            if progress is not None:
                progress(done, target)
        if writing is not None:
            await writing
            writing = None
    finally:
        for task in (reading, writing):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, EventStoreError):
                    await task
    async with store.transaction() as conn:
        await dialect.create_indexes(conn, later)
    async with store.transaction() as conn:
        target = await _target(dialect, conn, others, lock=True)
        while done < target:
            events = await read_events(dialect, conn, done, target, batch_size)
            if not events:
                break
            closed, carried = carry_open(await _fold_shadow(events, cache, carried))
            await write_batch(dialect, conn, closed, loading)
            done = closed.last_position
        # What is still open, and every resource's current row (in key order).
        carried.resources = dict(sorted(cache.items()))
        await write_batch(dialect, conn, carried, shadows)
        views = await dialect.drop_views(conn, list(shadows))
        for table, shadow in shadows.items():
            await dialect.swap(conn, table, shadow)
            await dialect.analyze(conn, table)
        await dialect.restore_views(conn, views)
        await set_checkpoints(dialect, conn, chosen, done)
    if progress is not None:
        progress(done, done)
    return done


async def _target(
    dialect: ProjectionDialect, conn: Connection, others: Sequence[str], *, lock: bool
) -> int:
    """Where a rebuild stops: the other projections' checkpoint, or the head."""
    if lock:
        checkpoints = await dialect.lock_checkpoints(conn)
    else:
        rows = await conn.fetch(READ_CHECKPOINTS)
        checkpoints = {name: int(position) for name, position in rows}
    if others:
        return min(checkpoints[name] for name in others)
    return await head(dialect, conn)


async def _fold_shadow(
    events: Sequence[RawEvent], cache: dict[str, Tracked], carried: BatchOutput
) -> BatchOutput:
    out, stopped = await fold_events(events, cache, carried)
    if stopped is not None:
        raise stopped
    return out


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector for a rebuild: with the fold's resources and carried
    rows in memory it walked the whole heap again and again while each batch was read and
    folded (a third of the fold, and four times the reading, at 1M events). The rebuild
    makes no reference cycles; whatever cycles the rest of the process makes meanwhile are
    collected once it ends."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
