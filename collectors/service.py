"""The collector service: polls every configured cluster and appends every real change.

Per cluster, on an apscheduler schedule (coalesced, never overlapping, with jitter; the first
fast and deep polls run at start, without jitter):

* a **fast poll** reads ``/cluster/status`` and ``/cluster/resources``; a guest that is new or
  whose status, node, lock or name changed gets a **targeted deep poll** at once (HA
  included), inside the same poll, so its events carry its config and land in the same batch;
  any poll that is about to append an event reads the task logs first (attribution);
* a **deep poll** reads everything (configs, pending changes, snapshots, storages and their
  backups, pools, HA resources, task logs);
* :meth:`CollectorService.sync` runs one poll now (optionally targeted at a node or a guest),
  waiting for a running one;
* a **resync** (``collectors.resyncs``: queued in the database by any process) is a deep or
  targeted poll the leader runs as soon as it sees it.

Of all the processes that run the service on one database, only the one that holds a
cluster's collector lease (``collectors.leadership``) schedules its polls and runs its
resyncs; the others stand by (``standby`` in their health) and one of them takes over the
moment the holder dies.

Every poll takes ``store.named_lock("poll:{cluster}")`` (on PostgreSQL an advisory lock), so
one poll per cluster runs at a time across processes; catches up with the log (another
process may have appended); diffs what it saw against the fold of the log; and appends its
events in ONE batch with expected versions on every stream, each with its observation window
(:mod:`collectors.windows`). A :class:`ConcurrencyError`
means another writer won: the state is reloaded from the log and the poll re-diffed. Then
the ``observations`` table is bulk-updated. A cluster that is down does not hold up the
others (each has its own thread pool and schedule).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Coroutine, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import msgspec

from eventstore import ConcurrencyError, EventStore, EventStoreError, NewEvent, utcnow

from . import events as ev
from . import leadership, observations, resyncs, snapshots
from .client import CollectorError, PveClient, UnknownClusterError
from .clocks import WARN_S
from .config import ClusterConfig
from .observe import Observation, Observer
from .state import Known, Planned, attribute, diff, diff_resources, diff_tasks
from .values import GUEST_TYPES, as_int, same
from .windows import Windows

log = logging.getLogger(__name__)

# How many times a poll re-diffs after losing an append race before it gives up.
CONCURRENCY_RETRIES = 3

# How often a leader forgets resyncs finished long ago (resyncs.KEEP_FINISHED).
PRUNE_EVERY_S = 3600.0

# Tasks are remembered (recorded once, used as an actor once) while they started less than
# this long ago; older ones are ignored. Longer than any task and than any outage after which
# a task should still be recorded; short enough that a busy cluster's tasks (a thousand a day)
# keep the fold within a few MB.
TASK_MEMORY = timedelta(days=30)


class SyncResult(msgspec.Struct, kw_only=True):
    """What one poll did."""

    cluster: str
    kind: str  # "fast", "deep" or "targeted"
    ok: bool  # False when the cluster could not be observed at all (nothing appended)
    events_appended: int
    duration_s: float
    faults: list[str] = []
    counts: dict[str, int] = {}  # events appended by type
    observed: int = 0  # resources whose observation time was updated
    first_position: int | None = None
    last_position: int | None = None


class ClusterHealth(msgspec.Struct, kw_only=True):
    """One cluster's collector state, for ``/readyz`` and ``/metrics``."""

    state: str = "starting"  # "starting" | "ok" | "degraded" | "down" | "standby"
    leader: bool = False  # whether this process holds the cluster's collector lease
    last_success: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    consecutive_failures: int = 0
    polls_total: dict[str, int] = {}  # by kind
    poll_errors_total: dict[str, int] = {}  # by error kind
    events_appended_total: int = 0
    last_poll_duration_s: dict[str, float] = {}  # by kind
    clock_offsets_s: dict[str, float] = {}  # by node: its clock minus ours (Date headers)
    warnings: list[str] = []  # e.g. a node whose clock is off by more than a few seconds


