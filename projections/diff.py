"""Comparing states as Proxmox means them, for history and net-change answers.

CONTRACT.md: ``4`` and ``"4"`` are the same value and a difference of type alone is never a
change; tags are compared as sets (pve-api.md §8.6: Proxmox may reorder them).
"""

from __future__ import annotations

from typing import Any

from collectors.events import FieldChange

IDENTITY_FIELDS = ("id", "cluster", "type")
"""Fields that name a resource rather than describe it; never listed as changes."""

NESTED_FIELDS = ("config", "pending")
"""Objects whose keys are listed one by one (``config.KEY``)."""


def _scalar(value: Any) -> Any:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            return value
        if text and text[0] in "+-0123456789." and number == number:  # not 'nan', 'inf'
            return str(int(number)) if number.is_integer() else repr(number)
        return value
    return value


def same_value(a: Any, b: Any, *, unordered: bool = False) -> bool:
    """Whether two values mean the same to Proxmox (lists compare as sets if ``unordered``)."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if unordered:
            return sorted(map(str, map(_scalar, a))) == sorted(map(str, map(_scalar, b)))
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple | dict) or isinstance(b, list | tuple | dict):
        return False
    return bool(_scalar(a) == _scalar(b))


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
                if not same_value(x, y):
                    changes.append(FieldChange(f"{key}.{inner}", x, y))
        elif not same_value(a, b, unordered=key == "tags"):
            changes.append(FieldChange(key, a, b))
    return changes


def initial_changes(state: dict[str, Any]) -> list[FieldChange]:
    """A (re)discovery as changes from nothing: every non-null field but the identity ones."""
    return diff_states({}, state)
