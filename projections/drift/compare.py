"""Field values and their comparison, as Proxmox means them, for drift reports.

Every comparison is :mod:`collectors.values`' (the one home of Proxmox value rules): resource
fields and config keys with :func:`~collectors.values.same` (``4096`` = ``"4096"``, tags as
sets, property strings key by key in any order), one item of a property string
(``config.net0.bridge``) with :func:`~collectors.values.same_item` (sizes as sizes, flags as
flags, MACs in any case) after :func:`~collectors.values.parse_property` names the unnamed
first item (``model``/``macaddr`` of a NIC, ``volume`` of a disk). Ignore patterns are globs
over field names; an ignored item of a property string (``config.net*.macaddr``) is left out
when the whole string is compared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any

from collectors.values import (
    format_property,
    is_masked,
    parse_property,
    property_format,
    same,
    same_item,
)

from ..models import Resource

BASELINE_FIELDS = ("name", "node", "status", "tags", "pool", "lock")
"""The resource fields a baseline compares (CONTRACT.md "Changes"), besides ``config.KEY``."""

State = Mapping[str, Any]
"""A resource's fields and ``config``, as a :class:`Resource` or a folded history state."""


class Ignore:
    """Glob patterns over field names (``digest``, ``config.vmgenid``, ``config.net*.macaddr``)."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(dict.fromkeys(patterns))

    def __call__(self, field: str) -> bool:
        """Whether ``field`` is ignored."""
        return any(fnmatchcase(field, pattern) for pattern in self.patterns)

    def with_more(self, patterns: Iterable[str]) -> Ignore:
        """These patterns and ``patterns`` (a spec's own beside the configuration's)."""
        return Ignore((*self.patterns, *patterns))


def state_of(resource: Resource) -> dict[str, Any]:
    """A resource's comparable fields as a state mapping."""
    return {
        "name": resource.name,
        "node": resource.node,
        "status": resource.status,
        "tags": resource.tags,
        "pool": resource.pool,
        "lock": resource.lock,
        "config": resource.config,
    }


def value_of(state: State | None, field: str) -> Any:
    """The value of ``field`` in ``state`` (None: absent, or no resource)."""
    if state is None:
        return None
    prefix, _, rest = field.partition(".")
    if prefix != "config" or not rest:
        return state.get(field)
    key, _, item = rest.partition(".")
    value = (state.get("config") or {}).get(key)
    if not item:
        return value
    return parse_property(key, value).get(item) if value is not None else None


def differs(field: str, expected: Any, actual: Any, ignore: Ignore) -> bool:
    """Whether ``actual`` differs from ``expected`` for ``field``, as Proxmox means values."""
    prefix, _, rest = field.partition(".")
    if prefix != "config" or not rest:
        return not same(field, expected, actual)
    key, _, item = rest.partition(".")
    if item:
        if expected is None or actual is None:
            return (expected is None) != (actual is None)
        if is_masked(actual):
            return False  # Proxmox hides it: unknown, so no difference we could know
        return not same_item(item, expected, actual)
    if (
        isinstance(expected, str)
        and isinstance(actual, str)
        and property_format(key) is not None
        and ignore.patterns
    ):
        expected, actual = (
            _without_ignored(key, expected, ignore),
            _without_ignored(key, actual, ignore),
        )
    return not same(key, expected, actual)


def _without_ignored(key: str, value: str, ignore: Ignore) -> str:
    items = parse_property(key, value)
    kept = {name: text for name, text in items.items() if not ignore(f"config.{key}.{name}")}
    return value if len(kept) == len(items) else format_property(key, kept)


def changed_fields(before: State, after: State, ignore: Ignore) -> list[tuple[str, Any, Any]]:
    """Every field of a baseline comparison whose value differs: ``(field, before, after)``,
    sorted by field; resource fields and each ``config.KEY``."""
    fields = [*BASELINE_FIELDS]
    keys = set(before.get("config") or {}) | set(after.get("config") or {})
    fields += [f"config.{key}" for key in keys]
    found = []
    for field in sorted(fields):
        if ignore(field):
            continue
        old, new = value_of(before, field), value_of(after, field)
        if differs(field, old, new, ignore):
            found.append((field, old, new))
    return found


def holding(field: str, expected: Any, ignore: Ignore) -> Callable[[State | None], bool]:
    """Whether a state (None: no resource) holds ``expected`` for ``field``."""

    def holds(state: State | None) -> bool:
        return not differs(field, expected, value_of(state, field), ignore)

    return holds


def absent(state: State | None) -> bool:
    """Whether there was no resource (the expected state of one created since a baseline)."""
    return state is None


def present(state: State | None) -> bool:
    """Whether there was a resource (the expected state of one removed since, or missing)."""
    return state is not None
