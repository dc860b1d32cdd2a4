"""``POST /rollback-plans``: the Proxmox VE calls that take a guest back to a target.

A plan starts from the guest as last observed and ends at the target: a past time or log
position (a version of the guest), a snapshot that still exists, or a backup the collectors
still see. It only reads the log (invariant 7); nothing here talks to Proxmox.

The steps, in order (each optional):

1. a restore (the guest is gone, or the target belongs to an earlier guest of a reused vmid:
   then into a free vmid) or a snapshot rollback;
2. one ``PUT .../config`` with every key to set, delete or revert; the first config step of
   a plan on an existing guest carries its ``digest``, so Proxmox refuses it if the guest
   changed after planning; config steps after a restore or rollback carry none;
3. a disk resize where the target's disk was larger;
4. a migrate step when the target ran on another node;
5. a reboot when a running guest keeps changes pending that the target wants running;
6. the power state, last: ``start``, or ``shutdown`` with ``stop`` as its fallback.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from collectors.values import (
    disk_volume,
    format_property,
    format_size,
    is_disk_key,
    parse_property,
    same,
    same_property,
    size_bytes,
)
from eventstore import EventStore, format_time, utcnow
from projections import queries
from projections.errors import InvalidParameterError, NotFoundError, UnprocessableError
from projections.models import Resource

from . import steps
from .draft import NO_DIGEST, Context, Draft, config_reason, finish
from .guest import (
    GuestId,
    backup_time,
    backups,
    current,
    effective_config,
    is_template,
    life_of,
    removals,
    snapshot_time,
    snapshots,
    whole_history,
)
from .keys import applies, differing_keys, has_volume, is_redacted, is_unused
from .models import PlanRequest, PlanStep, PlanTarget, RollbackPlan
from .restore import free_vmid, restore_backup, restore_version
from .targets import check_guest

TARGET_KINDS = ("at", "position", "snapshot", "backup")


async def plan_rollback(store: EventStore, request: PlanRequest) -> RollbackPlan:
    """The plan that takes ``request.resource`` back to ``request.target`` (see the module
    docstring). 404 for an id never seen, 422 for a non-guest or an impossible target."""
    target = request.target
    given = [kind for kind in TARGET_KINDS if getattr(target, kind) is not None]
    if len(given) != 1:
        raise InvalidParameterError(
            "target takes exactly one of at, position, snapshot, backup", param="target"
        )
    guest = await check_guest(store, request.resource)
    history = await whole_history(store, guest.id)
    ctx = Context(guest, history, removals(history), await current(store, guest.id))
    if target.snapshot is not None:
        return await _to_snapshot(store, ctx, target, target.snapshot)
    if target.backup is not None:
        return await restore_backup(store, ctx, target, target.backup)
    then = await _version(store, guest.id, target)
    draft = Draft(guest)
    now = ctx.now
    then_life = life_of(then.position, ctx.removed_at)
    if now is not None and then_life == len(ctx.removed_at):
        draft.holder = await _holder(store, guest, then)
        _in_place(draft, now, then, digest=now.digest)
        return finish(draft, target, now, then)
    free = guest.vmid
    if now is not None:
        free = await free_vmid(store)
        draft.warnings.append(
            f"vmid {guest.vmid} belongs to another guest now (created after the one at the "
            f"target was removed): the plan never touches it and restores into vmid {free}, "
            "free as last observed (Proxmox refuses the restore if it was taken since)"
        )
    await restore_version(store, ctx, draft, then, free)
    return finish(draft, target, now, then, vmid=free)


# -- the target ------------------------------------------------------------------------------
async def _version(store: EventStore, resource_id: str, target: PlanTarget) -> Resource:
    try:
        return await queries.resource_at(store, resource_id, at=target.at, position=target.position)
    except NotFoundError as exc:
        when = format_time(target.at) if target.at is not None else f"position {target.position}"
        seen = ""
        if exc.first_seen is not None:
            last = format_time(exc.last_seen) if exc.last_seen else "now"
            seen = f" (it existed from {format_time(exc.first_seen)} to {last})"
        raise UnprocessableError(
            f"{resource_id} did not exist at {when}{seen}: nothing to go back to",
            param="target",
        ) from None


# -- a guest that exists, in its current life ------------------------------------------------
def _in_place(draft: Draft, now: Resource, then: Resource, *, digest: str | None) -> None:
    guest = draft.guest
    if is_template(now) and not is_template(then):
        draft.blockers.append(
            "the guest was converted to a template, which Proxmox cannot turn back into a "
            "guest: clone it or restore a backup into a new vmid instead"
        )
        return
    if now.lock:
        draft.warnings.append(
            f"the guest is locked ({now.lock}): the steps fail until the lock is gone"
        )
    if digest is None:
        draft.warnings.append(
            "the guest's config digest was never observed: the config step cannot be "
            "checked against changes made after planning"
        )
    node = now.node or then.node or ""
    running = now.status == "running"
    pending_now = set(now.pending) | set(now.extra.get("pending_delete") or [])
    have, want = effective_config(now), effective_config(then)
    sets: dict[str, Any] = {}
    deletes: list[str] = []
    reverts: list[str] = []
    resizes: list[PlanStep] = []
    for key in differing_keys(have, want):
        old, new = have.get(key), want.get(key)
        if is_disk_key(key) and (has_volume(key, old) or has_volume(key, new)):
            _disk(draft, now, then, key, old, new, sets, deletes, resizes, node)
            continue
        if key in pending_now and same(key, now.config.get(key), new):
            reverts.append(key)  # the queued change is unwanted: drop it
            continue
        if new is not None and is_redacted(new):
            draft.warnings.append(
                f"{key} was a secret at the target: the log keeps only its fingerprint, so "
                f"the plan cannot set it; set {key} again by hand"
            )
            continue
        if isinstance(new, list | dict):
            draft.warnings.append(f"{key} cannot be set through the API: set it by hand")
            continue
        if new is None:
            deletes.append(key)
        else:
            sets[key] = new
    kept = sorted(k for k in pending_now if k not in reverts and k not in sets and k not in deletes)
    if kept:
        draft.notes.append("pending changes the target wants are left alone: " + ", ".join(kept))
    later = [
        k
        for k in (*sets, *deletes)
        if running
        and applies(guest.type, k, now.config, deleting=k in deletes, new=k not in now.config)
        == "pending"
    ]
    waiting = sorted(set(later) | set(kept)) if running else []
    if sets or deletes or reverts:
        reason = config_reason(sets, deletes, reverts, later, running)
        if digest is not None:
            reason += f"; carries the digest {digest}, so Proxmox refuses it if the guest changed"
        draft.steps.append(
            steps.config(
                node,
                guest.type,
                guest.vmid,
                sets=sets,
                deletes=deletes,
                reverts=reverts,
                digest=digest,
                reason=reason,
                requires_reboot=bool(later),
            )
        )
    draft.steps += resizes
    if then.node and then.node != node:
        draft.steps.append(steps.migrate(node, guest.type, guest.vmid, then.node, running))
        node = then.node
    if waiting and then.status == "running":
        draft.steps.append(
            steps.power(
                node,
                guest.type,
                guest.vmid,
                "reboot",
                "apply the changes that stay pending on a running guest ("
                + ", ".join(waiting)
                + "): a reboot through the API applies them",
            )
        )
    elif waiting:
        draft.notes.append(
            "changes that stay pending (" + ", ".join(waiting) + ") apply at the next start"
        )
    _power(draft, node, now.status, then.status)


def _disk(
    draft: Draft,
    now: Resource,
    then: Resource,
    key: str,
    old: Any,
    new: Any,
    sets: dict[str, Any],
    deletes: list[str],
    resizes: list[PlanStep],
    node: str,
) -> None:
    guest = draft.guest
    was, will = disk_volume(old), disk_volume(new)
    if new is None:
        deletes.append(key)
        draft.notes.append(
            f"{key} ({was}) was added after the target: deleting it detaches the volume as an "
            "unusedN entry, which keeps its data until someone deletes it"
        )
        return
    if old is not None and was == will:
        before, after = parse_property(key, old), parse_property(key, new)
        size_now, size_then = size_bytes(before.get("size")), size_bytes(after.get("size"))
        if size_now is not None and size_then is not None and size_now > size_then:
            draft.blockers.append(
                f"{key} grew from {format_size(size_then)} to {format_size(size_now)} and a disk "
                f"cannot shrink: {draft.holder}"
            )
        elif size_now is not None and size_then is not None and size_now < size_then:
            resizes.append(
                steps.resize(
                    node,
                    guest.type,
                    guest.vmid,
                    key,
                    format_size(size_then),
                    f"{key} was {format_size(size_then)} at the target; grow it back",
                )
            )
        options_now = {k: v for k, v in before.items() if k != "size"}
        options_then = {k: v for k, v in after.items() if k != "size"}
        if not same_property(
            key, format_property(key, options_now), format_property(key, options_then)
        ):
            if size_now is not None:
                options_then["size"] = format_size(size_now)
            sets[key] = format_property(key, options_then)
        return
    unused = [k for k, v in now.config.items() if is_unused(k) and disk_volume(v) == will]
    if unused:
        sets[key] = new
        draft.notes.append(f"{key} reattaches {will}, detached as {unused[0]} since the target")
        return
    how = f"replaced by {was}" if was is not None else "removed"
    draft.blockers.append(
        f"{key} used {will} at the target; it was {how} and the volume is no longer attached "
        f"as an unusedN entry, so config alone cannot bring it back: {draft.holder}"
    )


async def _holder(store: EventStore, guest: GuestId, then: Resource) -> str:
    """The newest snapshot and backup that could hold the target's disks: taken before the
    target's version ended."""
    until = then.valid_until or utcnow()
    found = []
    snaps = [s for s in await snapshots(store, guest) if (snapshot_time(s) or until) < until]
    if snaps:
        newest = max(snaps, key=lambda s: snapshot_time(s) or until)
        found.append(f"roll back to snapshot {newest.name}")
    kept = [b for b in await backups(store, guest) if (backup_time(b) or until) < until]
    if kept:
        found.append(f"restore backup {kept[-1].extra.get('volid')}")
    if not found:
        return "no snapshot or backup taken by then is known"
    return " or ".join(found) + " to bring it back"


