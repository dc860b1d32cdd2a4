"""Plans for a snapshot target: Proxmox's snapshot rollback, with what it discards and
whether RAM comes back, then what the rollback keeps (the description) set as it was."""

from __future__ import annotations

from datetime import datetime

from eventstore import EventStore, format_time
from projections import queries
from projections.errors import NotFoundError, UnprocessableError
from projections.models import Resource

from . import steps
from .draft import NO_DIGEST, Context, Draft, config_reason, finish
from .guest import effective_config, is_template, life_of, snapshot_time, snapshots
from .keys import differing_keys
from .models import PlanTarget, RollbackPlan


async def rollback_snapshot(
    store: EventStore, ctx: Context, target: PlanTarget, name: str
) -> RollbackPlan:
    """The plan back to an existing snapshot (422 for one that does not exist now)."""
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
