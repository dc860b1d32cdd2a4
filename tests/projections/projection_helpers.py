"""Helpers of the projection tests: events written with the collectors' vocabulary, random
event sequences, a naive fold of the log (the oracle), and the projection tables' rows."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from collectors.events import (
    CREATES,
    ENDS,
    BackupSeen,
    ConfigChanged,
    Discovered,
    Event,
    FieldChange,
    FieldsChanged,
    LockReleased,
    LockTaken,
    Migrated,
    PoolChanged,
    Removed,
    Renamed,
    ResourceEvent,
    SnapshotCreated,
    SnapshotRemoved,
    StatusChanged,
    TagsChanged,
    TaskSeen,
    apply_changes,
    decode,
    encode,
    type_of,
)
from eventstore import Actor, EventStore, NewEvent, RecordedEvent
from eventstore.postgres import PostgresEventStore, lock_key
from eventstore.sqlite import SQLiteEventStore
from projections.models import Resource
from projections.runner import RUNNER_LOCK
from tests.outside import open_handles

T0 = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
"""Base time of the tests' events: in the past, so queries about it are not 'the future'."""


def at(seconds: float) -> datetime:
    """T0 plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


def new(
    stream_id: str,
    event: Event,
    seconds: float,
    *,
    observed_after: float | None = None,
    actor: Actor | None = None,
) -> NewEvent:
    """An event of the vocabulary on ``stream_id``, observed ``seconds`` after T0."""
    return NewEvent(
        stream_id=stream_id,
        type=type_of(event),
        data=encode(event),
        observed_at=at(seconds),
        observed_after=at(observed_after) if observed_after is not None else None,
        actor=actor,
    )


def guest_state(rid: str, **fields: Any) -> dict[str, Any]:
    """A guest's whole state as the collectors write it in ``discovered``."""
    cluster, kind, vmid = rid.split("/")
    state: dict[str, Any] = {
        "id": rid,
        "cluster": cluster,
        "type": kind,
        "node": "pve1",
        "vmid": int(vmid),
        "name": f"vm{vmid}",
        "status": "running",
        "tags": [],
        "pool": None,
        "lock": None,
        "config": {},
        "digest": None,
    }
    state.update(fields)
    return state


def change(field: str, old: Any, new_value: Any) -> list[FieldChange]:
    """One field change as a list."""
    return [FieldChange(field, old, new_value)]


# -- random sequences ------------------------------------------------------------------------
GUESTS = ["lab/qemu/100", "lab/qemu/101", "lab/qemu/102", "lab/lxc/200", "lab/lxc/201"]
SNAPSHOT = "lab/snapshot/qemu/100/before"
BACKUP = "lab/backup/local/backup/vzdump-qemu-101-2025_06_01-00_00_01.vma.zst"
NODES = ["pve1", "pve2", "pve3"]
DISKS = [
    "local-lvm:vm-{v}-disk-0,size=32G",
    "ceph:vm-{v}-disk-1",
    "none,media=cdrom",
    "local:iso/debian.iso,media=cdrom",
    "/mnt/host,mp=/data",
]
NETS = [
    "virtio=AA:BB,bridge=vmbr0",
    "virtio=AA:BB,bridge=vmbr0,tag=10",
    "name=eth0,bridge=vmbr1,tag=20",
]


