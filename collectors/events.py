"""The Proxmox VE event vocabulary: defined once, imported by writers and readers.

Every event is a frozen, tagged msgspec Struct; the tag is the envelope's ``type``. Payloads are
encoded with :func:`encode` and decoded with :func:`decode` (which upcasts old schema versions).
Rules of evolution: a new field gets a default; a field is never retyped or renamed; a change
of meaning is a new ``schema_version`` with an upcaster in :data:`UPCASTERS`.

The state model. A resource's state is a flat JSON object (see :data:`STATE_FIELDS`): the
resource fields of CONTRACT.md plus ``config`` (Proxmox keys and values, secrets already
fingerprinted), ``pending`` (pending config values of a running guest) and type-specific
fields (``ha_state``, a snapshot's ``parent``, a backup's ``size``, ...). Every event that
changes a resource lists its changes as :class:`FieldChange` rows, so a reader folds any
event the same way (:func:`apply_changes`) and history needs no per-type code:

* ``field`` is a top-level state field (``name``, ``node``, ``status``, ``tags``, ``pool``,
  ``lock``, ...), or ``config.KEY`` / ``pending.KEY`` for one key of those objects;
* ``old``/``new`` are the values, ``None`` meaning absent (Proxmox never returns null), so an
  added config key has ``old=None`` and a deleted one ``new=None``.

Streams: one per resource id as CONTRACT.md names them (``lab/qemu/100``,
``lab/snapshot/qemu/100/NAME``, ``lab/backup/STORAGE/VOLUME``, ...); tasks go to
``{cluster}/task/{UPID}`` streams and are never resources.
"""

from __future__ import annotations

from typing import Any

import msgspec

SCHEMA_VERSION = 1
"""The schema version every event type is written at today."""

STATE_FIELDS = (
    "id",
    "cluster",
    "type",
    "node",
    "vmid",
    "name",
    "status",
    "tags",
    "pool",
    "lock",
    "config",
    "digest",
)
"""Fields every resource state carries (``None`` where they do not apply); more may follow."""


class FieldChange(msgspec.Struct, frozen=True):
    """One field's change: ``field`` as described in the module docstring."""

    field: str
    old: Any = None
    new: Any = None


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every event type."""


class ResourceEvent(Event, frozen=True, kw_only=True):
    """An event that changes a resource's state by the listed field changes."""

    changes: list[FieldChange] = []


class Discovered(Event, frozen=True, kw_only=True, tag="discovered"):
    """A resource seen for the first time (or again after ``removed``): its whole state."""

    state: dict[str, Any]


class ConfigChanged(ResourceEvent, frozen=True, kw_only=True, tag="config_changed"):
    """Applied config keys changed (``config.KEY`` rows); ``digest`` is the new config digest."""

    digest: str | None = None


class PendingChangeSeen(ResourceEvent, frozen=True, kw_only=True, tag="pending_change_seen"):
    """A running guest got pending config values (``pending.KEY`` rows), applied at reboot."""


class PendingChangeApplied(ResourceEvent, frozen=True, kw_only=True, tag="pending_change_applied"):
    """Pending values became the config (or were reverted): ``pending.KEY`` rows to ``None``."""


class StatusChanged(ResourceEvent, frozen=True, kw_only=True, tag="status_changed"):
    """``status`` changed (running, stopped, paused, online, offline, available, ...)."""


class Migrated(ResourceEvent, frozen=True, kw_only=True, tag="migrated"):
    """A guest moved to another node: a ``node`` row (never a removal plus a creation)."""


class Renamed(ResourceEvent, frozen=True, kw_only=True, tag="renamed"):
    """``name`` changed."""


class TagsChanged(ResourceEvent, frozen=True, kw_only=True, tag="tags_changed"):
    """``tags`` changed (lists of tag strings, as Proxmox orders them)."""


class LockTaken(ResourceEvent, frozen=True, kw_only=True, tag="lock_taken"):
    """A guest lock appeared (``backup``, ``migrate``, ``snapshot``, ...)."""


class LockReleased(ResourceEvent, frozen=True, kw_only=True, tag="lock_released"):
    """A guest lock went away."""


class PoolChanged(ResourceEvent, frozen=True, kw_only=True, tag="pool_changed"):
    """Pool membership changed (``pool`` row)."""


class FieldsChanged(ResourceEvent, frozen=True, kw_only=True, tag="fields_changed"):
    """Any other observed state field changed (``ha_state``, a storage's ``shared``, ...)."""


class Learned(ResourceEvent, frozen=True, kw_only=True, tag="learned"):
    """Fields first observed after the discovery, which could not see them: not a change.

    A resource listed while its node was offline is discovered with what is known and its
    state's ``unknown`` lists the fields it lacks (``name``, ``status``, ``config``, ...).
    When they are first observed, this event sets them (``old`` is what the state held:
    ``None``, or ``"unknown"`` for a status) and shrinks ``unknown`` (a row of its own; to
    ``None`` once nothing is missing). Readers fold it like any other resource event; history
    shows it as its own type, so no ``renamed`` from ``None`` ever appears.
    """


