"""What the log says about a cluster, and the events that take it to what a poll saw.

:class:`Known` is the fold of a cluster's streams (``{cluster}/...``): every live resource's
state, every stream's version, the tasks already recorded and the UPIDs already used as an
actor. It is built from the log at start and updated with every append, so a restart diffs
against the log, never against memory alone. :func:`diff` compares an
:class:`~collectors.observe.Observation` with it and plans the events: only fields the poll
really observed are compared, values are compared as Proxmox means them
(:func:`collectors.values.same`: ``4`` and ``"4"`` are the same, tags are a set, a masked
secret is never a change), and a resource is removed
only when a complete, successful listing of its scope no longer shows it.

State shape per resource type (every state carries ``collectors.events.STATE_FIELDS``:
``id cluster type node vmid name status tags pool lock config digest``, ``None`` where they
do not apply):

* ``qemu`` / ``lxc`` (``lab/qemu/100``): ``vmid`` int; ``node``, ``name``, ``status``
  (running/stopped/...), ``tags`` (list), ``pool``, ``lock``, ``template`` (0/1) and
  ``ha_state`` (``hastate`` of ``/cluster/resources``) from the fast poll; ``config`` (keys
  and values as Proxmox returns them with ``?current=1``, secrets fingerprinted, without
  ``digest``/``lock``; disks, NICs and mount points are in here), ``digest``, ``pending``
  (key -> queued value), ``pending_delete`` (keys queued for removal) and ``ha`` (the HA
  resource definition: ``state``, ``group``, ``max_restart``, ... or ``None``) from the deep
  poll.
* ``node`` (``lab/node/pve1``): ``node`` and ``name`` its name, ``status`` online/offline.
* ``storage`` (``lab/storage/pve1/local``, one per node it is enabled on): ``storage``,
  ``plugintype`` (= ``storage_type``), ``shared`` (0/1), ``content`` (sorted list),
  ``status`` ("available" when Proxmox says so), ``pool``; deep: ``config`` (the storage.cfg
  entry, secrets fingerprinted), ``active`` and ``enabled`` (0/1) on that node.
* ``pool`` (``lab/pool/prod``): ``name``, ``comment``, ``members`` (sorted resource ids).
* ``snapshot`` (``lab/snapshot/qemu/100/NAME``): ``name``, ``guest`` (the guest's id),
  ``parent``, ``snaptime``, ``description``, ``vmstate``.
* ``backup`` (``lab/backup/STORAGE/VOLUME``): ``name`` (file name), ``guest`` (when the vmid
  is known), ``vmid``, ``storage``, ``volid``, ``ctime``, ``size``, ``format``, ``notes``,
  ``protected``, ``node`` (the node of a non-shared storage, else ``None``).

Tasks are not resources: ``{cluster}/task/{UPID}`` streams hold one ``task_seen`` each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eventstore import Actor, RecordedEvent

from . import events as ev
from .clocks import Clocks, Offset
from .observe import Observation
from .values import GUEST_TYPES, as_int, same, upid_started

State = dict[str, Any]
_IDENTITY = frozenset({"id", "cluster", "type"})
# Types whose every field comes from the fast poll: they may be discovered by it.
_FAST_ONLY = frozenset({"node"})


@dataclass
class Known:
    """The fold of one cluster's streams (see the module docstring)."""

    cluster: str
    states: dict[str, State] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    tasks_seen: set[str] = field(default_factory=set)
    # (UPID, stream, event type) of every attributed event: a task explains one change of
    # each kind per resource (a vzdump both its lock_taken and its lock_released), never two.
    used: set[tuple[str, str, str]] = field(default_factory=set)
    head: int = 0

    def owns(self, stream_id: str) -> bool:
        """Whether a stream belongs to this cluster."""
        return stream_id.startswith(self.cluster + "/")

    def apply(self, recorded: RecordedEvent) -> None:
        """Fold one recorded event (of any cluster; others are only counted in ``head``)."""
        self.head = max(self.head, recorded.position)
        if not self.owns(recorded.stream_id):
            return
        self.versions[recorded.stream_id] = recorded.version
        if recorded.actor is not None and recorded.actor.upid:
            self.used.add((recorded.actor.upid, recorded.stream_id, recorded.type))
        event = ev.decode(recorded.type, recorded.schema_version, recorded.data)
        stream = recorded.stream_id
        match event:
            case ev.TaskSeen():
                self.tasks_seen.add(event.upid)
            case ev.Discovered() | ev.SnapshotCreated() | ev.BackupSeen():
                self.states[stream] = dict(event.state)
            case ev.Removed() | ev.SnapshotRemoved() | ev.BackupRemoved():
                self.states.pop(stream, None)
            case ev.ResourceEvent():
                if stream in self.states:
                    self.states[stream] = ev.apply_changes(self.states[stream], event.changes)

    def forget_tasks(self, started_before: int) -> int:
        """Forget the tasks that started before ``started_before`` (epoch seconds): as
        recorded, as used for an actor, and their streams' versions. Keeps memory flat over
        months; the caller must then ignore such tasks (they would be recorded again).
        Returns how many were forgotten."""

        def old(upid: str) -> bool:
            started = upid_started(upid)
            return started is not None and started < started_before

        gone = {upid for upid in self.tasks_seen if old(upid)}
        self.tasks_seen -= gone
        self.used = {used for used in self.used if not old(used[0])}
        for upid in gone:
            self.versions.pop(f"{self.cluster}/task/{upid}", None)
        return len(gone)


