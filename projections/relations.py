"""Edges derived from one resource's state: the relations projection's pure part.

An edge is ``(from, rel, to, attrs)``; attrs are JSON text with sorted keys so that an edge's
identity is a plain tuple. Parsing follows pve-api.md §8: disks are property strings whose
first item (or ``file=``/``volume=``) is a volid ``storage:volume``; ``none`` and host paths
(``/mnt/...``) name no storage; a cdrom counts only when it names a volume
(``local:iso/debian.iso,media=cdrom``). NICs name their bridge with ``bridge=`` and an
optional VLAN ``tag=``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import msgspec

EdgeKey = tuple[str, str, str, str]
"""(from_id, rel, to_id, attrs JSON)."""

GUEST_TYPES = ("qemu", "lxc")

_DISK_KEY = re.compile(r"^(?:(?:scsi|virtio|sata|ide|mp|unused)\d+|rootfs|efidisk0|tpmstate0)$")
_NET_KEY = re.compile(r"^net\d+$")
_BACKUP_NAME = re.compile(r"vzdump-(qemu|lxc|openvz)-(\d+)-")
_PBS_NAME = re.compile(r"(?:^|/)(vm|ct)/(\d+)/")

_encoder = msgspec.json.Encoder(order="sorted")

EDGE_FIELDS = frozenset({"node", "pool", "ha_state", "vmid", "subtype", "volid", "guest"})
"""Top-level state fields an edge depends on (besides disk and NIC config keys)."""


@lru_cache(maxsize=4096)  # a handful of distinct field names, asked once per event
def affects_edges(field: str) -> bool:
    """Whether a change of this state field can change the resource's edges."""
    if field in EDGE_FIELDS:
        return True
    prefix, _, key = field.partition(".")
    return prefix == "config" and bool(_DISK_KEY.match(key) or _NET_KEY.match(key))


_KINDS: dict[str, int] = {}
"""Config key name -> :func:`_key_kind` (key names repeat across every guest and version)."""


def _key_kind(key: str) -> int:
    """1 for a disk or mount-point key, 2 for a NIC key, else 0 (remembered in ``_KINDS``)."""
    found = _KINDS.get(key)
    if found is None:
        found = 1 if _DISK_KEY.match(key) else 2 if _NET_KEY.match(key) else 0
        if len(_KINDS) < 4096:
            _KINDS[key] = found
    return found


def property_items(value: str) -> tuple[str, dict[str, str]]:
    """A property string's default item (the first one without ``=``) and its keyed items."""
    default = ""
    items: dict[str, str] = {}
    for position, part in enumerate(value.split(",")):
        key, sep, val = part.partition("=")
        if not sep:
            if position == 0:
                default = part.strip()
            continue
        items[key.strip()] = val.strip()
    return default, items


def disk_storage(value: Any) -> tuple[str, str] | None:
    """(storage, volid) a disk or mount-point value uses, or None (empty drive, host path)."""
    if not isinstance(value, str):
        return None
    return _disk_storage(value)


@lru_cache(maxsize=65536)  # a guest's disk strings repeat in every version: parse once
def _disk_storage(value: str) -> tuple[str, str] | None:
    default, items = property_items(value)
    volid = default or items.get("file") or items.get("volume") or ""
    if not volid or volid == "none" or volid.startswith("/"):
        return None
    storage, sep, volume = volid.partition(":")
    if not sep or not storage or not volume:
        return None  # allocation syntax without a volume, or garbage: no storage named
    return storage, volid


def nic_bridge(value: Any) -> tuple[str, int | str | None] | None:
    """(bridge, VLAN tag) of a NIC value, or None when it names no bridge."""
    if not isinstance(value, str):
        return None
    return _nic_bridge(value)


@lru_cache(maxsize=65536)
def _nic_bridge(value: str) -> tuple[str, int | str | None] | None:
    _, items = property_items(value)
    bridge = items.get("bridge")
    if not bridge:
        return None
    tag: int | str | None = items.get("tag")
    if isinstance(tag, str) and tag.isdigit():
        tag = int(tag)
    return bridge, tag


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
        found = _BACKUP_NAME.search(volid)
        if found:
            kind = kind or ("lxc" if found.group(1) == "openvz" else found.group(1))
            vmid = vmid if vmid is not None else found.group(2)
        else:
            pbs = _PBS_NAME.search(volid)
            if pbs:
                kind = kind or ("qemu" if pbs.group(1) == "vm" else "lxc")
                vmid = vmid if vmid is not None else pbs.group(2)
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
                used = _disk_storage(value) if type(value) is str else disk_storage(value)
                if used is not None and node:
                    keys, volumes = storages.setdefault(used[0], ([], []))
                    keys.append(key)
                    volumes.append(used[1])
            else:
                nic = _nic_bridge(value) if type(value) is str else nic_bridge(value)
                if nic is not None and node:
                    attrs = _nic_attrs(key, nic[1])
                    edges.add(
                        (resource_id, "attached_to", f"{cluster}/network/{node}/{nic[0]}", attrs)
                    )
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
