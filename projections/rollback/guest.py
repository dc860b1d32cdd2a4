"""A guest's past as rollback planning reads it, through the public read side only
(:mod:`projections.queries`): its history, its lives, its state then and now, its snapshots
and backups."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from collectors.values import GUEST_TYPES, as_int, parse_backup_name
from eventstore import EventStore
from projections import queries
from projections.errors import NotFoundError, UnprocessableError
from projections.models import HistoryEntry, Resource


@dataclass(frozen=True, slots=True)
class GuestId:
    """``lab/qemu/100`` taken apart."""

    id: str
    cluster: str
    type: str
    vmid: int


def guest_id(resource_id: str) -> GuestId:
    """The guest an id names; 422 for an id that names no guest (a node, a storage, ...)."""
    parts = resource_id.split("/")
    if len(parts) == 3 and parts[1] in GUEST_TYPES and parts[2].isdigit():
        return GuestId(resource_id, parts[0], parts[1], int(parts[2]))
    raise UnprocessableError(
        f"{resource_id!r} is not a guest: rollback works on qemu and lxc guests "
        "(ids such as lab/qemu/100 or lab/lxc/200)",
        param="resource",
    )


async def whole_history(store: EventStore, resource_id: str) -> list[HistoryEntry]:
    """Every event of the resource, oldest first (404 when it was never seen)."""
    items: list[HistoryEntry] = []
    cursor: str | None = None
    while True:
        page = await queries.history(store, resource_id, limit=1000, cursor=cursor)
        items += page.items
        cursor = page.next_cursor
        if cursor is None:
            return items


def removals(history: list[HistoryEntry]) -> list[int]:
    """Positions of the removals: each ends one life of the vmid."""
    return [e.position for e in history if e.event == "removed"]


def life_of(position: int, removed_at: list[int]) -> int:
    """Which life of the vmid a position belongs to (0: the first)."""
    return sum(1 for p in removed_at if p < position)


async def current(store: EventStore, resource_id: str) -> Resource | None:
    """The guest as last observed, or None when it is gone."""
    try:
        return await queries.resource_at(store, resource_id)
    except NotFoundError:
        return None


def effective_config(state: Resource) -> dict[str, Any]:
    """The config the guest will run with: committed values with its pending ones applied
    (what Proxmox reaches at the next start). A qemu guest's name is its ``name`` key."""
    config = dict(state.config)
    config.update(state.pending)
    for key in state.extra.get("pending_delete") or []:
        config.pop(key, None)
    # "VM 100" is the name Proxmox lists for a guest without one.
    named = state.name and state.name != f"VM {state.vmid}"
    if state.type == "qemu" and "name" not in config and named:
        config["name"] = state.name
    return config


def is_template(state: Resource) -> bool:
    """Whether the guest is a template."""
    return str(state.extra.get("template", state.config.get("template", 0))) == "1"


async def snapshots(store: EventStore, guest: GuestId) -> list[Resource]:
    """The guest's snapshots that exist now."""
    prefix = f"{guest.cluster}/snapshot/{guest.type}/{guest.vmid}/"
    page = await queries.inventory(store, type="snapshot", q=prefix, limit=None)
    return [r for r in page.items if r.id.startswith(prefix) and r.extra.get("guest") == guest.id]


def backup_time(backup: Resource) -> datetime | None:
    """When a backup was taken: its ``ctime``, else the time its name says (vzdump names are
    in the node's local time: taken as UTC, good to within the node's offset)."""
    ctime = as_int(backup.extra.get("ctime"))
    if ctime:
        return datetime.fromtimestamp(ctime, UTC)
    named = parse_backup_name(backup.extra.get("volid"))
    if named is None or named.time is None:
        return None
    for form in ("%Y_%m_%d-%H_%M_%S", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(named.time, form).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


async def backups(store: EventStore, guest: GuestId) -> list[Resource]:
    """The guest's backups the collectors still see, oldest first."""
    page = await queries.inventory(store, type="backup", limit=None)
    found = []
    for backup in page.items:
        if backup.extra.get("guest") == guest.id:
            found.append(backup)
            continue
        named = parse_backup_name(backup.extra.get("volid"))
        if named is not None and (named.guest_type, named.vmid) == (guest.type, guest.vmid):
            found.append(backup)
    far = datetime.min.replace(tzinfo=UTC)
    return sorted(found, key=lambda b: (backup_time(b) or far, b.id))


def snapshot_time(snapshot: Resource) -> datetime | None:
    """When a snapshot was taken (its ``snaptime``)."""
    snaptime = as_int(snapshot.extra.get("snaptime"))
    return datetime.fromtimestamp(snaptime, UTC) if snaptime else None
