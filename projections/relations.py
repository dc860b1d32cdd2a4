"""Edges derived from one resource's state: the relations projection's pure part.

An edge is ``(from, rel, to, attrs)``; attrs are JSON text with sorted keys so that an edge's
identity is a plain tuple. Values are read with :mod:`collectors.values` (pve-api.md §8):
disks are property strings whose volume is a volid ``storage:volume``; ``none`` and host paths
(``/mnt/...``) name no storage; a cdrom counts only when it names a volume
(``local:iso/debian.iso,media=cdrom``). NICs name their bridge with ``bridge=`` and an
optional VLAN ``tag=``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import msgspec

from collectors.values import (
    GUEST_TYPES,
    disk_volume,
    is_disk_key,
    is_nic_key,
    nic_bridge,
    parse_backup_name,
)

EdgeKey = tuple[str, str, str, str]
"""(from_id, rel, to_id, attrs JSON)."""

_encoder = msgspec.json.Encoder(order="sorted")

EDGE_FIELDS = frozenset({"node", "pool", "ha_state", "vmid", "subtype", "volid", "guest"})
"""Top-level state fields an edge depends on (besides disk and NIC config keys)."""


@lru_cache(maxsize=4096)  # a handful of distinct field names, asked once per event
def affects_edges(field: str) -> bool:
    """Whether a change of this state field can change the resource's edges."""
    if field in EDGE_FIELDS:
        return True
    prefix, _, key = field.partition(".")
    return prefix == "config" and (is_disk_key(key) or is_nic_key(key))


_KINDS: dict[str, int] = {}
"""Config key name -> :func:`_key_kind` (key names repeat across every guest and version)."""


def _key_kind(key: str) -> int:
    """1 for a disk or mount-point key, 2 for a NIC key, else 0 (remembered in ``_KINDS``)."""
    found = _KINDS.get(key)
    if found is None:
        found = 1 if is_disk_key(key) else 2 if is_nic_key(key) else 0
        if len(_KINDS) < 4096:
            _KINDS[key] = found
    return found


def _attrs(value: dict[str, Any]) -> str:
    return _encoder.encode(value).decode()


@lru_cache(maxsize=4096)
def _nic_attrs(key: str, tag: int | str | None) -> str:
    return _attrs({"key": key, "tag": tag})


def _guest_of_backup(resource_id: str, state: dict[str, Any]) -> str | None:
    cluster = state.get("cluster") or resource_id.split("/", 1)[0]
    vmid = state.get("vmid")
    subtype = state.get("subtype")
    volid = str(state.get("volid") or resource_id)
    kind: str | None = subtype if subtype in GUEST_TYPES else None
    if kind is None or vmid is None:
        named = parse_backup_name(volid)
        if named is not None:
            kind = kind or named.guest_type
            vmid = vmid if vmid is not None else named.vmid
    if kind is None or vmid is None:
        return None
    return f"{cluster}/{kind}/{vmid}"


def edges_of(resource_id: str, state: dict[str, Any] | None) -> set[EdgeKey]:
    """Every edge a resource in this state has (empty for a removed resource)."""
    if state is None:
        return set()
    parts = resource_id.split("/")
    cluster = parts[0]
    kind = state.get("type") or (parts[1] if len(parts) > 1 else "")
    edges: set[EdgeKey] = set()
    node = state.get("node")
    pool = state.get("pool")
    if pool:
        edges.add((resource_id, "member_of", f"{cluster}/pool/{pool}", "{}"))
    if kind in GUEST_TYPES:
        if node:
            edges.add((resource_id, "runs_on", f"{cluster}/node/{node}", "{}"))
        if state.get("ha_state"):
            attrs = _attrs({"state": state["ha_state"]})
            edges.add((resource_id, "ha_managed", f"{cluster}/cluster", attrs))
        config = state.get("config") or {}
        storages: dict[str, tuple[list[str], list[str]]] = {}
        # Only disk and NIC keys matter (a few of a dozen): pick them, then sort those.
        kinds = _KINDS
        chosen = [
            (key, kind_of_key)
            for key in config
            if (kind_of_key := kinds[key] if key in kinds else _key_kind(key))
        ]
        chosen.sort()
        for key, kind_of_key in chosen:
            value = config[key]
            if kind_of_key == 1:
                used = disk_volume(value)
                if used is not None and node:
                    keys, volumes = storages.setdefault(used.storage, ([], []))
                    keys.append(key)
                    volumes.append(str(used))
            else:
                nic = nic_bridge(value)
                if nic is not None and node:
                    bridge = f"{cluster}/network/{node}/{nic.bridge}"
                    edges.add((resource_id, "attached_to", bridge, _nic_attrs(key, nic.tag)))
        for storage, (keys, volumes) in storages.items():
            attrs = _attrs({"keys": keys, "volumes": sorted(volumes)})
            edges.add((resource_id, "uses_storage", f"{cluster}/storage/{node}/{storage}", attrs))
    elif kind == "snapshot":
        # the collectors name the guest; else the id says it: {cluster}/snapshot/{kind}/{vmid}/..
        guest = state.get("guest")
        if not isinstance(guest, str) and len(parts) >= 4:
            guest = f"{cluster}/{parts[2]}/{parts[3]}"
        if isinstance(guest, str):
            edges.add((resource_id, "snapshot_of", guest, "{}"))
    elif kind == "backup":
        named = state.get("guest")
        guest = named if isinstance(named, str) else _guest_of_backup(resource_id, state)
        if guest is not None:
            edges.add((resource_id, "backup_of", guest, "{}"))
    return edges