@dataclass
class Planned:
    """An event a poll is about to append, with what attribution and timing need."""

    stream_id: str
    event: ev.Event
    # Which previous observation bounds it: "fast", "deep", "both" (fields of each), "new",
    # "removed" or "task".
    basis: str
    vmid: int | None = None
    actor: Actor | None = None
    observed_after: datetime | None = None


def _dict_rows(
    prefix: str, old: Mapping[str, Any] | None, new: Mapping[str, Any]
) -> list[ev.FieldChange]:
    before = old or {}
    rows = []
    for key in sorted(set(before) | set(new)):
        if key not in new:
            rows.append(ev.FieldChange(f"{prefix}.{key}", before[key], None))
        elif key not in before:
            rows.append(ev.FieldChange(f"{prefix}.{key}", None, new[key]))
        elif not same(key, before[key], new[key]):
            rows.append(ev.FieldChange(f"{prefix}.{key}", before[key], new[key]))
    return rows


def field_rows(old: State, new: State) -> list[ev.FieldChange]:
    """The field changes from ``old`` to the observed fields of ``new``."""
    rows: list[ev.FieldChange] = []
    for name in sorted(new):
        if name in _IDENTITY or (name == "node" and new.get("type") == "backup"):
            continue  # a backup's node only says which listing showed it
        if name in ("config", "pending"):
            rows.extend(_dict_rows(name, old.get(name), new[name] or {}))
        elif not same(name, old.get(name), new[name]):
            rows.append(ev.FieldChange(name, old.get(name), new[name]))
    return rows


_ORDER = (
    ev.Migrated,
    ev.StatusChanged,
    ev.Renamed,
    ev.LockReleased,
    ev.LockTaken,
    ev.TagsChanged,
    ev.PoolChanged,
    ev.ConfigChanged,
    ev.PendingChangeApplied,
    ev.PendingChangeSeen,
    ev.FieldsChanged,
)
# Fields only a deep poll observes (besides every field of these types).
_DEEP_FIELDS = frozenset({"digest", "pending_delete", "ha", "active", "enabled"})
_DEEP_ONLY = frozenset({"snapshot", "backup", "pool"})


def _basis(resource_type: str, event: ev.Event) -> str:
    """Whether an event's fields come from the fast poll's answer, deep ones, or both."""
    assert isinstance(event, ev.ResourceEvent)
    deep = {
        resource_type in _DEEP_ONLY
        or row.field in _DEEP_FIELDS
        or row.field.startswith(("config.", "pending."))
        for row in event.changes
    }
    return "both" if len(deep) > 1 else ("deep" if True in deep else "fast")