def _power(draft: Draft, node: str, status_now: str | None, status_then: str | None) -> None:
    guest = draft.guest
    if status_then == "running" and status_now != "running":
        draft.steps.append(
            steps.power(node, guest.type, guest.vmid, "start", "the guest ran at the target")
        )
    elif status_then == "stopped" and status_now == "running":
        draft.steps.append(
            steps.power(
                node,
                guest.type,
                guest.vmid,
                "shutdown",
                "the guest was stopped at the target: a clean shutdown, given "
                f"{steps.SHUTDOWN_TIMEOUT_S} s",
                timeout=steps.SHUTDOWN_TIMEOUT_S,
            )
        )
        stop = steps.power(
            node,
            guest.type,
            guest.vmid,
            "stop",
            "fallback, only if the shutdown timed out and the guest still runs: a hard stop, "
            "like pulling the plug",
        )
        draft.steps.append(_as_fallback(stop))


def _as_fallback(step: PlanStep) -> PlanStep:
    return msgspec.structs.replace(step, fallback=True)


# -- snapshots and backups -------------------------------------------------------------------
async def _to_snapshot(
    store: EventStore, ctx: Context, target: PlanTarget, name: str
) -> RollbackPlan:
    guest, now = ctx.guest, ctx.now
    found = {s.name: s for s in await snapshots(store, guest)}
    if now is None or name not in found:
        known = ", ".join(sorted(n for n in found if n)) or "none"
        raise UnprocessableError(
            f"{guest.id} has no snapshot {name!r} (snapshots now: {known})", param="target"
        )
    snap = found[name]
    draft = Draft(guest)
    if is_template(now):
        draft.blockers.append("the guest is a template: Proxmox cannot roll a template back")
        return finish(draft, target, now, None)
    vmstate = str(snap.extra.get("vmstate", 0)) == "1"
    taken = snapshot_time(snap)
    draft.warnings.append(
        f"rolling back to {name} discards every change to the guest's disks and config made "
        "after it" + (f" ({format_time(taken)})" if taken else "")
    )
    if vmstate:
        draft.warnings.append(
            "the snapshot holds RAM state: the guest resumes running as it was then"
        )
    else:
        draft.warnings.append(
            "the snapshot holds no RAM state: the guest is stopped after the rollback, "
            "as after a power cut at the snapshot's time"
        )
    node = now.node or ""
    draft.steps.append(
        steps.snapshot_rollback(
            node,
            guest.type,
            guest.vmid,
            name,
            start=False,
            reason=f"roll the guest back to its snapshot {name}",
        )
    )
    # The guest when the snapshot was taken, else as the poll that first saw the snapshot saw
    # it (a snapshot's time is whole seconds, perhaps before the first observation).
    then = await _guest_at(store, ctx, at=taken) if taken is not None else None
    then = then or await _guest_at(store, ctx, position=snap.position)
    if then is not None:
        _kept_by_rollback(draft, now, then, node)
    return finish(draft, target, now, then)


