"""``POST /resyncs`` queues a resync, ``GET /resyncs/{id}`` follows it: the queue in the database.

The queue is ``collectors.resyncs``: any process records a request, the process holding the
cluster's collector lease runs it, and every process (also after a restart) answers for it.
This module only checks the request against the configured clusters and turns the queue's
answers and refusals into the API's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgspec

from collectors import resyncs as queue
from eventstore import EventStore

from .errors import NotFoundError, ServiceUnavailableError, UnprocessableError
from .models import ResyncRequest, ResyncStatus


class Resyncs:
    """Queues resyncs of the configured clusters and reads their statuses."""

    def __init__(self, store: EventStore, clusters: Sequence[str]) -> None:
        self.store = store
        self.clusters = list(clusters)

    async def start(self, request: ResyncRequest, *, requested_by: str) -> str:
        """Queue the resync ``request`` asks for (or join the one queued for its scope);
        its id. 422 for a cluster that is not collected, 503 when its queue is full."""
        if request.cluster not in self.clusters:
            known = ", ".join(self.clusters) or "none configured"
            raise UnprocessableError(
                f"no cluster named {request.cluster!r} is collected (known: {known})",
                param="cluster",
            )
        scope = queue.Scope(cluster=request.cluster, node=request.node, vmid=request.vmid)
        try:
            return await queue.enqueue(self.store, scope, requested_by)
        except queue.QueueFullError as exc:
            raise ServiceUnavailableError(
                str(exc), headers={"Retry-After": str(exc.retry_after_s)}
            ) from None

    async def status(self, resync_id: str) -> ResyncStatus:
        """A resync's status; 404 for one never queued (or finished long ago and pruned)."""
        found = await queue.get(self.store, resync_id)
        if found is None:
            raise NotFoundError(
                f"no resync {resync_id[:64]!r} (finished resyncs are kept "
                f"{queue.KEEP_FINISHED.days} days)"
            )
        return msgspec.convert(found, ResyncStatus, from_attributes=True)

    async def count(self) -> int:
        """How many resyncs are kept (queued, running or finished)."""
        return await queue.count(self.store)

    async def wait(self, interval: float = 0.05) -> None:
        """Return once no resync is queued or running (in any process on the database)."""
        # The queue is in the database and another process may run it: no event to await.
        while await queue.unfinished(self.store):  # noqa: ASYNC110
            await asyncio.sleep(interval)