class _Cluster:
    """One cluster's poller: client, observer, the fold of its streams, its health."""

    def __init__(
        self,
        store: EventStore,
        config: ClusterConfig,
        fingerprint_key: bytes,
        environ: Mapping[str, str],
    ) -> None:
        self.store = store
        self.config = config
        self.name = config.name
        self.client = PveClient(config, environ)
        self.observer = Observer(self.client, fingerprint_key)
        self.known: Known | None = None
        self.windows = Windows(self.name)
        self.saved_at = 0  # the log position of the last saved fold (collectors.snapshots)
        self.health = ClusterHealth()
        self.lock = asyncio.Lock()  # in-process: fast, deep and sync polls take turns

    # -- the log --------------------------------------------------------------------------
    async def _load(self) -> Known:
        """The fold of the log: the saved one and the events after it (or all of them)."""
        saved = await snapshots.load(self.store, self.name)
        self.saved_at = saved.head if saved is not None else 0
        known = saved or Known(self.name)
        async for recorded in self.store.read_all(known.head):
            known.apply(recorded)
        return known

    async def _save_state(self) -> None:
        """Every ``snapshots.EVERY`` events: forget tasks past ``TASK_MEMORY`` and save the
        fold, so memory stays flat and a start folds only the events after it."""
        known = self.known
        if known is None or known.head - self.saved_at < snapshots.EVERY:
            return
        known.forget_tasks(int(time.time() - TASK_MEMORY.total_seconds()))
        try:
            await snapshots.save(self.store, known)
        except EventStoreError as exc:  # the next poll tries again; nothing depends on it
            log.warning("cluster %s: saving the collector's state failed: %s", self.name, exc)
            return
        self.saved_at = known.head

    async def refresh_observations(self) -> None:
        """Re-read when each resource was last observed: another process (the leader
        before this one) has polled meanwhile, and windows start from its observations."""
        async with self.lock:
            if self.known is not None:
                await self.windows.load(self.store)

    async def _catch_up(self) -> Known:
        if self.known is None:
            self.known = await self._load()
            await self.windows.load(self.store)
            return self.known
        if await self.store.head() > self.known.head:
            async for recorded in self.store.read_all(self.known.head):
                self.known.apply(recorded)
        return self.known

    # -- one poll -------------------------------------------------------------------------
    async def poll(self, kind: str, node: str | None = None, vmid: int | None = None) -> SyncResult:
        started = time.monotonic()
        async with self.lock, self.store.named_lock(f"poll:{self.name}"):
            try:
                result = await self._poll(kind, node, vmid, started)
                await self._save_state()
            except EventStoreError as exc:
                result = SyncResult(
                    cluster=self.name,
                    kind=kind,
                    ok=False,
                    events_appended=0,
                    duration_s=time.monotonic() - started,
                    faults=[f"event store: {exc}"],
                )
                self._record_failure(kind, ["store"], result)
                return result
        return result

    async def _poll(
        self, kind: str, node: str | None, vmid: int | None, started: float
    ) -> SyncResult:
        known = await self._catch_up()
        obs = Observation(self.name, kind)
        await self.observer.fast(obs)
        if not obs.resources_ok:
            result = SyncResult(
                cluster=self.name,
                kind=kind,
                ok=False,
                events_appended=0,
                duration_s=time.monotonic() - started,
                faults=list(obs.faults),
            )
            self._record_failure(kind, obs.error_kinds or ["unknown"], result)
            return result
        await self._deepen(obs, known, kind, node, vmid)
        planned = diff_resources(known, obs)
        if planned:
            await self.observer.tasks(obs)  # every change may have a task to explain it
        planned += diff_tasks(known, obs)
        self.windows.note_new(known, obs)
        observed_at = utcnow()  # no earlier than the arrival of every answer of this poll
        obs.observed_at = observed_at
        recorded = await self._append(obs, observed_at, planned)
        rows = self.windows.rows(obs)
        observed = await observations.save(self.store, self.name, rows)
        assert self.known is not None
        self.windows.observed(self.known, obs, rows)
        counts: dict[str, int] = {}
        for item in recorded:
            counts[item.type] = counts.get(item.type, 0) + 1
        result = SyncResult(
            cluster=self.name,
            kind=kind,
            ok=True,
            events_appended=len(recorded),
            duration_s=time.monotonic() - started,
            faults=list(obs.faults),
            counts=counts,
            observed=observed,
            first_position=recorded[0].position if recorded else None,
            last_position=recorded[-1].position if recorded else None,
        )
        self._record_success(kind, obs, result)
        return result

    async def _deepen(
        self, obs: Observation, known: Known, kind: str, node: str | None, vmid: int | None
    ) -> None:
        guests = [rid for rid, s in obs.states.items() if s["type"] in GUEST_TYPES]
        if kind == "deep":
            await asyncio.gather(
                self.observer.guests_deep(obs, guests),
                self.observer.storages_deep(obs),
                self.observer.pools_deep(obs),
                self.observer.tasks(obs),
            )
            await self.observer.ha_deep(obs)
            return
        if kind == "targeted":
            chosen = [
                rid
                for rid in guests
                if (node is None or obs.states[rid]["node"] == node)
                and (vmid is None or obs.states[rid]["vmid"] == vmid)
            ]
            nodes = {obs.states[rid]["node"] for rid in chosen}
            if node is not None:
                nodes.add(node)
            jobs = [self.observer.guests_deep(obs, chosen), self.observer.tasks(obs, nodes)]
            if node is not None:
                jobs.append(self.observer.storages_deep(obs, [node]))
            await asyncio.gather(*jobs)
            await self.observer.ha_deep(obs)
            return
        # A fast poll: a targeted deep poll of every guest that is new or changed status,
        # node, lock or name, at once, HA included (a new guest's ``ha`` is part of what is
        # discovered). The task logs are read by the caller when anything is to be appended.
        changed = [rid for rid in guests if _noticed(known.states.get(rid), obs.states[rid])]
        if changed:
            await self.observer.guests_deep(obs, changed)
            await self.observer.ha_deep(obs)

    async def _append(
        self, obs: Observation, observed_at: datetime, planned: list[Planned]
    ) -> list[Any]:
        """Append the planned events in one batch; re-diffed after losing a race."""
        assert self.known is not None
        correlation = f"poll:{uuid.uuid4()}"
        # Tasks older than the memory are neither recorded nor used as an actor: the fold
        # forgets them (Known.forget_tasks), so they would otherwise be recorded again.
        oldest = time.time() - TASK_MEMORY.total_seconds()
        obs.tasks = [t for t in obs.tasks if (as_int(t.get("starttime")) or 0) >= oldest]
        for attempt in range(CONCURRENCY_RETRIES + 1):
            known = self.known
            if attempt:
                planned = diff(known, obs)
            if not planned:
                return []
            clocks = self.client.clocks
            for item in planned:
                item.observed_after = self.windows.observed_after(item)
                if item.basis != "task":
                    tasks = [*obs.tasks, *obs.running]
                    attribute(item, tasks, known.used, observed_at, clocks)
            batch = []
            versions = dict(known.versions)
            for item in planned:
                expected = versions.get(item.stream_id, 0)
                versions[item.stream_id] = expected + 1
                batch.append(
                    NewEvent(
                        stream_id=item.stream_id,
                        type=ev.type_of(item.event),
                        data=ev.encode(item.event),
                        observed_at=observed_at,
                        observed_after=item.observed_after,
                        actor=item.actor,
                        correlation_id=correlation,
                        expected_version=expected,
                        schema_version=ev.SCHEMA_VERSION,
                    )
                )
            try:
                recorded = await self.store.append(batch)
            except ConcurrencyError:
                if attempt >= CONCURRENCY_RETRIES:
                    raise
                log.info("cluster %s: another writer appended first; re-reading the log", self.name)
                self.known = await self._load()
                await self.windows.load(self.store)
                continue
            for event in recorded:
                known.apply(event)
            return recorded
        return []

    # -- health ---------------------------------------------------------------------------
    def _count(self, kind: str, result: SyncResult) -> None:
        health = self.health
        health.polls_total[kind] = health.polls_total.get(kind, 0) + 1
        health.last_poll_duration_s[kind] = result.duration_s
        health.events_appended_total += result.events_appended

    def _clock_health(self) -> None:
        health = self.health
        offsets = {n: o for n, o in self.client.clocks.known().items() if n}
        health.clock_offsets_s = {n: round(o.estimate, 3) for n, o in offsets.items()}
        warnings = [
            f"node {node}'s clock is {o.estimate:+.0f} s off ours (±{o.error:.1f} s); "
            "its task times are corrected by it"
            for node, o in sorted(offsets.items())
            if abs(o.estimate) - o.error > WARN_S
        ]
        for warning in set(warnings) - set(health.warnings):
            log.warning("cluster %s: %s", self.name, warning)
        health.warnings = warnings

    def _record_success(self, kind: str, obs: Observation, result: SyncResult) -> None:
        health = self.health
        self._count(kind, result)
        self._clock_health()
        health.last_success = obs.observed_at
        health.consecutive_failures = 0
        for error_kind in obs.error_kinds:
            health.poll_errors_total[error_kind] = health.poll_errors_total.get(error_kind, 0) + 1
        if result.faults:
            health.state = "degraded"
            health.last_error = result.faults[0]
            health.last_error_at = obs.observed_at
            log.warning(
                "cluster %s: %s poll saw %d fault(s), first: %s",
                self.name,
                kind,
                len(result.faults),
                result.faults[0],
            )
        else:
            health.state = "ok"

    def _record_failure(self, kind: str, error_kinds: Sequence[str], result: SyncResult) -> None:
        health = self.health
        self._count(kind, result)
        health.consecutive_failures += 1
        health.state = "down"
        health.last_error = result.faults[0] if result.faults else "poll failed"
        health.last_error_at = utcnow()
        for error_kind in error_kinds:
            health.poll_errors_total[error_kind] = health.poll_errors_total.get(error_kind, 0) + 1
        log.warning("cluster %s: %s poll failed: %s", self.name, kind, health.last_error)