def _event_class(resource_type: str, row: ev.FieldChange) -> type[ev.ResourceEvent]:
    name = row.field
    guest = resource_type in GUEST_TYPES
    if name == "node" and guest:
        return ev.Migrated
    if name == "status":
        return ev.StatusChanged
    if name == "name":
        return ev.Renamed
    if name == "lock":
        return ev.LockTaken if row.new is not None else ev.LockReleased
    if name == "tags":
        return ev.TagsChanged
    if name == "pool" and guest:
        return ev.PoolChanged
    if guest and (name.startswith("config.") or name == "digest"):
        return ev.ConfigChanged
    if guest and name.startswith("pending."):
        return ev.PendingChangeApplied if row.new is None else ev.PendingChangeSeen
    if guest and name == "pending_delete":
        grew = set(row.new or []) - set(row.old or [])
        return ev.PendingChangeSeen if grew else ev.PendingChangeApplied
    return ev.FieldsChanged


def group_rows(resource_type: str, rows: Iterable[ev.FieldChange], digest: Any) -> list[ev.Event]:
    """The field changes of one resource as typed events, in a fixed order."""
    grouped: dict[type[ev.ResourceEvent], list[ev.FieldChange]] = {}
    digest_rows: list[ev.FieldChange] = []
    for row in rows:
        if row.field == "digest" and resource_type in GUEST_TYPES:
            digest_rows.append(row)
            continue
        grouped.setdefault(_event_class(resource_type, row), []).append(row)
    if digest_rows:
        # The config file's checksum changes with whatever changed the file: it travels with
        # that event (a lock taken or released, pending values), and alone only when nothing
        # else explains it (a secret Proxmox masks was rotated, a snapshot section changed).
        home: type[ev.ResourceEvent] = ev.ConfigChanged
        if ev.ConfigChanged not in grouped:
            explained = (
                ev.LockTaken,
                ev.LockReleased,
                ev.PendingChangeSeen,
                ev.PendingChangeApplied,
            )
            home = next((c for c in explained if c in grouped), ev.ConfigChanged)
        grouped.setdefault(home, []).extend(digest_rows)
    out: list[ev.Event] = []
    for event_class in _ORDER:
        if event_class not in grouped:
            continue
        if event_class is ev.ConfigChanged:
            out.append(ev.ConfigChanged(changes=grouped[event_class], digest=digest))
        else:
            out.append(event_class(changes=grouped[event_class]))
    return out


def scope_of(rid: str, state: Mapping[str, Any] | None) -> str:
    """The listing that shows a resource, and whose completeness allows its removal."""
    if state is None:  # present but unobserved: what its id says
        parts = rid.split("/")
        state = {"type": parts[1] if len(parts) > 1 else ""}
        if state["type"] == "snapshot" and len(parts) >= 5:
            state["guest"] = "/".join([parts[0], parts[2], parts[3]])
    kind = state.get("type")
    if kind in GUEST_TYPES:
        return "guests"
    if kind == "node":
        return "nodes"
    if kind == "storage":
        return "storages"
    if kind == "pool":
        return "pools"
    if kind == "snapshot":
        return f"snapshots:{state.get('guest')}"
    if kind == "backup":
        return f"backups:{state.get('storage')}:{state.get('node') or ''}"
    return f"unknown:{kind}"


def _full(state: State) -> State:
    full: State = dict.fromkeys(ev.STATE_FIELDS)
    full.update(state)
    full.setdefault("tags", [])
    if full["tags"] is None:
        full["tags"] = []
    return full


def _vmid_of(state: Mapping[str, Any], known: Known) -> int | None:
    if state.get("type") in GUEST_TYPES or state.get("type") == "backup":
        vmid = state.get("vmid")
        return vmid if isinstance(vmid, int) else None
    guest = state.get("guest")
    if isinstance(guest, str):
        vmid = guest.rsplit("/", 1)[-1]
        return int(vmid) if vmid.isdigit() else None
    return None


def diff(known: Known, obs: Observation) -> list[Planned]:
    """The events that take ``known`` to what ``obs`` saw (see the module docstring)."""
    return diff_resources(known, obs) + diff_tasks(known, obs)