def random_events(rng: random.Random, count: int) -> list[NewEvent]:
    """A plausible random log: discoveries, changes of every kind, removals and comebacks,
    snapshots, backups and tasks; times mostly rising, sometimes equal, sometimes stepping
    back (a collector's clock), so effective times are exercised."""
    alive: dict[str, dict[str, Any]] = {}
    clock = 0.0
    events: list[NewEvent] = []
    for n in range(count):
        step = rng.choice([0.0, 1.0, 1.0, 2.0, 3.5])
        if rng.random() < 0.08:
            step = -rng.choice([1.0, 4.0])
        clock = max(0.0, clock + step)
        actor = (
            Actor(user=rng.choice(["root@pam", "ops@pve"]), upid=f"UPID:{n}")
            if (rng.random() < 0.3)
            else None
        )
        roll = rng.random()
        if roll < 0.05:
            events.append(
                new(
                    f"lab/task/UPID:{n}",
                    TaskSeen(upid=f"UPID:{n}", node="pve1", task_type="qmstart"),
                    clock,
                )
            )
            continue
        if roll < 0.12:
            if SNAPSHOT in alive:
                events.append(new(SNAPSHOT, SnapshotRemoved(), clock))
                del alive[SNAPSHOT]
            else:
                alive[SNAPSHOT] = {"name": "before", "parent": None, "vmid": 100}
                events.append(new(SNAPSHOT, SnapshotCreated(state=alive[SNAPSHOT]), clock))
            continue
        if roll < 0.16:
            if BACKUP not in alive:
                alive[BACKUP] = {"vmid": 101, "subtype": "qemu", "size": rng.randint(1, 9)}
                events.append(new(BACKUP, BackupSeen(state=alive[BACKUP]), clock))
            continue
        rid = rng.choice(GUESTS)
        vmid = rid.rsplit("/", 1)[1]
        if rid not in alive:
            config = {
                f"scsi{i}": rng.choice(DISKS).format(v=vmid) for i in range(rng.randint(0, 2))
            }
            if rng.random() < 0.7:
                config["net0"] = rng.choice(NETS)
            state = guest_state(
                rid,
                node=rng.choice(NODES),
                config=config,
                tags=sorted(rng.sample(["a", "b", "prod"], rng.randint(0, 2))),
            )
            alive[rid] = state
            events.append(new(rid, Discovered(state=state), clock, actor=actor))
            continue
        state = alive[rid]
        kind = rng.random()
        event: Event
        if kind < 0.08:
            event = Removed()
            events.append(new(rid, event, clock, observed_after=max(0.0, clock - 1)))
            del alive[rid]
            continue
        if kind < 0.35:
            key = rng.choice(["memory", "cores", "scsi0", "scsi1", "net0", "net1", "ide2"])
            value: Any = rng.choice([None, 1024, "2048", 4, "4"])
            if key.startswith("scsi") or key == "ide2":
                value = rng.choice(DISKS).format(v=vmid) if rng.random() < 0.8 else None
            elif key.startswith("net"):
                value = rng.choice([None, *NETS])
            old = state["config"].get(key)
            if old == value:
                continue
            event = ConfigChanged(
                changes=change(f"config.{key}", old, value), digest=rng.choice([None, f"d{n}"])
            )
        elif kind < 0.5:
            new_status = "stopped" if state["status"] == "running" else "running"
            event = StatusChanged(changes=change("status", state["status"], new_status))
        elif kind < 0.6:
            target = rng.choice([x for x in NODES if x != state["node"]])
            event = Migrated(changes=change("node", state["node"], target))
        elif kind < 0.68:
            event = Renamed(changes=change("name", state["name"], f"n{n}"))
        elif kind < 0.76:
            tags = sorted(rng.sample(["a", "b", "prod", "web"], rng.randint(0, 3)))
            event = TagsChanged(changes=change("tags", state["tags"], tags))
        elif kind < 0.84:
            event = PoolChanged(changes=change("pool", state["pool"], rng.choice([None, "prod"])))
        elif kind < 0.92:
            if state["lock"] is None:
                event = LockTaken(changes=change("lock", None, "backup"))
            else:
                event = LockReleased(changes=change("lock", state["lock"], None))
        else:
            event = FieldsChanged(
                changes=change("ha_state", state.get("ha_state"), rng.choice([None, "started"]))
            )
        assert isinstance(event, ResourceEvent)
        new_state = apply_changes(state, event.changes)
        if isinstance(event, ConfigChanged) and event.digest is not None:
            new_state["digest"] = event.digest
        alive[rid] = new_state
        events.append(new(rid, event, clock, actor=actor))
    return events


