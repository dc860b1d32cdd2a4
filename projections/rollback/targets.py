"""``GET /resources/{id}/rollback-targets``: the points a guest can be taken back to.

Each distinct past configuration from the log (versions that differ only in status, node or
other fields outside the config are one target: the newest of them), each Proxmox snapshot
that still exists and each backup the collectors still see, newest first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from eventstore import EventStore, format_time
from projections import queries
from projections.errors import UnprocessableError
from projections.models import HistoryEntry

from .guest import (
    GuestId,
    backup_time,
    backups,
    current,
    effective_config,
    guest_id,
    life_of,
    removals,
    snapshot_time,
    snapshots,
    whole_history,
)
from .keys import differing_keys
from .models import RollbackTarget, RollbackTargets

_SHOWN_KEYS = 4  # a label names this many differing keys, then "and N more"
_SHOWN_VALUE = 32


async def check_guest(store: EventStore, resource_id: str) -> GuestId:
    """The guest an id names: 404 when the id was never seen, 422 for one that is no guest."""
    try:
        return guest_id(resource_id)
    except UnprocessableError:
        await queries.history(store, resource_id, limit=1)  # 404 when never seen
        raise


@dataclass
class _Group:
    """Consecutive versions with one configuration."""

    entries: list[HistoryEntry] = field(default_factory=list)
    ended_by: HistoryEntry | None = None


def _changes_config(entry: HistoryEntry) -> bool:
    if entry.event == "discovered":
        return True
    return any(c.field.startswith(("config.", "pending.")) for c in entry.changes)


def config_groups(history: list[HistoryEntry]) -> list[_Group]:
    """The history cut where the configuration changed, each removal ending a group.

    The events one poll appended share their ``observed_at`` and are one observation: a
    group never ends inside one (a migration and a config change seen by the same poll are
    one change of state, not a state of the new node with the old config)."""
    groups: list[_Group] = []
    for batch in _observations(history):
        removal = next((e for e in batch if e.event == "removed"), None)
        kept = [e for e in batch if e.event != "removed"]
        if kept:
            fresh = not groups or groups[-1].ended_by is not None
            if fresh or any(_changes_config(e) for e in kept):
                if groups and groups[-1].ended_by is None:
                    groups[-1].ended_by = kept[0]
                groups.append(_Group())
            groups[-1].entries += kept
        if removal is not None and groups and groups[-1].ended_by is None:
            groups[-1].ended_by = removal
    return groups


def _observations(history: list[HistoryEntry]) -> list[list[HistoryEntry]]:
    batches: list[list[HistoryEntry]] = []
    for entry in history:
        if batches and batches[-1][-1].observed_at == entry.observed_at:
            batches[-1].append(entry)
        else:
            batches.append([entry])
    return batches


def _show(value: Any) -> str:
    text = "-" if value is None else str(value)
    return text if len(text) <= _SHOWN_VALUE else text[: _SHOWN_VALUE - 1] + "…"


def describe(keys: list[str], now: dict[str, Any], then: dict[str, Any]) -> str:
    """``cores 4 -> 2; net1 added; ...``: how a configuration differs from now."""
    parts = []
    for key in keys[:_SHOWN_KEYS]:
        if now.get(key) is None:
            parts.append(f"{key} {_show(then.get(key))} (gone now)")
        elif then.get(key) is None:
            parts.append(f"{key} not set (now {_show(now.get(key))})")
        else:
            parts.append(f"{key} {_show(then.get(key))} (now {_show(now.get(key))})")
    if len(keys) > _SHOWN_KEYS:
        parts.append(f"and {len(keys) - _SHOWN_KEYS} more")
    return "; ".join(parts)


async def rollback_targets(store: EventStore, resource_id: str) -> RollbackTargets:
    """The guest's rollback targets, newest first (see the module docstring)."""
    guest = await check_guest(store, resource_id)
    history = await whole_history(store, resource_id)
    removed_at = removals(history)
    now = await current(store, resource_id)
    now_config = effective_config(now) if now is not None else {}
    now_life = len(removed_at)
    items: list[RollbackTarget] = []
    groups = config_groups(history)
    for index, group in enumerate(groups):
        newest = group.entries[-1]
        if now is not None and index == len(groups) - 1 and group.ended_by is None:
            continue  # the configuration it has now
        state = await queries.resource_at(store, resource_id, position=newest.position)
        then = effective_config(state)
        earlier = now is not None and life_of(newest.position, removed_at) != now_life
        keys = differing_keys(now_config, then) if now is not None else []
        if now is not None and not keys and not earlier:
            continue  # configured as now (changed away and back)
        if now is None:
            label = f"configuration of {format_time(newest.observed_at)} (the guest is gone now)"
        elif earlier:
            label = (
                f"configuration of {format_time(newest.observed_at)}, of an earlier guest "
                "with this vmid (restored into a free vmid)"
            )
        else:
            label = describe(keys, now_config, then)
        items.append(
            RollbackTarget(
                kind="version",
                at=newest.observed_at,
                position=newest.position,
                label=label,
                changed_by=group.ended_by.actor if group.ended_by is not None else None,
                differs=keys,
                earlier_life=earlier,
            )
        )
    for snap in await snapshots(store, guest):
        vmstate = str(snap.extra.get("vmstate", 0)) == "1"
        description = str(snap.extra.get("description") or "").strip()
        items.append(
            RollbackTarget(
                kind="snapshot",
                at=snapshot_time(snap),
                position=snap.position,
                label=f"snapshot {snap.name}{' with RAM' if vmstate else ''}"
                + (f": {description}" if description else ""),
                snapshot=snap.name,
                description=description,
                vmstate=vmstate,
            )
        )
    for backup in await backups(store, guest):
        volid = str(backup.extra.get("volid"))
        size = backup.extra.get("size")
        protected = str(backup.extra.get("protected", 0)) == "1"
        items.append(
            RollbackTarget(
                kind="backup",
                at=backup_time(backup),
                position=backup.position,
                label=f"backup {volid}"
                + (f", {size} bytes" if size is not None else "")
                + (", protected" if protected else ""),
                backup=volid,
                storage=backup.extra.get("storage"),
                size=int(size) if isinstance(size, int) else None,
                protected=protected,
            )
        )
    oldest = datetime.min.replace(tzinfo=UTC)
    items.sort(key=lambda t: (t.at or oldest, t.position or 0), reverse=True)
    return RollbackTargets(resource=resource_id, items=items)
