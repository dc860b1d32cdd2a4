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

from dataclasses import dataclass, field
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
from .draft import Context, Draft, config_reason, finish
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
from .snapshot import rollback_snapshot
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
        return await rollback_snapshot(store, ctx, target, target.snapshot)
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
@dataclass
class _Changes:
    """What one config step and the resizes after it change."""

    sets: dict[str, Any] = field(default_factory=dict)
    deletes: list[str] = field(default_factory=list)
    reverts: list[str] = field(default_factory=list)
    resizes: list[PlanStep] = field(default_factory=list)

    def touches(self) -> list[str]:
        """The keys set or deleted."""
        return [*self.sets, *self.deletes]


def _in_place(draft: Draft, now: Resource, then: Resource, *, digest: str | None) -> None:
    """Config, resizes, migrate, reboot and power, in that order, on the guest itself."""
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
    if now.pool != then.pool:
        # The pool API changed in PVE 8.1 (PUT /pools/{id} -> PUT /pools?poolid=): no one
        # call is right on every cluster.
        draft.warnings.append(
            f"the guest was in pool {then.pool or '(none)'} at the target and is in "
            f"{now.pool or '(none)'} now: change its pool membership by hand"
        )
    node = now.node or then.node or ""
    running = now.status == "running"
    pending_now = set(now.pending) | set(now.extra.get("pending_delete") or [])
    changes = _config_changes(draft, now, then, pending_now, node)
    kept = sorted(pending_now - set(changes.reverts) - set(changes.touches()))
    if kept:
        draft.notes.append("pending changes the target wants are left alone: " + ", ".join(kept))
    # Keys a running guest takes only at its next start (pve-api.md §5.1).
    later = [k for k in changes.touches() if running and _stays_pending(guest, now, k, changes)]
    if changes.touches() or changes.reverts:
        reason = config_reason(changes.sets, changes.deletes, changes.reverts, later, running)
        if digest is not None:
            reason += f"; carries the digest {digest}, so Proxmox refuses it if the guest changed"
        draft.steps.append(
            steps.config(
                node,
                guest.type,
                guest.vmid,
                sets=changes.sets,
                deletes=changes.deletes,
                reverts=changes.reverts,
                digest=digest,
                reason=reason,
                requires_reboot=bool(later),
            )
        )
    draft.steps += changes.resizes
    if then.node and then.node != node:
        draft.steps.append(steps.migrate(node, guest.type, guest.vmid, then.node, running))
        node = then.node
    waiting = ", ".join(sorted({*later, *kept})) if running else ""
    if waiting and then.status == "running":
        draft.steps.append(
            steps.power(
                node,
                guest.type,
                guest.vmid,
                "reboot",
                f"apply the changes that stay pending on a running guest ({waiting}): a "
                "reboot through the API applies them",
            )
        )
    elif waiting:
        draft.notes.append(f"changes that stay pending ({waiting}) apply at the next start")
    _power(draft, node, now.status, then.status)


def _stays_pending(guest: GuestId, now: Resource, key: str, changes: _Changes) -> bool:
    deleting = key in changes.deletes
    found = applies(guest.type, key, now.config, deleting=deleting, new=key not in now.config)
    return found == "pending"


def _config_changes(
    draft: Draft, now: Resource, then: Resource, pending_now: set[str], node: str
) -> _Changes:
    """The keys to set, delete and revert (and disks to grow) from the state Proxmox will
    reach (pending applied) to the target's; what cannot be done goes to the draft."""
    changes = _Changes()
    have, want = effective_config(now), effective_config(then)
    for key in differing_keys(have, want):
        old, new = have.get(key), want.get(key)
        if is_disk_key(key) and (has_volume(key, old) or has_volume(key, new)):
            _disk(draft, now, key, old, new, changes, node)
        elif key in pending_now and same(key, now.config.get(key), new):
            changes.reverts.append(key)  # the queued change is unwanted: drop it
        elif new is not None and is_redacted(new):
            draft.warnings.append(
                f"{key} was a secret at the target: the log keeps only its fingerprint, so "
                f"the plan cannot set it; set {key} again by hand"
            )
        elif isinstance(new, list | dict):
            draft.warnings.append(f"{key} cannot be set through the API: set it by hand")
        elif new is None:
            changes.deletes.append(key)
        else:
            changes.sets[key] = new
    return changes


def _disk(
    draft: Draft, now: Resource, key: str, old: Any, new: Any, changes: _Changes, node: str
) -> None:
    """A disk that differs: deleted (detached, data kept), options set back, grown back, its
    detached volume reattached, or a blocker."""
    was, will = disk_volume(old), disk_volume(new)
    if new is None:
        changes.deletes.append(key)
        draft.notes.append(
            f"{key} ({was}) was added after the target: deleting it detaches the volume as an "
            "unusedN entry, which keeps its data until someone deletes it"
        )
    elif old is not None and was == will:
        _same_volume(draft, key, parse_property(key, old), parse_property(key, new), changes, node)
    elif unused := [k for k, v in now.config.items() if is_unused(k) and disk_volume(v) == will]:
        changes.sets[key] = new
        draft.notes.append(f"{key} reattaches {will}, detached as {unused[0]} since the target")
    else:
        how = f"replaced by {was}" if was is not None else "removed"
        draft.blockers.append(
            f"{key} used {will} at the target; it was {how} and the volume is no longer "
            f"attached as an unusedN entry, so config alone cannot bring it back: {draft.holder}"
        )


def _same_volume(
    draft: Draft,
    key: str,
    before: dict[str, str],
    after: dict[str, str],
    changes: _Changes,
    node: str,
) -> None:
    size_now, size_then = size_bytes(before.pop("size", None)), size_bytes(after.pop("size", None))
    if size_now is not None and size_then is not None and size_now > size_then:
        draft.blockers.append(
            f"{key} grew from {format_size(size_then)} to {format_size(size_now)} and a disk "
            f"cannot shrink: {draft.holder}"
        )
    elif size_now is not None and size_then is not None and size_now < size_then:
        guest = draft.guest
        grown = format_size(size_then)
        reason = f"{key} was {grown} at the target; grow it back"
        changes.resizes.append(steps.resize(node, guest.type, guest.vmid, key, grown, reason))
    if not same_property(key, format_property(key, before), format_property(key, after)):
        if size_now is not None:  # the options as they were, at the size the disk has
            after["size"] = format_size(size_now)
        changes.sets[key] = format_property(key, after)


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
