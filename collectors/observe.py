"""What one poll saw: fetch Proxmox VE endpoints and shape the answers into resource states.

An :class:`Observation` holds, per resource id, the fields this poll actually observed (a
fast poll observes ``status``/``node``/``name``/... but not ``config``; a guest on an offline
node observes nothing but what its entry says for sure: ``partial``), the *scopes* that were
listed completely and successfully (only inside a complete scope may an absent resource be
called removed), the tasks seen (finished, and still running), when each request behind it
was sent, and the faults met. Nothing here compares with the past: that is
:mod:`collectors.state`.

Entries that make no sense (no id, a vmid that is not a number, fakepve's placeholder HA
resource ``sid: "fake"``) are skipped and logged, never fatal to the poll.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .client import Answer, PveClient, PveRequestError
from .secrets import redact_config
from .values import (
    GUEST_TYPES,
    as_flag,
    as_int,
    content_list,
    parse_backup_name,
    parse_volid,
    split_list,
    split_tags,
)

log = logging.getLogger(__name__)

State = dict[str, Any]

FAST_GUEST_FIELDS = ("node", "name", "status", "tags", "pool", "lock", "ha_state", "template")
DEEP_GUEST_FIELDS = ("config", "pending", "pending_delete", "digest", "ha")
# What an entry of an offline node's guest or storage does not say (pve-api.md §7): the
# ``unknown`` fields of a resource discovered from such an entry, learned later.
UNKNOWN_GUEST_FIELDS = ["name", "status", "template", *DEEP_GUEST_FIELDS]
UNKNOWN_STORAGE_FIELDS = ["status", "config", "active", "enabled"]
# Config keys that are not configuration: lock is its own field, digest the file's checksum.
_CONFIG_SKIP = frozenset({"digest", "lock"})
# Tasks read per page of a node's task log (Proxmox answers 50 by default). The log is read
# incrementally (``since``), page after page while a page is full and reaches back no further
# than ``since``, so a busy node never loses a task between two polls.
TASK_LIMIT = 500
TASK_PAGES = 20
# Task times are whole seconds of the node's clock: read back this much further.
TASK_SLACK_S = 2


@dataclass
class Observation:
    """One poll's view of a cluster (see the module docstring)."""

    cluster: str
    kind: str
    states: dict[str, State] = field(default_factory=dict)
    # Resources listed but unobserved (an offline node's): what the entry says for sure, for
    # a first discovery only; never compared with a known state.
    partial: dict[str, State] = field(default_factory=dict)
    complete: set[str] = field(default_factory=set)
    present: set[str] = field(default_factory=set)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    error_kinds: list[str] = field(default_factory=list)
    offline_nodes: set[str] = field(default_factory=set)
    quorate: bool = True
    resources_ok: bool = False
    deep_ids: set[str] = field(default_factory=set)
    observed_at: datetime | None = None
    # When the requests behind what was seen were sent (our clock), for observed_after:
    fast_sent: datetime | None = None  # /cluster/status and /cluster/resources
    sent: dict[str, datetime] = field(default_factory=dict)  # resource id -> its deep answers
    scope_sent: dict[str, datetime] = field(default_factory=dict)  # complete scope -> listing
    running: list[dict[str, Any]] = field(default_factory=list)  # tasks still running
    task_nodes: set[str] = field(default_factory=set)  # nodes whose task log was read

    def deep_seen(self, rid: str, *answers: Answer) -> None:
        """The resource's deep fields were observed by these answers."""
        first = min(a.sent for a in answers)
        self.deep_ids.add(rid)
        self.sent[rid] = min(first, self.sent.get(rid, first))

    def scope_done(self, scope: str, *answers: Answer) -> None:
        """A scope was listed completely by these answers."""
        self.complete.add(scope)
        self.scope_sent[scope] = min(a.sent for a in answers)

    def fault(self, what: str, exc: PveRequestError) -> None:
        """Record a failed request: it leaves what it would have shown unobserved."""
        self.faults.append(f"{what}: {exc}")
        self.error_kinds.append(exc.kind)

    def rid(self, *parts: object) -> str:
        """A resource id of this cluster."""
        return "/".join([self.cluster, *(str(p) for p in parts)])


