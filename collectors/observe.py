"""What one poll saw: fetch Proxmox VE endpoints and shape the answers into resource states.

An :class:`Observation` holds, per resource id, the fields this poll actually observed (a
fast poll observes ``status``/``node``/``name``/... but not ``config``; a guest on an offline
node observes nothing), the *scopes* that were listed completely and successfully (only
inside a complete scope may an absent resource be called removed), the finished tasks seen,
and the faults met. Nothing here compares with the past: that is :mod:`collectors.state`.

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

from .client import PveClient, PveRequestError
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
# Config keys that are not configuration: lock is its own field, digest the file's checksum.
_CONFIG_SKIP = frozenset({"digest", "lock"})
# Finished tasks read per node and poll (Proxmox answers 50 by default): enough for a busy
# node between two deep polls, so attribution and task_seen miss none.
TASK_LIMIT = 500


@dataclass
class Observation:
    """One poll's view of a cluster (see the module docstring)."""

    cluster: str
    kind: str
    states: dict[str, State] = field(default_factory=dict)
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

    async def _try(self, obs: Observation, what: str, call: Awaitable[Any]) -> Any:
        try:
            return await call
        except PveRequestError as exc:
            obs.fault(what, exc)
            return None

    # -- fast -----------------------------------------------------------------------------
    async def fast(self, obs: Observation) -> None:
        """``/cluster/status`` (quorum, node online state) and ``/cluster/resources``."""
        status, resources = await asyncio.gather(
            self._try(obs, "GET /cluster/status", self.client.get("cluster/status")),
            self._try(obs, "GET /cluster/resources", self.client.get("cluster/resources")),
        )
        online: dict[str, bool] = {}
        status_ok = isinstance(status, list)
        if status_ok:
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
        if status_ok and obs.quorate:
            obs.complete.update({"guests", "nodes", "storages"})
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
        # A guest on an offline node, or whose status is unknown, shows stale or no data
        # (pve-api.md §7): it is present (never removed) but unobserved.
        if node in obs.offline_nodes or status in (None, "unknown") or "name" not in entry:
            return
        obs.states[rid] = {
            "id": rid,
            "cluster": obs.cluster,
            "type": kind,
            "vmid": vmid,
            "node": node,
            "name": str(entry["name"]),
            "status": str(status),
            "tags": split_tags(entry.get("tags")),
            "pool": entry.get("pool") or None,
            "lock": entry.get("lock") or None,
            "ha_state": entry.get("hastate") or None,
            "template": as_flag(entry.get("template", 0)),
        }

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
        if node in obs.offline_nodes:
            return
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
        config, pending, snapshots = await asyncio.gather(
            self._try(obs, f"GET /{base}/config", self.client.get(f"{base}/config", current=1)),
            self._try(obs, f"GET /{base}/pending", self.client.get(f"{base}/pending")),
            self._try(obs, f"GET /{base}/snapshot", self.client.get(f"{base}/snapshot")),
        )
        if isinstance(config, dict) and isinstance(pending, list):
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
            obs.deep_ids.add(rid)
        elif config is not None or pending is not None:
            obs.faults.append(f"{base}: config or pending answer makes no sense; skipped")
        if isinstance(snapshots, list):
            for snap in snapshots:
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
                obs.deep_ids.add(sid)
            obs.complete.add(f"snapshots:{rid}")

    async def storages_deep(self, obs: Observation, nodes: Iterable[str] | None = None) -> None:
        """Storage definitions, per-node storage status and the backups on them."""
        definitions = await self._try(obs, "GET /storage", self.client.get("storage"))
        configs: dict[str, dict[str, Any]] = {}
        if isinstance(definitions, list):
            for item in definitions:
                if isinstance(item, dict) and isinstance(item.get("storage"), str):
                    values = {k: v for k, v in item.items() if k not in ("digest", "storage")}
                    configs[item["storage"]] = redact_config(self._key, values)
        online = self._online_nodes(obs, nodes)
        statuses = await asyncio.gather(
            *(
                self._try(obs, f"GET /nodes/{n}/storage", self.client.get(f"nodes/{n}/storage"))
                for n in online
            )
        )
        listings: list[tuple[str, str, bool]] = []  # (node, storage, shared)
        shared_listed: set[str] = set()
        for node, answer in zip(online, statuses, strict=True):
            if not isinstance(answer, list):
                continue
            for item in answer:
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
                    state["config"] = configs[sid]
                    obs.deep_ids.add(rid)
                if "backup" in split_list(item.get("content")) and state["active"]:
                    shared = bool(state.get("shared"))
                    if shared and sid in shared_listed:
                        continue
                    shared_listed.add(sid) if shared else None
                    listings.append((node, sid, shared))
        answers = await asyncio.gather(
            *(
                self._try(
                    obs,
                    f"GET /nodes/{node}/storage/{sid}/content",
                    self.client.get(f"nodes/{node}/storage/{sid}/content", content="backup"),
                )
                for node, sid, _shared in listings
            )
        )
        # In listing order (sorted nodes), so the same node's listing always counts first.
        for (node, sid, shared), answer in zip(listings, answers, strict=True):
            if isinstance(answer, list):
                self._backups(obs, node, sid, shared, answer)

    def _backups(
        self, obs: Observation, node: str, sid: str, shared: bool, answer: list[Any]
    ) -> None:
        for item in answer:
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
            obs.deep_ids.add(rid)
        obs.complete.add(f"backups:{sid}:{'' if shared else node}")

    async def pools_deep(self, obs: Observation) -> None:
        """Pools, their comments and members."""
        pools = await self._try(obs, "GET /pools", self.client.get("pools"))
        if not isinstance(pools, list):
            return
        names = [
            p["poolid"] for p in pools if isinstance(p, dict) and isinstance(p.get("poolid"), str)
        ]
        details = await asyncio.gather(
            *(
                self._try(obs, f"GET /pools?poolid={n}", self.client.get("pools", poolid=n))
                for n in names
            )
        )
        complete = True
        for name, detail in zip(names, details, strict=True):
            if isinstance(detail, list) and detail and isinstance(detail[0], dict):
                detail = detail[0]
            if not isinstance(detail, dict):
                complete = False
                continue
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
            obs.deep_ids.add(rid)
        if complete and obs.quorate:
            obs.complete.add("pools")

    async def ha_deep(self, obs: Observation) -> None:
        """HA resource definitions onto their guests (``ha``): state, group, limits."""
        answer = await self._try(
            obs, "GET /cluster/ha/resources", self.client.get("cluster/ha/resources")
        )
        if not isinstance(answer, list):
            return
        by_vmid: dict[int, dict[str, Any]] = {}
        for item in answer:
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

    async def tasks(self, obs: Observation, nodes: Iterable[str] | None = None) -> None:
        """The finished tasks in the nodes' task logs (the source of attribution)."""
        online = self._online_nodes(obs, nodes)
        answers = await asyncio.gather(
            *(
                self._try(
                    obs,
                    f"GET /nodes/{n}/tasks",
                    self.client.get(f"nodes/{n}/tasks", limit=TASK_LIMIT),
                )
                for n in online
            )
        )
        for node, answer in zip(online, answers, strict=True):
            if not isinstance(answer, list):
                continue
            for item in answer:
                if not isinstance(item, dict) or not isinstance(item.get("upid"), str):
                    continue
                if item.get("status") in (None, "running") and item.get("endtime") is None:
                    continue  # still running: seen when it has finished
                if not isinstance(item.get("type"), str) or as_int(item.get("starttime")) is None:
                    log.info("cluster %s: skipped task %r", obs.cluster, item.get("upid"))
                    continue
                obs.tasks.append(dict(item, node=item.get("node") or node))

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
