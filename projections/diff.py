"""Comparing states as Proxmox means them, for history and net-change answers.

CONTRACT.md: ``4`` and ``"4"`` are the same value and a difference of type alone is never a
change; tags are compared as sets (pve-api.md §8.6: Proxmox may reorder them). The rule is the
collectors' own (:func:`collectors.values.same`), so an answer lists a change exactly where the
collectors would have recorded one.
"""

from __future__ import annotations

from typing import Any

from collectors.events import FieldChange
from collectors.values import same

IDENTITY_FIELDS = ("id", "cluster", "type")
"""Fields that name a resource rather than describe it; never listed as changes."""

NESTED_FIELDS = ("config", "pending")
"""Objects whose keys are listed one by one (``config.KEY``)."""


def diff_states(old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    """The fields whose values differ, as ``FieldChange`` rows sorted by field."""
    changes: list[FieldChange] = []
    for key in sorted(set(old) | set(new)):
        if key in IDENTITY_FIELDS:
            continue
        a, b = old.get(key), new.get(key)
        if key in NESTED_FIELDS and isinstance(a or {}, dict) and isinstance(b or {}, dict):
            inner_a, inner_b = a or {}, b or {}
            for inner in sorted(set(inner_a) | set(inner_b)):
                x, y = inner_a.get(inner), inner_b.get(inner)
                if not same(inner, x, y):
                    changes.append(FieldChange(f"{key}.{inner}", x, y))
        elif not same(key, a, b):
            changes.append(FieldChange(key, a, b))
    return changes


def initial_changes(state: dict[str, Any]) -> list[FieldChange]:
    """A (re)discovery as changes from nothing: every non-null field but the identity ones
    (an empty list too: the fields it was discovered with, not what differs from nothing)."""
    changes: list[FieldChange] = []
    for key in sorted(state):
        value = state[key]
        if key in IDENTITY_FIELDS or value is None:
            continue
        if key in NESTED_FIELDS and isinstance(value, dict):
            for inner in sorted(value):
                if value[inner] is not None:
                    changes.append(FieldChange(f"{key}.{inner}", None, value[inner]))
        else:
            changes.append(FieldChange(key, None, value))
    return changes
