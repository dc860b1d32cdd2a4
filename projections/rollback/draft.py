"""A plan being made, and the answer it becomes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from projections.models import HistoryEntry, Resource

from . import steps
from .guest import GuestId
from .models import PlanStep, PlanTarget, RollbackPlan

NO_DIGEST = "no digest: the {after} changes the config digest in a way no one can know in advance"


@dataclass
class Draft:
    """A plan being made."""

    guest: GuestId
    steps: list[PlanStep] = field(default_factory=list)
    blockers: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    holder: str = "no snapshot or backup of it is known"
    """What could bring back a disk that config cannot (a snapshot or backup)."""


@dataclass
class Context:
    """What the planner knows of the guest."""

    guest: GuestId
    history: list[HistoryEntry]
    removed_at: list[int]
    now: Resource | None


def config_reason(
    sets: Mapping[str, Any], deletes: list[str], reverts: list[str], later: list[str], running: bool
) -> str:
    parts = []
    if sets:
        parts.append("set " + ", ".join(sorted(sets)))
    if deletes:
        parts.append("delete " + ", ".join(sorted(deletes)))
    if reverts:
        parts.append("drop the pending change of " + ", ".join(sorted(reverts)))
    reason = "; ".join(parts) + " as at the target"
    if running:
        now = sorted(k for k in (*sets, *deletes) if k not in later)
        if now:
            reason += "; applied at once on the running guest: " + ", ".join(now)
        if later:
            reason += "; pending until the guest restarts: " + ", ".join(sorted(later))
    return reason


# -- the answer ------------------------------------------------------------------------------
def finish(
    draft: Draft,
    target: PlanTarget,
    now: Resource | None,
    then: Resource | None,
    *,
    vmid: int | None = None,
) -> RollbackPlan:
    numbered = steps.numbered(draft.steps)
    if not numbered and not draft.blockers:
        summary = "nothing to do: the guest is as it was at the target"
    elif draft.blockers:
        summary = f"{len(draft.blockers)} blocker(s): the target cannot be reached as planned"
    else:
        summary = f"{len(numbered)} step(s)"
        disruptive = sum(1 for s in numbered if s.disruptive and not s.fallback)
        if disruptive:
            summary += f", {disruptive} disruptive"
    return RollbackPlan(
        resource=draft.guest.id,
        target=target,
        based_on_digest=now.digest if now is not None else None,
        steps=numbered,
        blockers=draft.blockers,
        warnings=[*draft.warnings, *draft.notes],
        summary=summary,
        based_on_position=now.position if now is not None else None,
        target_position=then.position if then is not None else None,
        vmid=vmid if vmid is not None else draft.guest.vmid,
    )
