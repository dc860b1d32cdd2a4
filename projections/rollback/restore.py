"""Plans that restore a backup: the guest is gone, the target belongs to an earlier guest of
a reused vmid (then into a free vmid, never over the guest that holds it now), or the target
is a backup.

qemu restores with ``archive=``; lxc with ``ostemplate=`` and ``restore=1``, the target's config
as the restore's parameters (its volumes allocated anew on their storages, the root disk's
storage as ``storage=``), pve-api.md §5. The config differences between the guest at the
backup's time and the target follow in a config step without digest; a start last when the
guest ran at the target.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from collectors.values import (
    disk_volume,
    format_property,
    is_disk_key,
    parse_property,
    parse_volid,
    size_bytes,
)
from eventstore import EventStore, format_time, utcnow
from projections import queries
from projections.errors import NotFoundError, UnprocessableError
from projections.models import Resource

from . import steps
from .draft import NO_DIGEST, Context, Draft, config_reason, finish
from .guest import backup_time, backups, effective_config, life_of
from .keys import differing_keys, has_volume, is_redacted, is_unused
from .models import PlanTarget, RollbackPlan


async def free_vmid(store: EventStore) -> int:
    """The lowest vmid from 100 up that no guest holds, as last observed."""
    taken: set[int] = set()
    for kind in ("qemu", "lxc"):
        page = await queries.inventory(store, type=kind, limit=None)
        taken |= {r.vmid for r in page.items if r.vmid is not None}
    vmid = 100
    while vmid in taken:
        vmid += 1
    return vmid


async def restore_version(
    store: EventStore, ctx: Context, draft: Draft, then: Resource, vmid: int
) -> None:
    """Restore the newest backup taken in the target's life by the end of its version, then
    the config differences up to the target."""
    life = life_of(then.position, ctx.removed_at)
    began = _life_start(ctx, life)
    until = then.valid_until or utcnow()
    found = [
        b
        for b in await backups(store, ctx.guest)
        if (t := backup_time(b)) is not None and t <= until and (began is None or t > began)
    ]
    if not found:
        draft.blockers.append(
            f"the guest at the target is gone and no backup of it taken by "
            f"{format_time(until)} is still seen: there is nothing to restore from"
        )
        return
    await _restore_from(store, ctx, draft, found[-1], then, vmid)


async def _restore_from(
    store: EventStore,
    ctx: Context,
    draft: Draft,
    backup: Resource,
    then: Resource | None,
    vmid: int,
) -> None:
    guest = ctx.guest
    volid = str(backup.extra.get("volid"))
    node = (then.node if then is not None else None) or backup.node or ""
    taken_at = backup_time(backup)
    at_backup = None
    if taken_at is not None and then is not None:
        life = life_of(then.position, ctx.removed_at)
        at_backup = await _state_at(store, guest.id, taken_at, life, ctx.removed_at)
    want = effective_config(then) if then is not None else {}
    restored = restore_params(want) if guest.type == "lxc" else {}
    when = f", {format_time(taken_at)}" if taken_at is not None else ""
    into = f" into the free vmid {vmid}" if vmid != guest.vmid else ""
    draft.steps.append(
        steps.restore(
            node, guest.type, vmid, volid, restored, f"restore the backup {volid}{when}{into}"
        )
    )
    if then is None:
        draft.warnings.append(
            "the log holds no state of the guest at the backup's time: the guest comes back "
            "as the backup holds it"
        )
        return
    if guest.type == "lxc":
        # The restore takes the target's config as its parameters; Proxmox detects ostype and
        # arch from the archive, so they are set as they were.
        have = dict(at_backup or {})
        have.update({k: want[k] for k in restored if k in want})  # not storage=, a parameter
        have.pop("ostype", None)
        have.pop("arch", None)
    else:
        if at_backup is None:
            draft.warnings.append(
                "the log holds no state of the guest at the backup's time: the config step sets "
                "every key of the target, and keys the backup has beyond them stay"
            )
        have = dict(at_backup or {})
    sets: dict[str, Any] = {}
    deletes: list[str] = []
    for key in differing_keys(have, want):
        new = want.get(key)
        if is_disk_key(key) and (has_volume(key, have.get(key)) or has_volume(key, new)):
            draft.warnings.append(f"{key} comes back as the backup holds it")
        elif new is None:
            if at_backup is not None:
                deletes.append(key)
        elif not is_redacted(new) and not isinstance(new, list | dict):
            sets[key] = new
    for key in sorted(k for k, v in want.items() if is_redacted(v)):
        draft.warnings.append(
            f"{key} was a secret: the log keeps only its fingerprint; set it again by hand"
        )
    if sets or deletes:
        reason = config_reason(sets, deletes, [], [], False)
        draft.steps.append(
            steps.config(
                node,
                guest.type,
                vmid,
                sets=sets,
                deletes=deletes,
                digest=None,
                reason=f"{reason}; " + NO_DIGEST.format(after="restore"),
            )
        )
    if then.status == "running":
        draft.steps.append(
            steps.power(node, guest.type, vmid, "start", "the guest ran at the target")
        )


def _life_start(ctx: Context, life: int) -> datetime | None:
    if life == 0:
        return None
    position = ctx.removed_at[life - 1]
    return next(e.observed_at for e in ctx.history if e.position == position)


async def _state_at(
    store: EventStore, resource_id: str, at: datetime, life: int, removed_at: list[int]
) -> dict[str, Any] | None:
    try:
        state = await queries.resource_at(store, resource_id, at=at)
    except (NotFoundError, UnprocessableError):
        return None
    if life_of(state.position, removed_at) != life:
        return None
    return effective_config(state)


def restore_params(want: Mapping[str, Any]) -> dict[str, Any]:
    """An lxc restore's parameters: the target's config, its volumes allocated anew on their
    storages (``local-lvm:8``), with the root disk's storage as ``storage``."""
    params: dict[str, Any] = {}
    for key, value in sorted(want.items()):
        if key in ("ostype", "arch") or is_redacted(value) or isinstance(value, list | dict):
            continue
        if is_unused(key) or not differing_keys({}, {key: value}):
            continue
        if is_disk_key(key):
            volume = disk_volume(value)
            if volume is None:
                params[key] = value  # a host bind mount
                continue
            items = parse_property(key, value)
            size = size_bytes(items.pop("size", None)) or 0
            items["volume"] = f"{volume.storage}:{max(1, -(-size // (1 << 30)))}"
            params[key] = format_property(key, items)
            if key == "rootfs":
                params["storage"] = volume.storage
            continue
        params[key] = value
    return params