def _noticed(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """Whether the fast poll noticed what calls for a targeted deep poll of a guest."""
    if old is None:
        return True
    return any(not same(f, old.get(f), new.get(f)) for f in ("status", "node", "lock", "name"))


class CollectorService:
    """Polls the configured clusters on their schedules; see the module docstring."""

    def __init__(
        self,
        store: EventStore,
        clusters: Sequence[ClusterConfig],
        *,
        fingerprint_key: bytes,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        import os

        env = os.environ if environ is None else environ
        self.store = store
        self._clusters = {c.name: _Cluster(store, c, fingerprint_key, env) for c in clusters}
        self._scheduler: Any = None
        self._leases: dict[str, asyncio.Task[None]] = {}
        self._running: set[asyncio.Task[Any]] = set()
        self._stopping = False

    @property
    def clusters(self) -> list[str]:
        """The names of the configured clusters."""
        return list(self._clusters)

    def _cluster(self, name: str) -> _Cluster:
        try:
            return self._clusters[name]
        except KeyError:
            known = ", ".join(self._clusters) or "none configured"
            raise UnknownClusterError(f"no cluster named {name!r} (known: {known})") from None

    async def start(self) -> None:
        """Take (or stand by for) each cluster's collector lease; while this process holds
        it, the cluster's fast and deep polls are scheduled (the first of each at once) and
        its queued resyncs run."""
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop())
        scheduler.start()
        self._scheduler = scheduler
        for name in self._clusters:
            self._leases[name] = asyncio.create_task(
                leadership.hold(
                    self.store,
                    name,
                    lead=partial(self._lead, name),
                    stand_by=partial(self._stand_by, name),
                    stopping=lambda: self._stopping,
                ),
                name=f"pvetrail-lease-{name}",
            )

    # -- leading a cluster ----------------------------------------------------------------
    def _stand_by(self, name: str) -> None:
        health = self._clusters[name].health
        health.leader = False
        health.state = "standby"

    async def _lead(self, name: str) -> None:
        """While this process holds the cluster's lease: its schedule and its resyncs."""
        cluster = self._clusters[name]
        cluster.health.leader = True
        if cluster.health.state == "standby":
            cluster.health.state = "starting"
        try:
            await cluster.refresh_observations()
            await resyncs.recover(self.store, name)
            self._schedule(cluster)
            await self._work_queue(cluster)
        finally:
            self._unschedule(name)
            cluster.health.leader = False

    def _schedule(self, cluster: _Cluster) -> None:
        from apscheduler.triggers.interval import IntervalTrigger

        now = datetime.now().astimezone()
        for kind, interval in (
            ("deep", cluster.config.deep_interval_s),
            ("fast", cluster.config.fast_interval_s),
        ):
            self._scheduler.add_job(
                self._scheduled,
                IntervalTrigger(seconds=interval, jitter=min(interval * 0.1, 10.0)),
                args=(cluster.name, kind),
                id=f"{kind}:{cluster.name}",
                coalesce=True,
                max_instances=1,
                misfire_grace_time=max(interval, 1),
                next_run_time=now,  # the first run at once, without jitter
                replace_existing=True,
            )

    def _unschedule(self, name: str) -> None:
        scheduler = self._scheduler
        if scheduler is None:
            return
        for kind in ("deep", "fast"):
            with contextlib.suppress(Exception):  # apscheduler's JobLookupError: not scheduled
                scheduler.remove_job(f"{kind}:{name}")

    async def _work_queue(self, cluster: _Cluster) -> None:
        """Run the cluster's queued resyncs, oldest first, until the service stops."""
        wake = resyncs.waker(self.store, cluster.name)
        pruned_at = 0.0
        while not self._stopping:
            wake.clear()  # before looking: a request queued after the look sets it again
            try:
                if time.monotonic() - pruned_at > PRUNE_EVERY_S:
                    await resyncs.prune(self.store)
                    pruned_at = time.monotonic()
                claimed = await resyncs.claim(self.store, cluster.name)
            except EventStoreError as exc:
                log.warning("cluster %s: the resync queue: %s", cluster.name, exc)
                claimed = None
            if claimed is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), resyncs.QUEUE_POLL_S)
                continue
            if self._stopping:  # claimed as the service began to stop: the next leader runs it
                await resyncs.recover(self.store, cluster.name)
                return
            await self._track(self._resync(cluster, claimed))

    async def _resync(self, cluster: _Cluster, resync: resyncs.Resync) -> None:
        scope = resync.scope
        kind = "targeted" if scope.node is not None or scope.vmid is not None else "deep"
        try:
            result = await cluster.poll(kind, scope.node, scope.vmid)
        except asyncio.CancelledError:
            # The poll rolled back: the resync goes back to the queue for the next leader.
            with contextlib.suppress(EventStoreError):
                await resyncs.recover(self.store, cluster.name)
            raise
        except Exception as exc:
            log.warning("resync %s of cluster %s failed: %s", resync.id, cluster.name, exc)
            await resyncs.finish(
                self.store,
                resync.id,
                ok=False,
                events_appended=0,
                error=f"{type(exc).__name__}: {exc}",
            )
            return
        # A poll that observed nothing (Proxmox unreachable, say): the resync did not happen.
        error = None if result.ok else ("; ".join(result.faults) or "the poll observed nothing")
        await resyncs.finish(
            self.store,
            resync.id,
            ok=result.ok,
            events_appended=result.events_appended,
            error=error,
        )

    async def _track(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` as a task that :meth:`stop` lets finish (or cancels after the grace)."""
        task = asyncio.create_task(work)
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        await task

    async def _scheduled(self, name: str, kind: str) -> None:
        if self._stopping:
            return
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            await self._clusters[name].poll(kind)
        except asyncio.CancelledError:
            raise
        except Exception:  # a scheduled poll must never kill the scheduler
            log.exception("cluster %s: %s poll crashed", name, kind)
        finally:
            if task is not None:
                self._running.discard(task)

    async def stop(self, grace_s: float = 30.0) -> None:
        """Stop scheduling; let in-flight polls and resyncs finish (or cancel them: they roll
        back, and a resync goes back to the queue); give up the leases."""
        self._stopping = True
        for name in self._clusters:
            resyncs.wake(self.store, name)  # a leader waiting on its queue looks up now
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.pause()  # no new runs; shutdown() would cancel the running ones at once
        running = list(self._running)
        if running:
            _done, pending = await asyncio.wait(running, timeout=grace_s)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        leases, self._leases = self._leases, {}
        # Leaders leave on their own (their queue loop ends), giving the lease back and
        # closing its connection: cancelling them there could leave the connection open.
        # Stand-bys wait on the lock and are cancelled.
        leading = [t for name, t in leases.items() if self._clusters[name].health.leader]
        if leading:
            await asyncio.wait(leading, timeout=grace_s)
        for task in leases.values():
            task.cancel()
        for task in leases.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        await asyncio.gather(*(c.client.close() for c in self._clusters.values()))

    async def sync(
        self,
        cluster: str,
        *,
        deep: bool = False,
        node: str | None = None,
        vmid: int | None = None,
    ) -> SyncResult:
        """One poll of the cluster now (waits for a running one); targeted with node/vmid."""
        target = self._cluster(cluster)
        if self._stopping:
            raise CollectorError("the collector service is stopping")
        kind = (
            "targeted" if (node is not None or vmid is not None) else ("deep" if deep else "fast")
        )
        return await target.poll(kind, node=node, vmid=vmid)

    def health(self) -> dict[str, ClusterHealth]:
        """Each cluster's collector health (copies: callers may keep them)."""
        return {
            name: msgspec.structs.replace(
                c.health,
                polls_total=dict(c.health.polls_total),
                poll_errors_total=dict(c.health.poll_errors_total),
                last_poll_duration_s=dict(c.health.last_poll_duration_s),
                clock_offsets_s=dict(c.health.clock_offsets_s),
                warnings=list(c.health.warnings),
            )
            for name, c in self._clusters.items()
        }