class SnapshotCreated(Event, frozen=True, kw_only=True, tag="snapshot_created"):
    """A snapshot appeared; its stream is ``{cluster}/snapshot/{kind}/{vmid}/{name}``."""

    state: dict[str, Any]


class SnapshotRemoved(Event, frozen=True, kw_only=True, tag="snapshot_removed"):
    """A snapshot is gone (a complete, successful listing no longer shows it)."""


class BackupSeen(Event, frozen=True, kw_only=True, tag="backup_seen"):
    """A backup archive appeared; its stream is ``{cluster}/backup/{storage}/{volume}``."""

    state: dict[str, Any]


class BackupRemoved(Event, frozen=True, kw_only=True, tag="backup_removed"):
    """A backup archive is gone (a complete, successful listing no longer shows it)."""


class Removed(Event, frozen=True, kw_only=True, tag="removed"):
    """A resource is gone: a complete, successful observation no longer shows it."""


class TaskSeen(Event, frozen=True, kw_only=True, tag="task_seen"):
    """A Proxmox task finished; stream ``{cluster}/task/{UPID}``. The source of ``actor``."""

    upid: str
    node: str
    task_type: str
    task_id: str | None = None
    user: str | None = None
    token: str | None = None
    starttime: int | None = None
    endtime: int | None = None
    status: str | None = None


AnyEvent = (
    Discovered
    | ConfigChanged
    | PendingChangeSeen
    | PendingChangeApplied
    | StatusChanged
    | Migrated
    | Renamed
    | TagsChanged
    | LockTaken
    | LockReleased
    | PoolChanged
    | FieldsChanged
    | Learned
    | SnapshotCreated
    | SnapshotRemoved
    | BackupSeen
    | BackupRemoved
    | Removed
    | TaskSeen
)

EVENT_TYPES: dict[str, type[Event]] = {cls.__struct_config__.tag: cls for cls in AnyEvent.__args__}
"""Tag -> class for every known event type."""

CREATES = ("discovered", "snapshot_created", "backup_seen")
"""Event types that (re)start a resource's life with a whole state."""

ENDS = ("removed", "snapshot_removed", "backup_removed")
"""Event types that end a resource's life."""

_encoder = msgspec.json.Encoder(order="sorted")
_decoder = msgspec.json.Decoder(AnyEvent)


class UnknownEventError(Exception):
    """An event type or schema version this code does not know; never skipped silently."""


UPCASTERS: dict[tuple[str, int], Any] = {}
"""(type, old schema_version) -> function(raw dict) -> raw dict at the next version."""


def encode(event: Event) -> bytes:
    """The payload bytes for the envelope's ``data`` (sorted keys: stable across runs)."""
    return _encoder.encode(event)


def type_of(event: Event) -> str:
    """The tag of an event: the envelope's ``type``."""
    return str(event.__struct_config__.tag)


def decode(type_: str, schema_version: int, data: bytes) -> AnyEvent:
    """Decode a payload of a known type and version, upcasting old versions first."""
    if type_ not in EVENT_TYPES:
        raise UnknownEventError(f"unknown event type {type_!r}")
    if schema_version == SCHEMA_VERSION:
        event = _decoder.decode(data)
    elif schema_version < SCHEMA_VERSION:
        raw = msgspec.json.decode(data)
        version = schema_version
        while version < SCHEMA_VERSION:
            upcast = UPCASTERS.get((type_, version))
            if upcast is None:
                raise UnknownEventError(f"no upcaster for {type_!r} schema version {version}")
            raw = upcast(raw)
            version += 1
        event = msgspec.convert(raw, AnyEvent)
    else:
        raise UnknownEventError(
            f"event type {type_!r} at schema version {schema_version} is newer than this "
            f"pvetrail (knows up to {SCHEMA_VERSION}); upgrade pvetrail"
        )
    if type_of(event) != type_:
        raise UnknownEventError(f"payload tag {type_of(event)!r} does not match type {type_!r}")
    return event


def apply_changes(state: dict[str, Any], changes: list[FieldChange]) -> dict[str, Any]:
    """A new state: ``state`` with the field changes applied (``None`` removes a key)."""
    result = dict(state)
    for change in changes:
        prefix, _, key = change.field.partition(".")
        if key and prefix in ("config", "pending"):
            nested = dict(result.get(prefix) or {})
            if change.new is None:
                nested.pop(key, None)
            else:
                nested[key] = change.new
            result[prefix] = nested
        else:
            result[change.field] = change.new
    return result