def diff_resources(known: Known, obs: Observation) -> list[Planned]:
    """The resources' events of :func:`diff`: what changed, appeared or went away."""
    planned: list[Planned] = []
    for rid, new in obs.states.items():
        old = known.states.get(rid)
        kind = new["type"]
        if old is None:
            if kind not in _FAST_ONLY and rid not in obs.deep_ids:
                continue  # seen only in part: discovered when a deep poll sees all of it
            state = _full(new)
            event: ev.Event
            if kind == "snapshot":
                event = ev.SnapshotCreated(state=state)
            elif kind == "backup":
                event = ev.BackupSeen(state=state)
            else:
                event = ev.Discovered(state=state)
            planned.append(Planned(rid, event, "new", _vmid_of(state, known)))
            continue
        rows = field_rows(old, new)
        if not rows:
            continue
        learned, rows = _learned(old, new, rows)
        if learned is not None:
            planned.append(Planned(rid, learned, _basis(kind, learned), _vmid_of(old, known)))
        for item in group_rows(kind, rows, new.get("digest", old.get("digest"))):
            planned.append(Planned(rid, item, _basis(kind, item), _vmid_of(old, known)))
    # Listed but unobserved (an offline node's): discovered with what is sure, once.
    for rid, partial in obs.partial.items():
        if rid not in known.states and rid not in obs.states:
            state = _full(partial)
            planned.append(Planned(rid, ev.Discovered(state=state), "new", _vmid_of(state, known)))
    # Removals: only inside a scope listed completely and successfully.
    complete = set(obs.complete)
    for rid, old in known.states.items():
        if old.get("type") in GUEST_TYPES and "guests" in complete and rid not in obs.present:
            complete.add(f"snapshots:{rid}")  # a destroyed guest's snapshots went with it
    for rid, old in sorted(known.states.items()):
        if rid in obs.present or rid in obs.states or scope_of(rid, old) not in complete:
            continue
        kind = old.get("type")
        gone: ev.Event
        if kind == "snapshot":
            gone = ev.SnapshotRemoved()
        elif kind == "backup":
            gone = ev.BackupRemoved()
        else:
            gone = ev.Removed()
        planned.append(Planned(rid, gone, "removed", _vmid_of(old, known)))
    return planned


def diff_tasks(known: Known, obs: Observation) -> list[Planned]:
    """The ``task_seen`` events of :func:`diff`: finished tasks not yet recorded."""
    planned: list[Planned] = []
    for task in obs.tasks:
        upid = task["upid"]
        if upid in known.tasks_seen:
            continue
        user, token = split_user(task)
        planned.append(
            Planned(
                f"{known.cluster}/task/{upid}",
                ev.TaskSeen(
                    upid=upid,
                    node=str(task.get("node") or ""),
                    task_type=str(task["type"]),
                    task_id=str(task.get("id") or "") or None,
                    user=user,
                    token=token,
                    starttime=as_int(task.get("starttime")),
                    endtime=as_int(task.get("endtime")),
                    status=_task_status(task),
                ),
                "task",
            )
        )
    return planned


def _learned(
    old: State, new: State, rows: list[ev.FieldChange]
) -> tuple[ev.Learned | None, list[ev.FieldChange]]:
    """Split off the rows of fields ``old`` did not know (its ``unknown``): learned, not changed."""
    unknown = old.get("unknown")
    if not unknown:
        return None, rows
    learned = [r for r in rows if r.field.partition(".")[0] in unknown]
    rest = [r for r in rows if r.field.partition(".")[0] not in unknown]
    still = [f for f in unknown if f not in new]
    if not learned and still == unknown:
        return None, rest
    learned.append(ev.FieldChange("unknown", unknown, still or None))
    return ev.Learned(changes=learned), rest


def _task_status(task: Mapping[str, Any]) -> str | None:
    value = task.get("exitstatus") or task.get("status")
    return str(value) if value is not None else None


