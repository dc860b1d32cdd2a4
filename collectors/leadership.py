"""One collector per cluster across every ``serve`` process on a database: the lease.

A process holds a cluster's collector lease (``store.guarded_lock("collector:{cluster}")``: a
PostgreSQL session advisory lock on a connection of its own, or on SQLite an OS file lock
beside the database) for as long as it lives, and only the holder polls the cluster on its
schedule and runs its resyncs. The others stand by, blocked on the same lock: the database
(PostgreSQL ends a dead client's session, and with it the lock) or the kernel (a dead
process's file locks go with it, SIGKILL included) hands it to one of them the moment the
holder dies, so a take-over costs no polling of the lock and no waiting for a timeout. A
holder whose lock session ends while it lives (the server terminated it, the network to the
database was cut) stops leading at once (``LockLostError``) and stands by again: the lease
may already be another process's.

``pvetrail sync`` takes no lease: it polls once, waiting for a running poll through the
per-poll lock every poll takes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from eventstore import EventStore, EventStoreError

log = logging.getLogger(__name__)

RETRY_S = 1.0
"""After the database failed to take or hold the lease, try again after this long."""


def lease_name(cluster: str) -> str:
    """The named lock that is the cluster's collector lease."""
    return f"collector:{cluster}"


async def hold(
    store: EventStore,
    cluster: str,
    *,
    lead: Callable[[], Awaitable[None]],
    stand_by: Callable[[], None],
    stopping: Callable[[], bool],
) -> None:
    """Lead ``cluster`` whenever this process holds its lease, until ``stopping()``.

    ``lead()`` runs while the lease is held and returns only when the process stops (or
    raises when the database fails: the lease is then given up and taken again). While
    another process holds it, ``stand_by()`` is called and this one waits on the lock.
    """
    name = lease_name(cluster)
    while not stopping():
        try:
            async with store.guarded_lock(name, wait=False) as held:
                if held:
                    log.info("cluster %s: this process holds the collector lease", cluster)
                    await lead()
                    continue
            stand_by()
            log.info("cluster %s: another process collects; standing by", cluster)
            async with store.guarded_lock(name) as held:
                if held and not stopping():
                    log.info("cluster %s: the collector lease is ours now; taking over", cluster)
                    await lead()
        except EventStoreError as exc:
            stand_by()
            log.warning(
                "cluster %s: collector lease: %s; trying again in %.0f s", cluster, exc, RETRY_S
            )
            await asyncio.sleep(RETRY_S)
        except Exception:  # a bug must not end collecting for good: log it, lead again
            stand_by()
            log.exception(
                "cluster %s: the collector failed; trying again in %.0f s", cluster, RETRY_S
            )
            await asyncio.sleep(RETRY_S)
