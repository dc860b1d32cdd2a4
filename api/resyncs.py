"""The resyncs this process runs: ``POST /resyncs`` starts one, ``GET /resyncs/{id}`` follows it.

A resync is a deep poll of a cluster (or one node or guest) by the running collectors, in a
task of its own so that the request answers 202 at once. Statuses are kept in memory, the
newest :data:`MAX_RESYNCS_KEPT`; the app cancels what is still running when it stops.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence

from .errors import NotFoundError, UnprocessableError
from .models import ResyncRequest, ResyncStatus
from .ports import CollectorsPort

log = logging.getLogger("pvetrail.api")

MAX_RESYNCS_KEPT = 1000


class Resyncs:
    """Starts resyncs on the collectors and keeps their statuses."""

    def __init__(self, collectors: CollectorsPort | None, clusters: Sequence[str]) -> None:
        self.collectors = collectors
        self.clusters = list(clusters)
        self._statuses: dict[str, ResyncStatus] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        """How many resyncs are kept (queued, running or finished)."""
        return len(self._statuses)

    def start(self, request: ResyncRequest) -> ResyncStatus:
        """Queue the resync ``request`` asks for; 422 for a cluster that is not collected."""
        collectors = self.collectors
        if request.cluster not in self.clusters or collectors is None:
            known = ", ".join(self.clusters) or "none configured"
            raise UnprocessableError(
                f"no cluster named {request.cluster!r} is collected (known: {known})",
                param="cluster",
            )
        status = ResyncStatus(id=uuid.uuid4().hex, cluster=request.cluster, status="queued")
        self._statuses[status.id] = status
        while len(self._statuses) > MAX_RESYNCS_KEPT:
            self._statuses.pop(next(iter(self._statuses)))
        task = asyncio.create_task(_run(collectors, status, request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return status

    def status(self, resync_id: str) -> ResyncStatus:
        """A kept resync's status; 404 for one never started here or long forgotten."""
        status = self._statuses.get(resync_id)
        if status is None:
            raise NotFoundError(f"no resync {resync_id[:64]!r} (resyncs are kept in memory)")
        return status

    async def wait(self) -> None:
        """Return once no resync is running (those started meanwhile included)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def cancel(self) -> None:
        """Cancel the resyncs still running and wait for them to end (the server stops)."""
        for task in list(self._tasks):
            task.cancel()
        await self.wait()


async def _run(collectors: CollectorsPort, status: ResyncStatus, request: ResyncRequest) -> None:
    status.status = "running"
    try:
        result = await collectors.sync(
            request.cluster, deep=True, node=request.node, vmid=request.vmid
        )
    except asyncio.CancelledError:
        status.status = "failed"
        status.error = "cancelled: the server stopped"
        raise
    except Exception as exc:
        log.warning("resync %s failed: %s", status.id, exc)
        status.status = "failed"
        status.error = f"{type(exc).__name__}: {exc}"
        return
    status.events_appended = result.events_appended
    if result.ok:
        status.status = "done"
    else:
        # Nothing could be observed (Proxmox unreachable, say): the resync did not happen.
        status.status = "failed"
        status.error = "; ".join(result.faults) or "the poll observed nothing"
