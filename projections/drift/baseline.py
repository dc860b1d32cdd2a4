"""Drift against a baseline time: what differs now from how it was at T.

Every field of every resource that existed at both times and whose value differs (as
Proxmox means values, :mod:`projections.drift.compare`), every resource created since T and
every one removed since, each with what its value at T was (``since`` and ``actor`` are read
for them by :mod:`projections.drift.timeline`).
"""

from __future__ import annotations

from projections.models import Resource

from .compare import Ignore, absent, changed_fields, holding, present, state_of
from .timeline import Difference


def baseline_differences(
    then: list[Resource], now: list[Resource], ignore: Ignore
) -> list[Difference]:
    """The differences between the inventory at T (``then``) and now (``now``), by id."""
    before = {r.id: r for r in then}
    after = {r.id: r for r in now}
    found: list[Difference] = []
    for rid in sorted(before.keys() | after.keys()):
        old, new = before.get(rid), after.get(rid)
        if old is None:
            found.append(Difference(rid, "created", holds=absent))
        elif new is None:
            found.append(Difference(rid, "removed", holds=present))
        else:
            for field, expected, actual in changed_fields(state_of(old), state_of(new), ignore):
                holds = holding(field, expected, ignore)
                found.append(Difference(rid, "changed", field, expected, actual, holds))
    return found
