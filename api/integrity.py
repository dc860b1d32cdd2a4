"""``GET /integrity``'s walk of the whole hash chain, at a bounded cost to the server.

Re-hashing a million events takes seconds of CPU. Any reader may ask, so the walk runs off the
event loop (a worker thread with its own connections), one at a time: concurrent requests
share the walk in flight, and its answer is kept until the head of the log moves or
:data:`MAX_AGE_S` passes. The answer says when it was checked (``checked_at``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from eventstore import EventStore, VerifyResult, open_store, utcnow

MAX_AGE_S = 60.0
"""How long a walk's answer is served while the head stays where it was."""

log = logging.getLogger("pvetrail.api")


@dataclass(frozen=True, slots=True)
class Checked:
    """One walk's answer: the result, the head when it began and when it ended."""

    result: VerifyResult
    head: int
    checked_at: datetime
    finished: float  # the monotonic clock's reading at the end


async def _verify(url: str) -> VerifyResult:
    store = await open_store(url)
    try:
        return await store.verify()
    finally:
        await store.close()


def _verify_in_thread(url: str) -> VerifyResult:
    return asyncio.run(_verify(url))


class IntegrityCheck:
    """The shared, cached walk of one store's hash chain."""

    def __init__(
        self,
        store: EventStore,
        *,
        max_age_s: float = MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._max_age_s = max_age_s
        self._clock = clock
        self._last: Checked | None = None
        self._walk: asyncio.Future[Checked] | None = None
        self.walks = 0
        """How many walks were started (for tests and metrics)."""

    async def check(self) -> Checked:
        """The newest answer: a kept one while the head has not moved and it is younger than
        the maximum age, else the walk in flight, else a new walk."""
        head = await self._store.head()
        last = self._last
        if (
            last is not None
            and last.head == head
            and self._clock() - last.finished < self._max_age_s
        ):
            return last
        if self._walk is None:
            self._walk = asyncio.ensure_future(self._run(head))
        # Shielded: a client that gives up does not cancel the walk the others wait on.
        return await asyncio.shield(self._walk)

    async def _run(self, head: int) -> Checked:
        try:
            self.walks += 1
            result = await asyncio.to_thread(_verify_in_thread, self._store.url)
            if not result.ok:
                log.error(
                    "the event log's hash chain breaks at position %s: %s",
                    result.first_bad_position,
                    result.reason,
                )
            checked = Checked(result, head, utcnow(), self._clock())
            self._last = checked
            return checked
        finally:
            self._walk = None
