"""Drift against a desired set: what in Proxmox differs from what the set says it should be.

Each spec finds its resources by id, or by cluster, type and name; only the fields it names
are compared (partial specs), each as Proxmox means values, with the configuration's and the
spec's ignore patterns. A spec that finds nothing is ``missing``; with ``unmanaged``, each
guest that no spec found is ``unmanaged`` (``since``/``actor`` are read for them by
:mod:`projections.drift.timeline`).
"""

from __future__ import annotations

from collections import defaultdict

from collectors.values import GUEST_TYPES
from projections.models import Resource

from .compare import Ignore, absent, differs, holding, present, state_of, value_of
from .desired import DesiredDocument, DesiredResource
from .timeline import Difference


def desired_differences(
    document: DesiredDocument, now: list[Resource], ignore: Ignore, *, unmanaged: bool = False
) -> list[Difference]:
    """The differences between the inventory now and the set, by id and field."""
    by_id = {r.id: r for r in now}
    by_name: dict[tuple[str, str, str], list[Resource]] = defaultdict(list)
    for resource in now:
        if resource.name is not None:
            by_name[(resource.cluster, resource.type, resource.name)].append(resource)
    covered: set[str] = set()
    found: dict[tuple[str, str, str], Difference] = {}
    for spec in document.resources:
        rules = ignore.with_more(spec.ignore)
        matched = _matched(spec, by_id, by_name)
        if not matched:
            missing = _missing(spec)
            found.setdefault(missing.key, missing)
        for resource in matched:
            covered.add(resource.id)
            state = state_of(resource)
            for field, expected in spec.fields.items():
                actual = value_of(state, field)
                if rules(field) or not differs(field, expected, actual, rules):
                    continue
                holds = holding(field, expected, rules)
                changed = Difference(resource.id, "changed", field, expected, actual, holds)
                found.setdefault(changed.key, changed)
    if unmanaged:
        for resource in now:
            if resource.type in GUEST_TYPES and resource.id not in covered:
                other = Difference(resource.id, "unmanaged", holds=absent)
                found[other.key] = other
    return [found[key] for key in sorted(found)]


def _matched(
    spec: DesiredResource,
    by_id: dict[str, Resource],
    by_name: dict[tuple[str, str, str], list[Resource]],
) -> list[Resource]:
    match = spec.match
    if match.id is not None:
        found = by_id.get(match.id)
        return [found] if found is not None else []
    # All three are there: checked when the set was parsed.
    return by_name.get((match.cluster or "", match.type or "", match.name or ""), [])


def _missing(spec: DesiredResource) -> Difference:
    match = spec.match
    if match.id is not None:
        # since: its removal, if it ever existed
        return Difference(match.id, "missing", holds=present)
    return Difference(f"{match.cluster}/{match.type}?name={match.name}", "missing")
