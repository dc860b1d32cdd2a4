"""The resync queue: requests for a poll now, kept in the database beside the log.

Any process records a request (:func:`enqueue`: ``POST /resyncs``, and the webhook next); the
process that holds the cluster's collector lease runs it (:func:`claim`, then :func:`finish`),
so ``GET /resyncs/{id}`` answers from any process serving the database, also after a restart.

* A request for a scope (cluster, node, vmid) that is already queued joins that resync and
  gets its id: a burst of requests for one guest is one poll. A request for a scope whose
  resync is running queues one follow-up (the running poll may have read the guest before
  the change that prompted the request), which later requests join in turn.
* The queue is bounded per cluster (:data:`MAX_QUEUED`): beyond it :class:`QueueFullError`
  (the API answers 503 with ``Retry-After``).
* A resync left ``running`` by a leader that died (or stopped mid-poll: its poll rolled
  back) goes back to the queue when the next leader takes over (:func:`recover`).
* Finished resyncs are kept :data:`KEEP_FINISHED` and then pruned by the leader.

A process wakes its own leader at once (:func:`wake`); a leader in another process finds the
request at its next look at the queue (:data:`QUEUE_POLL_S`).
"""

from __future__ import annotations

import asyncio
import uuid
import weakref
from datetime import datetime, timedelta
from typing import Literal

import msgspec

from eventstore import EventStore, utcnow
from eventstore.sql import Connection, Row

from .client import CollectorError

MAX_QUEUED = 256
"""Resyncs queued at most per cluster (distinct scopes: requests for a queued scope join it)."""

QUEUE_POLL_S = 0.5
"""How often a leader looks for resyncs another process queued (one indexed read)."""

KEEP_FINISHED = timedelta(days=7)
"""How long finished resyncs stay answerable."""

RETRY_AFTER_S = 5
"""What a refused request is told to wait before asking again."""

Status = Literal["queued", "running", "done", "failed"]

_COLUMNS = (
    "id, cluster, node, vmid, requested_by, requests, status, requested_at, started_at, "
    "finished_at, events_appended, error"
)
_JOIN = (
    "UPDATE resyncs SET requests = requests + 1 WHERE scope = ? AND status = 'queued' RETURNING id"
)
_QUEUED_COUNT = "SELECT COUNT(*) FROM resyncs WHERE cluster = ? AND status = 'queued'"
# The partial unique index makes a racing insert for the same scope join the winner's row.
_INSERT = """
INSERT INTO resyncs (id, cluster, node, vmid, scope, requested_by, status, requested_at)
VALUES (?, ?, ?, ?, ?, ?, 'queued', ?)
ON CONFLICT (scope) WHERE status = 'queued' DO UPDATE SET requests = resyncs.requests + 1
RETURNING id
"""
_GET = f"SELECT {_COLUMNS} FROM resyncs WHERE id = ?"
_ANY_QUEUED = "SELECT 1 FROM resyncs WHERE cluster = ? AND status = 'queued' LIMIT 1"
_CLAIM = f"""
UPDATE resyncs SET status = 'running', started_at = ?
WHERE status = 'queued' AND id = (
    SELECT id FROM resyncs WHERE cluster = ? AND status = 'queued'
    ORDER BY requested_at, id LIMIT 1
)
RETURNING {_COLUMNS}
"""
_FINISH = """
UPDATE resyncs SET status = ?, finished_at = ?, events_appended = ?, error = ?
WHERE id = ? AND status = 'running'
"""
# Back to the queue, unless a follow-up for the same scope is queued already (it will do).
_REQUEUE = """
UPDATE resyncs SET status = 'queued', started_at = NULL
WHERE cluster = ? AND status = 'running' AND NOT EXISTS (
    SELECT 1 FROM resyncs AS q WHERE q.scope = resyncs.scope AND q.status = 'queued'
)
"""
_ABANDON = """
UPDATE resyncs SET status = 'failed', finished_at = ?, error = ?
WHERE cluster = ? AND status = 'running'
"""
_PRUNE = "DELETE FROM resyncs WHERE status IN ('done', 'failed') AND finished_at < ?"
_UNFINISHED = "SELECT COUNT(*) FROM resyncs WHERE status IN ('queued', 'running')"
_ALL = "SELECT COUNT(*) FROM resyncs"


class QueueFullError(CollectorError):
    """The cluster's resync queue is full; ask again after ``retry_after_s`` seconds."""

    def __init__(self, message: str, retry_after_s: int = RETRY_AFTER_S) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Scope(msgspec.Struct, frozen=True, kw_only=True):
    """What a resync polls: a whole cluster (deep), or one node or guest (targeted)."""

    cluster: str
    node: str | None = None
    vmid: int | None = None

    @property
    def key(self) -> str:
        """One string per scope: requests with the same key join one queued resync."""
        return msgspec.json.encode([self.cluster, self.node, self.vmid]).decode()


class Resync(msgspec.Struct, kw_only=True):
    """One resync as the queue keeps it."""

    id: str
    cluster: str
    node: str | None
    vmid: int | None
    requested_by: str
    requests: int
    status: Status
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    events_appended: int
    error: str | None

    @property
    def scope(self) -> Scope:
        """What it polls."""
        return Scope(cluster=self.cluster, node=self.node, vmid=self.vmid)