# -- the oracle ------------------------------------------------------------------------------
def naive_states(
    log: list[RecordedEvent], *, t: datetime | None = None, p: int | None = None
) -> dict[str, dict[str, Any]]:
    """Every resource alive at (t, p) by folding the log from the start: per stream, the
    longest prefix of its events (up to position p) whose observed_at are all at or before t.
    """
    states: dict[str, dict[str, Any] | None] = {}
    blocked: set[str] = set()
    for e in log:
        if p is not None and e.position > p:
            break
        if e.type == "task_seen" or e.stream_id in blocked:
            continue
        if t is not None and e.observed_at > t:
            blocked.add(e.stream_id)  # later events of this stream count no earlier than this
            continue
        payload = decode(e.type, e.schema_version, e.data)
        parts = e.stream_id.split("/")
        identity = {"id": e.stream_id, "cluster": parts[0], "type": parts[1]}
        current = states.get(e.stream_id)
        if e.type in CREATES:
            states[e.stream_id] = {**identity, **getattr(payload, "state", {})}
        elif e.type in ENDS:
            states[e.stream_id] = None
        else:
            assert isinstance(payload, ResourceEvent)
            new_state = apply_changes(current if current is not None else identity, payload.changes)
            if isinstance(payload, ConfigChanged) and payload.digest is not None:
                new_state["digest"] = payload.digest
            states[e.stream_id] = new_state
    return {rid: s for rid, s in states.items() if s is not None}


def normalise(state: dict[str, Any]) -> dict[str, Any]:
    """A state without absent values (None, empty objects and lists mean 'not set')."""
    return {k: v for k, v in state.items() if v is not None and v != {} and v != []}


def resource_state(resource: Resource) -> dict[str, Any]:
    """The state a Resource answer describes, normalised like :func:`normalise`."""
    state: dict[str, Any] = {
        "id": resource.id,
        "cluster": resource.cluster,
        "type": resource.type,
        "node": resource.node,
        "vmid": resource.vmid,
        "name": resource.name,
        "status": resource.status,
        "tags": resource.tags,
        "pool": resource.pool,
        "lock": resource.lock,
        "config": resource.config,
        "digest": resource.digest,
        "pending": resource.pending,
        **resource.extra,
    }
    return normalise(state)


async def read_log(store: EventStore) -> list[RecordedEvent]:
    """The whole log."""
    return [e async for e in store.read_all(0)]


# -- table contents --------------------------------------------------------------------------
TABLE_KEYS = {
    "proj_resources": "resource_id",
    "proj_versions": "resource_id, valid_from_position",
    "proj_edges": "from_id, rel, to_id, attrs, since_position",
    "proj_configs": "position",
    "projection_checkpoints": "name",
}


async def table_rows(store: EventStore) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every projection table, in key order."""
    rows: dict[str, list[tuple[Any, ...]]] = {}
    async with store.read_connection() as conn:
        for table, key in TABLE_KEYS.items():
            found = await conn.fetch(f"SELECT * FROM {table} ORDER BY {key}")
            rows[table] = [tuple(r) for r in found]
    return rows


# -- the runner lock, seen from outside --------------------------------------------------------
async def runner_lock_contenders(store: EventStore) -> int:
    """How many ask for the runner lock now: its holder and those refused who keep the
    attempt open while they stand by. SQLite: handles this process has open on the lock
    file. PostgreSQL: the holder of this schema's advisory lock, plus sessions whose last
    statement was a refused ``pg_try_advisory_lock`` (any schema's: an upper estimate)."""
    if isinstance(store, SQLiteEventStore):
        return open_handles(f"{store.path}.lock-{RUNNER_LOCK}")
    assert isinstance(store, PostgresEventStore)
    key = lock_key("pvetrail.named", store.schema or "public", RUNNER_LOCK)
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    async with store.read_connection() as conn:
        [(holders,)] = await conn.fetch(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND classid::bigint = ? AND objid::bigint = ? AND objsubid = 1",
            (unsigned >> 32, unsigned & 0xFFFF_FFFF),
        )
        [(refused,)] = await conn.fetch(
            "SELECT count(*) FROM pg_stat_activity a WHERE datname = current_database() "
            "AND query = 'SELECT pg_try_advisory_lock($1)' AND NOT EXISTS (SELECT 1 FROM "
            "pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.granted)",
            (),
        )
    return int(holders) + int(refused)
