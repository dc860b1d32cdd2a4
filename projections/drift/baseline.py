"""Drift against a baseline time: what differs now from how it was at T.

Every field of every resource that existed at both times and whose value differs (as
Proxmox means values, :mod:`projections.drift.compare`), every resource created since T and
every one removed since. ``since`` and ``actor`` say when the value last changed away from its
value at T, and who changed it (:mod:`projections.drift.timeline`).
"""

from __future__ import annotations

from projections.models import Resource

from .compare import Ignore, absent, changed_fields, holding, present, state_of
from .models import DriftItem, DriftKind
from .timeline import Timelines


async def baseline_items(
    then: list[Resource], now: list[Resource], ignore: Ignore, timelines: Timelines
) -> list[DriftItem]:
    """The differences between the inventory at T (``then``) and now (``now``), by id."""
    before = {r.id: r for r in then}
    after = {r.id: r for r in now}
    items: list[DriftItem] = []
    for rid in sorted(before.keys() | after.keys()):
        old, new = before.get(rid), after.get(rid)
        if old is None or new is None:
            kind: DriftKind = "created" if old is None else "removed"
            away = await timelines.departure(rid, absent if old is None else present)
            items.append(away.item(rid, kind))
            continue
        for field, expected, actual in changed_fields(state_of(old), state_of(new), ignore):
            away = await timelines.departure(rid, holding(field, expected, ignore))
            items.append(away.item(rid, "changed", field, expected, actual))
    return items