def _resync(conn: Connection, row: Row) -> Resync:
    return Resync(
        id=str(row[0]),
        cluster=str(row[1]),
        node=row[2],
        vmid=None if row[3] is None else int(row[3]),
        requested_by=str(row[4]),
        requests=int(row[5]),
        status=row[6],
        requested_at=conn.time_out(row[7]),
        started_at=conn.time_or_none(row[8]),
        finished_at=conn.time_or_none(row[9]),
        events_appended=int(row[10]),
        error=row[11],
    )


# -- requests (any process) -------------------------------------------------------------------
async def enqueue(
    store: EventStore, scope: Scope, requested_by: str, *, limit: int = MAX_QUEUED
) -> str:
    """Queue a resync of ``scope`` (or join the one queued for it); returns its id.

    ``requested_by`` is a token's name, ``webhook`` or ``anonymous``. Raises
    :class:`QueueFullError` when ``limit`` resyncs of the cluster are queued already.
    """
    async with store.transaction() as conn:
        joined = await conn.fetchval(_JOIN, (scope.key,))
        if joined is None:
            queued = int(await conn.fetchval(_QUEUED_COUNT, (scope.cluster,)) or 0)
            if queued >= limit:
                raise QueueFullError(
                    f"{queued} resyncs of cluster {scope.cluster!r} are queued already "
                    f"(at most {limit}); ask again in a few seconds"
                )
            new_id = uuid.uuid4().hex
            joined = await conn.fetchval(
                _INSERT,
                (
                    new_id,
                    scope.cluster,
                    scope.node,
                    scope.vmid,
                    scope.key,
                    requested_by,
                    conn.time_in(utcnow()),
                ),
            )
    wake(store, scope.cluster)
    return str(joined)


async def get(store: EventStore, resync_id: str) -> Resync | None:
    """A resync by its id (None: never queued, or pruned)."""
    async with store.read_connection() as conn:
        row = await conn.fetchone(_GET, (resync_id,))
        return None if row is None else _resync(conn, row)


async def unfinished(store: EventStore) -> int:
    """How many resyncs are queued or running, in every cluster."""
    async with store.read_connection() as conn:
        return int(await conn.fetchval(_UNFINISHED) or 0)


async def count(store: EventStore) -> int:
    """How many resyncs are kept (queued, running or finished)."""
    async with store.read_connection() as conn:
        return int(await conn.fetchval(_ALL) or 0)


# -- running them (the cluster's collector leader) --------------------------------------------
async def claim(store: EventStore, cluster: str) -> Resync | None:
    """The oldest queued resync of ``cluster``, now ``running``; None when none is queued.

    Only the lease holder calls it. A cheap read comes first, so an idle leader's look at
    the queue never takes the write lock (SQLite) or a write transaction.
    """
    async with store.read_connection() as conn:
        if await conn.fetchone(_ANY_QUEUED, (cluster,)) is None:
            return None
    async with store.transaction() as conn:
        row = await conn.fetchone(_CLAIM, (conn.time_in(utcnow()), cluster))
        return None if row is None else _resync(conn, row)


async def finish(
    store: EventStore, resync_id: str, *, ok: bool, events_appended: int, error: str | None
) -> None:
    """Record how a running resync ended: ``done``, or ``failed`` with why."""
    async with store.transaction() as conn:
        await conn.execute(
            _FINISH,
            (
                "done" if ok else "failed",
                conn.time_in(utcnow()),
                events_appended,
                error,
                resync_id,
            ),
        )


async def recover(store: EventStore, cluster: str) -> None:
    """Put the cluster's resyncs left ``running`` back in the queue (a new leader, or one
    whose poll was cancelled): their poll ended with the process that ran it, or rolled back.
    One whose scope has a follow-up queued already is ``failed``, naming the cause: the
    follow-up does its work."""
    async with store.transaction() as conn:
        await conn.execute(_REQUEUE, (cluster,))
        await conn.execute(
            _ABANDON,
            (
                conn.time_in(utcnow()),
                "interrupted: the collector stopped mid-poll; a later resync of the same "
                "scope runs instead",
                cluster,
            ),
        )


async def prune(store: EventStore, now: datetime | None = None) -> None:
    """Forget resyncs finished longer than :data:`KEEP_FINISHED` ago."""
    cutoff = (now or utcnow()) - KEEP_FINISHED
    async with store.transaction() as conn:
        await conn.execute(_PRUNE, (conn.time_in(cutoff),))


# -- waking the leader in this process --------------------------------------------------------
_wakers: weakref.WeakKeyDictionary[EventStore, dict[str, asyncio.Event]] = (
    weakref.WeakKeyDictionary()
)


def waker(store: EventStore, cluster: str) -> asyncio.Event:
    """The event :func:`enqueue` sets in this process for the cluster's leader on ``store``."""
    return _wakers.setdefault(store, {}).setdefault(cluster, asyncio.Event())


def wake(store: EventStore, cluster: str) -> None:
    """Tell this process's leader of ``cluster`` (if it is here) that a resync is queued."""
    event = _wakers.get(store, {}).get(cluster)
    if event is not None:
        event.set()