def guest_id(cluster: str, kind: str, vmid: int) -> str:
    """``lab/qemu/100``."""
    return f"{cluster}/{kind}/{vmid}"


class Observer:
    """Fetches one cluster's endpoints through a :class:`PveClient` into an Observation."""

    def __init__(self, client: PveClient, fingerprint_key: bytes) -> None:
        self.client = client
        self.cluster = client.cluster.name
        self._key = fingerprint_key
        self._old_pools = False  # the cluster refused /pools?poolid= (before PVE 8.1)
        # Per node: where the next read of its task log starts (its clock, epoch seconds).
        self._task_since: dict[str, int] = {}

    async def _get(self, obs: Observation, path: str, **params: Any) -> Answer | None:
        """GET ``path``; None (and a fault) when it failed."""
        try:
            return await self.client.fetch(path, **params)
        except PveRequestError as exc:
            query = "&".join(f"{k}={v}" for k, v in params.items() if k != "current")
            obs.fault(f"GET /{path}" + (f"?{query}" if query else ""), exc)
            return None

    # -- fast -----------------------------------------------------------------------------
    async def fast(self, obs: Observation) -> None:
        """``/cluster/status`` (quorum, node online state) and ``/cluster/resources``."""
        status_answer, resources_answer = await asyncio.gather(
            self._get(obs, "cluster/status"), self._get(obs, "cluster/resources")
        )
        status = status_answer.data if status_answer else None
        resources = resources_answer.data if resources_answer else None
        online: dict[str, bool] = {}
        status_ok = isinstance(status, list)
        if isinstance(status, list):
            for entry in status:
                if not isinstance(entry, dict):
                    continue
                if entry.get("type") == "cluster":
                    obs.quorate = as_flag(entry.get("quorate", 1)) == 1
                elif entry.get("type") == "node" and entry.get("name"):
                    online[str(entry["name"])] = as_flag(entry.get("online", 0)) == 1
        elif status is not None:
            obs.faults.append("GET /cluster/status: answer is not a list")
        if not isinstance(resources, list):
            if resources is not None:
                obs.faults.append("GET /cluster/resources: answer is not a list")
            return
        # Without /cluster/status, a node's own resource entry says whether it is online.
        for entry in resources:
            if isinstance(entry, dict) and entry.get("type") == "node" and entry.get("node"):
                name = str(entry["node"])
                if name not in online:
                    online[name] = entry.get("status") == "online"
        obs.offline_nodes = {name for name, up in online.items() if not up}
        for name in sorted(obs.offline_nodes):
            obs.faults.append(f"node {name} is offline: its guests and storages are unobserved")
            obs.error_kinds.append("node_offline")
        for entry in resources:
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                log.warning(
                    "cluster %s: skipped a /cluster/resources entry without id", obs.cluster
                )
                continue
            kind = entry.get("type")
            if kind in GUEST_TYPES:
                self._guest_entry(obs, entry)
            elif kind == "node":
                self._node_entry(obs, entry, online)
            elif kind == "storage":
                self._storage_entry(obs, entry)
            # pools come from /pools (deep); sdn/network entries are not tracked (yet).
        obs.resources_ok = True
        assert resources_answer is not None
        obs.fast_sent = resources_answer.sent
        if status_answer is not None:
            obs.fast_sent = min(obs.fast_sent, status_answer.sent)
        if status_ok and obs.quorate:
            assert status_answer is not None
            for scope in ("guests", "nodes", "storages"):
                obs.scope_done(scope, status_answer, resources_answer)
        elif not obs.quorate:
            obs.faults.append("cluster is not quorate: nothing is removed")
            obs.error_kinds.append("quorum")

    def _guest_entry(self, obs: Observation, entry: Mapping[str, Any]) -> None:
        kind = str(entry["type"])
        vmid = as_int(entry.get("vmid"))
        if vmid is None:
            match = re.match(r"^(qemu|lxc)/(\d+)$", str(entry["id"]))
            vmid = int(match.group(2)) if match else None
        node = entry.get("node")
        if vmid is None or not isinstance(node, str) or not node:
            log.warning("cluster %s: skipped guest entry %r", obs.cluster, entry.get("id"))
            return
        rid = guest_id(obs.cluster, kind, vmid)
        obs.present.add(rid)
        status = entry.get("status")
        state: State = {
            "id": rid,
            "cluster": obs.cluster,
            "type": kind,
            "vmid": vmid,
            "node": node,
            # config-derived: true even when the node is offline (pve-api.md §7)
            "tags": split_tags(entry.get("tags")),
            "pool": entry.get("pool") or None,
            "lock": entry.get("lock") or None,
            "ha_state": entry.get("hastate") or None,
        }
        # A guest on an offline node, or whose status is unknown, shows stale or no stats
        # (pve-api.md §7): it is present (never removed) but unobserved; what is sure about
        # it is kept for its first discovery only.
        if node in obs.offline_nodes or status in (None, "unknown") or "name" not in entry:
            unknown = list(UNKNOWN_GUEST_FIELDS)
            obs.partial[rid] = state | {"name": None, "status": "unknown", "unknown": unknown}
            return
        state["name"] = str(entry["name"])
        state["status"] = str(status)
        state["template"] = as_flag(entry.get("template", 0))
        obs.states[rid] = state

    def _node_entry(
        self, obs: Observation, entry: Mapping[str, Any], online: Mapping[str, bool]
    ) -> None:
        name = str(entry.get("node") or "")
        if not name:
            log.warning("cluster %s: skipped node entry %r", obs.cluster, entry.get("id"))
            return
        rid = obs.rid("node", name)
        obs.present.add(rid)
        status = "online" if online.get(name) else "offline"
        if name not in online and entry.get("status") not in ("online", "offline"):
            return  # "unknown": neither membership nor stats say anything
        obs.states[rid] = {
            "id": rid,
            "cluster": obs.cluster,
            "type": "node",
            "vmid": None,
            "node": name,
            "name": name,
            "status": status,
        }

    def _storage_entry(self, obs: Observation, entry: Mapping[str, Any]) -> None:
        sid, node = entry.get("storage"), entry.get("node")
        if not isinstance(sid, str) or not isinstance(node, str) or not sid or not node:
            log.warning("cluster %s: skipped storage entry %r", obs.cluster, entry.get("id"))
            return
        rid = obs.rid("storage", node, sid)
        obs.present.add(rid)
        plugintype = entry.get("plugintype")
        state: State = {
            "id": rid,
            "cluster": obs.cluster,
            "type": "storage",
            "vmid": None,
            "node": node,
            "name": sid,
            "storage": sid,
            "plugintype": plugintype,
            "storage_type": plugintype,
            "shared": as_flag(entry.get("shared", 0)),
            "content": content_list(entry.get("content")),
            "pool": entry.get("pool") or None,
        }
        if node in obs.offline_nodes:  # its status is stale or unknown (pve-api.md §7)
            unknown = list(UNKNOWN_STORAGE_FIELDS)
            obs.partial[rid] = state | {"status": "unknown", "unknown": unknown}
            return
        if entry.get("status") == "available":
            state["status"] = "available"
        obs.states[rid] = state

    # -- deep -----------------------------------------------------------------------------
    async def guests_deep(self, obs: Observation, rids: Iterable[str]) -> None:
        """Config (current values), pending changes and snapshots of these guests."""
        jobs = [self._guest_deep(obs, rid) for rid in rids if rid in obs.states]
        await asyncio.gather(*jobs)

    async def _guest_deep(self, obs: Observation, rid: str) -> None:
        state = obs.states[rid]
        kind, vmid, node = state["type"], state["vmid"], state["node"]
        base = f"nodes/{node}/{kind}/{vmid}"
        config_answer, pending_answer, snapshots_answer = await asyncio.gather(
            self._get(obs, f"{base}/config", current=1),
            self._get(obs, f"{base}/pending"),
            self._get(obs, f"{base}/snapshot"),
        )
        config = config_answer.data if config_answer else None
        pending = pending_answer.data if pending_answer else None
        if (
            config_answer is not None
            and pending_answer is not None
            and isinstance(config, dict)
            and isinstance(pending, list)
        ):
            values = {k: v for k, v in config.items() if k not in _CONFIG_SKIP}
            state["config"] = redact_config(self._key, values)
            state["digest"] = config.get("digest")
            wanted: dict[str, Any] = {}
            deletes: list[str] = []
            for item in pending:
                if not isinstance(item, dict) or not isinstance(item.get("key"), str):
                    continue
                key = item["key"]
                if key in _CONFIG_SKIP:
                    continue
                if item.get("delete"):
                    deletes.append(key)
                elif "pending" in item:
                    wanted[key] = item["pending"]
            state["pending"] = redact_config(self._key, wanted)
            state["pending_delete"] = sorted(deletes)
            obs.deep_seen(rid, config_answer, pending_answer)
        elif config is not None or pending is not None:
            obs.faults.append(f"{base}: config or pending answer makes no sense; skipped")
        if snapshots_answer is not None and isinstance(snapshots_answer.data, list):
            for snap in snapshots_answer.data:
                if not isinstance(snap, dict) or not isinstance(snap.get("name"), str):
                    continue
                name = snap["name"]
                if name == "current":
                    continue  # the pseudo-entry for "now"
                sid = obs.rid("snapshot", kind, vmid, name)
                if snap.get("snapstate"):
                    # being taken or deleted: neither created nor removed until it settles
                    obs.present.add(sid)
                    continue
                obs.states[sid] = {
                    "id": sid,
                    "cluster": obs.cluster,
                    "type": "snapshot",
                    "vmid": None,
                    "node": None,
                    "name": name,
                    "guest": rid,
                    "parent": snap.get("parent") or None,
                    "snaptime": as_int(snap.get("snaptime")),
                    "description": str(snap.get("description") or ""),
                    "vmstate": as_flag(snap.get("vmstate", 0)),
                }
                obs.deep_seen(sid, snapshots_answer)
            if obs.quorate:  # without quorum a list may be stale: a snapshot is never removed
                obs.scope_done(f"snapshots:{rid}", snapshots_answer)

    async def storages_deep(self, obs: Observation, nodes: Iterable[str] | None = None) -> None:
        """Storage definitions, per-node storage status and the backups on them."""
        definitions_answer = await self._get(obs, "storage")
        definitions = definitions_answer.data if definitions_answer else None
        configs: dict[str, dict[str, Any]] = {}
        if isinstance(definitions, list):
            for item in definitions:
                if isinstance(item, dict) and isinstance(item.get("storage"), str):
                    values = {k: v for k, v in item.items() if k not in ("digest", "storage")}
                    configs[item["storage"]] = redact_config(self._key, values)
        online = self._online_nodes(obs, nodes)
        statuses = await asyncio.gather(*(self._get(obs, f"nodes/{n}/storage") for n in online))
        listings: list[tuple[str, str, bool]] = []  # (node, storage, shared)
        shared_listed: set[str] = set()
        for node, status in zip(online, statuses, strict=True):
            if status is None or not isinstance(status.data, list):
                continue
            for item in status.data:
                if not isinstance(item, dict) or not isinstance(item.get("storage"), str):
                    continue
                sid = item["storage"]
                rid = obs.rid("storage", node, sid)
                state = obs.states.get(rid)
                if state is None:
                    continue
                state["active"] = as_flag(item.get("active", 0))
                state["enabled"] = as_flag(item.get("enabled", 1))
                if sid in configs:
                    assert definitions_answer is not None
                    state["config"] = configs[sid]
                    obs.deep_seen(rid, definitions_answer, status)
                if "backup" in split_list(item.get("content")) and state["active"]:
                    shared = bool(state.get("shared"))
                    if shared and sid in shared_listed:
                        continue
                    shared_listed.add(sid) if shared else None
                    listings.append((node, sid, shared))
        answers = await asyncio.gather(
            *(
                self._get(obs, f"nodes/{node}/storage/{sid}/content", content="backup")
                for node, sid, _shared in listings
            )
        )
        # In listing order (sorted nodes), so the same node's listing always counts first.
        for (node, sid, shared), answer in zip(listings, answers, strict=True):
            if answer is not None and isinstance(answer.data, list):
                self._backups(obs, node, sid, shared, answer)

    def _backups(self, obs: Observation, node: str, sid: str, shared: bool, answer: Answer) -> None:
        for item in answer.data:
            if not isinstance(item, dict) or not isinstance(item.get("volid"), str):
                continue
            volid = item["volid"]
            parsed = parse_volid(volid)
            if parsed is None or parsed.storage != sid:
                log.warning("cluster %s: skipped backup with volid %r", obs.cluster, volid)
                continue
            volume = parsed.volume
            if item.get("content") not in (None, "backup"):
                continue
            vmid = as_int(item.get("vmid"))
            subtype = item.get("subtype")
            named = parse_backup_name(volume)
            if named is not None:
                vmid = vmid if vmid is not None else named.vmid
                subtype = subtype or named.guest_type
            guest = (
                guest_id(obs.cluster, subtype, vmid) if vmid and subtype in GUEST_TYPES else None
            )
            rid = obs.rid("backup", sid, volume)
            if rid in obs.states:
                continue  # the same volume name listed by another node: the first one counts
            obs.states[rid] = {
                "id": rid,
                "cluster": obs.cluster,
                "type": "backup",
                "vmid": vmid,
                "node": None if shared else node,
                "name": volume.rsplit("/", 1)[-1],
                "guest": guest,
                "storage": sid,
                "volid": volid,
                "ctime": as_int(item.get("ctime")),
                "size": as_int(item.get("size")),
                "format": item.get("format"),
                "notes": item.get("notes"),
                "protected": as_flag(item.get("protected", 0)),
            }
            obs.deep_seen(rid, answer)
        if obs.quorate:  # without quorum a listing may be stale: a backup is never removed then
            obs.scope_done(f"backups:{sid}:{'' if shared else node}", answer)

    async def pools_deep(self, obs: Observation) -> None:
        """Pools, their comments and members (``pve-api.md`` §4.16)."""
        listed = await self._get(obs, "pools")
        if listed is None or not isinstance(listed.data, list):
            return
        names = [
            p["poolid"]
            for p in listed.data
            if isinstance(p, dict) and isinstance(p.get("poolid"), str)
        ]
        details = await asyncio.gather(*(self._pool(obs, n) for n in names))
        complete = True
        for name, answer in zip(names, details, strict=True):
            detail = answer.data if answer is not None else None
            if isinstance(detail, list) and detail and isinstance(detail[0], dict):
                detail = detail[0]
            if not isinstance(detail, dict):
                complete = False
                continue
            assert answer is not None
            members = []
            for member in detail.get("members") or []:
                if isinstance(member, dict) and isinstance(member.get("id"), str):
                    members.append(f"{obs.cluster}/{member['id'].lstrip('/')}")
            rid = obs.rid("pool", name)
            obs.present.add(rid)
            obs.states[rid] = {
                "id": rid,
                "cluster": obs.cluster,
                "type": "pool",
                "vmid": None,
                "node": None,
                "name": name,
                "comment": detail.get("comment"),
                "members": sorted(members),
            }
            obs.deep_seen(rid, listed, answer)
        if complete and obs.quorate:
            obs.scope_done("pools", listed)

    async def _pool(self, obs: Observation, name: str) -> Answer | None:
        """One pool: ``GET /pools?poolid=`` (8.1+), else ``GET /pools/{poolid}`` (every version).

        Before 8.1 the query form is refused by parameter verification (400); once refused,
        the client asks every later pool in the older form at once.
        """
        if not self._old_pools:
            try:
                return await self.client.fetch("pools", poolid=name)
            except PveRequestError as exc:
                if exc.kind != "http_4xx" or exc.status != 400:
                    obs.fault(f"GET /pools?poolid={name}", exc)
                    return None
                log.info("cluster %s: /pools?poolid= refused (PVE before 8.1)", obs.cluster)
                self._old_pools = True
        return await self._get(obs, f"pools/{name}")

    async def ha_deep(self, obs: Observation) -> None:
        """HA resource definitions onto their guests (``ha``): state, group, limits."""
        answer = await self._get(obs, "cluster/ha/resources")
        if answer is None or not isinstance(answer.data, list):
            return
        by_vmid: dict[int, dict[str, Any]] = {}
        for item in answer.data:
            sid = item.get("sid") if isinstance(item, dict) else None
            match = re.match(r"^(vm|ct):(\d+)$", str(sid))
            if not match:
                log.info("cluster %s: skipped HA resource %r that names no guest", obs.cluster, sid)
                continue
            assert isinstance(item, dict)
            by_vmid[int(match.group(2))] = {
                k: item.get(k)
                for k in ("state", "group", "max_restart", "max_relocate", "comment", "failback")
                if item.get(k) is not None
            }
        for rid in list(obs.deep_ids):
            state = obs.states[rid]
            if state["type"] in GUEST_TYPES:
                state["ha"] = by_vmid.get(state["vmid"])
                obs.deep_seen(rid, answer)

    async def tasks(self, obs: Observation, nodes: Iterable[str] | None = None) -> None:
        """The nodes' task logs since the last read (the source of attribution).

        Read incrementally: ``since`` is no later than the start of every task seen running
        at the last read and than that read's own time on the node's clock (less
        :data:`TASK_SLACK_S`), so a long ``vzdump`` or ``qmigrate``, listed only when it
        ends, is never skipped; pages are read while full and not yet older than ``since``
        (a server that ignores ``since`` is read the same way).
        """
        online = [n for n in self._online_nodes(obs, nodes) if n not in obs.task_nodes]
        obs.task_nodes.update(online)
        await asyncio.gather(*(self._node_tasks(obs, n) for n in online))

    async def _node_tasks(self, obs: Observation, node: str) -> None:
        since = self._task_since.get(node)
        params: dict[str, Any] = {"limit": TASK_LIMIT, "source": "all"}
        if since is not None:
            params["since"] = since
        first: Answer | None = None
        entries: list[Any] = []
        for page in range(TASK_PAGES if since is not None else 1):
            answer = await self._get(obs, f"nodes/{node}/tasks", start=page * TASK_LIMIT, **params)
            if answer is None or not isinstance(answer.data, list):
                return  # the log is unread: the next read starts where this one should have
            first = first or answer
            entries.extend(answer.data)
            starts = [as_int(e.get("starttime")) for e in answer.data if isinstance(e, dict)]
            oldest = min((t for t in starts if t is not None), default=None)
            if len(answer.data) < TASK_LIMIT or (since is not None and (oldest or 0) < since):
                break
        else:
            if since is not None:
                log.warning(
                    "cluster %s: node %s's task log still had more after %d pages; "
                    "the oldest of them are not read",
                    obs.cluster,
                    node,
                    TASK_PAGES,
                )
        running: list[int] = []
        for item in entries:
            if not isinstance(item, dict) or not isinstance(item.get("upid"), str):
                continue
            if not isinstance(item.get("type"), str) or as_int(item.get("starttime")) is None:
                log.info("cluster %s: skipped task %r", obs.cluster, item.get("upid"))
                continue
            task = dict(item, node=item.get("node") or node)
            if item.get("endtime") is None and item.get("status") in (None, "running"):
                running.append(as_int(item["starttime"]) or 0)
                obs.running.append(task)  # not recorded until it ends; may explain a change
            else:
                obs.tasks.append(task)
        assert first is not None
        obs.scope_sent[f"tasks:{node}"] = first.sent  # a task_seen's observed_after, next time
        offset = self.client.clocks.offset(node)
        read_at = int(first.sent.timestamp() + offset.low) - TASK_SLACK_S
        self._task_since[node] = min([read_at, *running])

    def _online_nodes(self, obs: Observation, nodes: Iterable[str] | None) -> list[str]:
        known = sorted(
            s["node"]
            for s in obs.states.values()
            if s["type"] == "node" and s["status"] == "online"
        )
        if nodes is None:
            return known
        wanted = set(nodes)
        return [n for n in known if n in wanted]


GuestFetcher = Callable[[Observation, Iterable[str]], Awaitable[None]]