def split_user(task: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(user, token) of a task: ``root@pam`` and ``root@pam!ci`` for a token's task."""
    raw = str(task.get("user") or "") or None
    if raw is None:
        return None, None
    user, bang, name = raw.partition("!")
    token_name = task.get("tokenid") or (name if bang else None)
    token = f"{user}!{token_name}" if token_name else None
    return user, token


# Which task types can explain which event (pve-api.md §4.14).
_TASKS_FOR: dict[str, frozenset[str]] = {
    "discovered": frozenset(
        {"qmcreate", "vzcreate", "qmclone", "vzclone", "qmrestore", "vzrestore"}
    ),
    "removed": frozenset({"qmdestroy", "vzdestroy"}),
    "migrated": frozenset({"qmigrate", "vzmigrate", "hamigrate"}),
    "status_changed": frozenset(
        {
            "qmstart",
            "qmstop",
            "qmshutdown",
            "qmreboot",
            "qmreset",
            "qmsuspend",
            "qmpause",
            "qmresume",
            "vzstart",
            "vzstop",
            "vzshutdown",
            "vzreboot",
            "vzsuspend",
            "vzresume",
            "hastart",
            "hastop",
            "qmrollback",
            "vzrollback",
        }
    ),
    "renamed": frozenset({"qmconfig", "vzconfig"}),
    "tags_changed": frozenset({"qmconfig", "vzconfig"}),
    "pool_changed": frozenset({"qmconfig", "vzconfig"}),
    # a start or reboot applies pending values: the config changes then
    "config_changed": frozenset(
        {
            "qmconfig",
            "vzconfig",
            "qmrollback",
            "vzrollback",
            "resize",
            "qmmove",
            "qmstart",
            "qmreboot",
            "vzstart",
            "vzreboot",
        }
    ),
    "pending_change_seen": frozenset({"qmconfig", "vzconfig"}),
    "pending_change_applied": frozenset({"qmstart", "qmreboot", "vzstart", "vzreboot", "qmconfig"}),
    "lock_taken": frozenset(
        {
            "vzdump",
            "qmigrate",
            "vzmigrate",
            "qmsnapshot",
            "vzsnapshot",
            "qmdelsnapshot",
            "vzdelsnapshot",
            "qmrollback",
            "vzrollback",
            "qmclone",
            "vzclone",
        }
    ),
    "snapshot_created": frozenset({"qmsnapshot", "vzsnapshot"}),
    "snapshot_removed": frozenset({"qmdelsnapshot", "vzdelsnapshot"}),
    "backup_seen": frozenset({"vzdump"}),
}
_TASKS_FOR["lock_released"] = _TASKS_FOR["lock_taken"]


def task_span(task: Mapping[str, Any], offset: Offset) -> tuple[float, float]:
    """When a task may have been running, on our clock: ``(earliest start, latest end)``.

    Its times are whole seconds of its node's clock (the real start lies in
    ``[starttime, starttime + 1)``), corrected by the node's offset interval; a task still
    running has no end yet.
    """
    start = (as_int(task.get("starttime")) or 0) - offset.high
    end = as_int(task.get("endtime"))
    return start, (end + 1.0 - offset.low) if end is not None else float("inf")


def attribute(
    planned: Planned,
    tasks: Iterable[Mapping[str, Any]],
    used: set[tuple[str, str, str]],
    observed_at: datetime,
    clocks: Clocks,
) -> None:
    """Set ``planned.actor`` from the latest fitting task, if any.

    Fitting: a task type that can cause the event, the same guest (``id`` is the vmid; a
    ``vzdump`` of several guests has an empty id), whose whole span (start to end, or still
    running; corrected by its node's clock offset) overlaps the change's window
    ``(observed_after, observed_at]``, and not already the actor of an event of this type on
    this resource.
    """
    if planned.vmid is None or planned.observed_after is None:
        return
    kind = ev.type_of(planned.event)
    types = _TASKS_FOR.get(kind)
    if not types:
        return
    low, high = planned.observed_after.timestamp(), observed_at.timestamp()
    best: Mapping[str, Any] | None = None
    best_start = 0.0
    for task in tasks:
        upid = str(task["upid"])
        if task.get("type") not in types or (upid, planned.stream_id, kind) in used:
            continue
        task_id = str(task.get("id") or "")
        if task_id != str(planned.vmid) and not (task["type"] == "vzdump" and task_id == ""):
            continue
        start, end = task_span(task, clocks.offset(str(task.get("node") or "")))
        if start > high or end <= low:
            continue
        if best is None or (start, upid) > (best_start, str(best["upid"])):
            best, best_start = task, start
    if best is not None:
        user, token = split_user(best)
        planned.actor = Actor(user=user, token=token, upid=str(best["upid"]))