KEPT_BY_ROLLBACK = ("description",)
"""Config keys a snapshot rollback leaves as they are (pve-guest-common's AbstractConfig keeps
the current description; ``unusedN`` too, which no plan touches)."""


async def _guest_at(
    store: EventStore, ctx: Context, *, at: datetime | None = None, position: int | None = None
) -> Resource | None:
    """The guest at a time or position of its current life, when the log knows it."""
    try:
        found = await queries.resource_at(store, ctx.guest.id, at=at, position=position)
    except (NotFoundError, UnprocessableError):
        return None
    return found if life_of(found.position, ctx.removed_at) == len(ctx.removed_at) else None


def _kept_by_rollback(draft: Draft, now: Resource, then: Resource, node: str) -> None:
    have, want = effective_config(now), effective_config(then)
    keys = [k for k in differing_keys(have, want) if k in KEPT_BY_ROLLBACK]
    sets = {k: want[k] for k in keys if want.get(k) is not None}
    deletes = [k for k in keys if want.get(k) is None]
    if sets or deletes:
        reason = config_reason(sets, deletes, [], [], False)
        draft.steps.append(
            steps.config(
                node,
                draft.guest.type,
                draft.guest.vmid,
                sets=sets,
                deletes=deletes,
                digest=None,
                reason=f"{reason} (a rollback keeps them); "
                + NO_DIGEST.format(after="snapshot rollback"),
            )
        )