async def restore_backup(
    store: EventStore, ctx: Context, target: PlanTarget, volid: str
) -> RollbackPlan:
    """A plan for a backup target: restore it where the guest is gone (into a free vmid when
    another guest holds the vmid now); a blocker while the guest itself exists."""
    guest = ctx.guest
    known = {str(b.extra.get("volid")): b for b in await backups(store, guest)}
    if parse_volid(volid) is None or volid not in known:
        raise UnprocessableError(
            f"no backup {volid!r} of {guest.id} is seen (backups now: "
            + (", ".join(sorted(known)) or "none")
            + ")",
            param="target",
        )
    backup = known[volid]
    taken = backup_time(backup)
    draft = Draft(guest)
    now = ctx.now
    then = None
    if taken is not None:
        try:
            then = await queries.resource_at(store, guest.id, at=taken)
        except (NotFoundError, UnprocessableError):
            then = None
    vmid = guest.vmid
    if now is not None:
        life = life_of(then.position, ctx.removed_at) if then is not None else None
        if life == len(ctx.removed_at):
            when = f" --to {format_time(taken)}" if taken is not None else ""
            draft.blockers.append(
                f"the guest exists: restoring {volid} over it would destroy its disks; plan "
                f"back to the backup's time instead (pvetrail plan {guest.id}{when}), or restore "
                "the backup into a new vmid by hand"
            )
            return finish(draft, target, now, then)
        vmid = await free_vmid(store)
        draft.warnings.append(
            f"vmid {guest.vmid} belongs to another guest now: the plan never touches it and "
            f"restores into vmid {vmid}, free as last observed"
        )
    await _restore_from(store, ctx, draft, backup, then, vmid)
    return finish(draft, target, now, then, vmid=vmid)
