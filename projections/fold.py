"""The fold: events in position order to rows of the three projections (no I/O here).

One fold feeds all three projections, because versions and relations both depend on each
resource's state. The runner and the rebuild share this code, so a rebuild gives exactly the
rows that incremental application gave (DESIGN.md invariant 2): batch boundaries decide only
whether a version is written already closed or closed later by an UPDATE.

Times are the backend's own values (TEXT in ``format_time`` form on SQLite, ``datetime`` on
PostgreSQL); the fold only compares them. **Effective time**: a change counts from its
``observed_at`` (CONTRACT.md), but never before an earlier change of the same resource, so a
resource's versions tile time without overlap even if a collector's clock stepped back. In
other words, the state at T is the fold of the longest prefix of the resource's events whose
``observed_at`` are all at or before T.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import msgspec

from collectors.events import (
    CREATES,
    ENDS,
    EVENT_TYPES,
    SCHEMA_VERSION,
    AnyEvent,
    ConfigChanged,
    FieldChange,
    ResourceEvent,
    TaskSeen,
    UnknownEventError,
    decode,
)
from collectors.values import as_int, split_tags

from .errors import ProjectionStoppedError
from .relations import EdgeKey, affects_edges, edges_of

PROJECTIONS = ("resources", "versions", "relations")
"""Projection names, each with its own checkpoint and tables."""

TABLES = {
    "resources": ("proj_resources",),
    "versions": ("proj_versions", "proj_configs"),
    "relations": ("proj_edges",),
}
"""The tables each projection owns."""

_state_encoder = msgspec.json.Encoder(order="sorted")
_state_decoder = msgspec.json.Decoder(dict[str, Any])


class RawEvent(NamedTuple):
    """The envelope fields the fold needs, times in the backend's own form."""

    position: int
    stream_id: str
    type: str
    schema_version: int
    observed_at: Any
    observed_after: Any
    data: bytes


@dataclass(slots=True)
class Tracked:
    """A resource's fold state: what a row of ``proj_resources`` holds."""

    resource_id: str
    state: dict[str, Any]
    removed: bool
    position: int
    time: Any
    first_position: int
    first_seen: Any
    last_seen: Any = None
    edges: set[EdgeKey] | None = None
    """The edges of ``state`` when known (saves deriving them again at the next change)."""
    config_position: int = 0
    """The ``proj_configs`` row (the position of the event that set it) of its config."""


def encode_state(state: dict[str, Any]) -> str:
    """The state as JSON text with sorted keys (one spelling for equal states)."""
    return _state_encoder.encode(state).decode()


def decode_state(text: str | bytes) -> dict[str, Any]:
    """A state from its JSON text."""
    return _state_decoder.decode(text)


def tags_column(tags: Any) -> str:
    """Tags as ``;a;b;`` (``''`` for none), so ``LIKE '%;tag;%'`` finds one on any backend."""
    if not tags:
        return ""
    if isinstance(tags, str):
        tags = split_tags(tags)
    try:
        return f";{';'.join(tags)};"
    except TypeError:  # not all strings
        return f";{';'.join(map(str, tags))};"


def state_columns(resource_id: str, state: dict[str, Any]) -> tuple[Any, ...]:
    """(cluster, type, node, vmid, name, status, tags, pool, lock, digest) of a state."""
    get = state.get
    cluster, kind, vmid, tags = get("cluster"), get("type"), get("vmid"), get("tags")
    if not cluster or not kind:
        parts = resource_id.split("/")
        cluster = cluster or parts[0]
        kind = kind or (parts[1] if len(parts) > 1 else "")
    return (
        cluster,
        kind,
        get("node"),
        vmid if type(vmid) is int else as_int(vmid),
        get("name"),
        get("status"),
        tags_column(tags) if tags else "",
        get("pool"),
        get("lock"),
        get("digest"),
    )


def resource_row(t: Tracked) -> tuple[Any, ...]:
    """The ``proj_resources`` row of a tracked resource."""
    return (
        t.resource_id,
        *state_columns(t.resource_id, t.state),
        encode_state(t.state),
        1 if t.removed else 0,
        t.position,
        t.time,
        t.first_position,
        t.first_seen,
        t.last_seen,
        t.config_position,
    )


RESOURCE_COLUMNS = (
    "resource_id, cluster, type, node, vmid, name, status, tags, pool, lock, digest, state, "
    "removed, position, observed_at, first_position, first_seen, last_seen, config_position"
)
VERSION_COLUMNS = (
    "resource_id, valid_from_position, valid_to_position, valid_from_time, valid_to_time, "
    "cluster, type, node, vmid, name, status, tags, pool, lock, digest, state, config_position, "
    "ended_by_removal"
)
CONFIG_COLUMNS = "position, resource_id, config"
EDGE_COLUMNS = "from_id, rel, to_id, attrs, since_position, since_time, until_position, until_time"


def tracked_from_row(row: Any) -> Tracked:
    """A tracked resource from a ``proj_resources`` row selected as RESOURCE_COLUMNS."""
    return Tracked(
        resource_id=row[0],
        state=decode_state(row[11]),
        removed=bool(row[12]),
        position=row[13],
        time=row[14],
        first_position=row[15],
        first_seen=row[16],
        last_seen=row[17],
        config_position=row[18],
    )


@dataclass(slots=True)
class BatchOutput:
    """The rows one batch of events writes; rows are lists so a later close can fill them."""

    resources: dict[str, Tracked] = field(default_factory=dict)
    version_inserts: dict[tuple[str, int], list[Any]] = field(default_factory=dict)
    version_closes: list[tuple[int, Any, int, str, int]] = field(default_factory=list)
    config_inserts: list[tuple[int, str, str]] = field(default_factory=list)
    edge_inserts: list[list[Any]] = field(default_factory=list)
    open_edges: dict[EdgeKey, list[Any]] = field(default_factory=dict)
    edge_closes: list[tuple[int, Any, str, str, str, str]] = field(default_factory=list)
    events: int = 0
    last_position: int = 0


def carry_open(out: BatchOutput) -> tuple[BatchOutput, BatchOutput]:
    """A rebuild's split of a folded batch: (the rows already closed, to write now; a fresh
    output carrying the still-open versions and edges into the next batch).

    Carried rows are closed in memory when their successor comes, so a rebuild only ever
    inserts (no UPDATE, hence no index needed while it loads); the last batch writes what is
    still open, and the resources.
    """
    closed = BatchOutput(
        config_inserts=out.config_inserts,
        edge_inserts=[row for row in out.edge_inserts if row[6] is not None],
        events=out.events,
        last_position=out.last_position,
    )
    carried = BatchOutput(edge_inserts=list(out.open_edges.values()), open_edges=out.open_edges)
    for key, row in out.version_inserts.items():
        if row[2] is None:
            carried.version_inserts[key] = row
        else:
            closed.version_inserts[key] = row
    assert not out.version_closes, "a rebuild closes its versions in memory"
    assert not out.edge_closes, "a rebuild closes its edges in memory"
    return closed, carried


class Folder:
    """Applies events to tracked resources, writing the resulting rows into a BatchOutput.

    ``cache`` must hold every resource of the events' streams that exists in the tables (the
    runner loads missing ones before each batch); a stream absent from it is new.
    """

    def __init__(self, cache: dict[str, Tracked]) -> None:
        self.cache = cache

    def apply(self, event: RawEvent, out: BatchOutput) -> None:
        """Fold one event; raises :class:`ProjectionStoppedError` on one it cannot read."""
        try:
            payload: AnyEvent | None = None
            if event.schema_version == SCHEMA_VERSION:
                try:
                    payload = _decoder.decode(event.data)
                except msgspec.DecodeError:
                    payload = None
            if type(payload) is not EVENT_TYPES.get(event.type):
                # Another version, type or tag, or unreadable: the vocabulary's own decode,
                # with its upcasting and its errors.
                payload = decode(event.type, event.schema_version, event.data)
        except (UnknownEventError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ProjectionStoppedError(
                f"projections stopped at position {event.position} "
                f"(stream {event.stream_id!r}, type {event.type!r}, schema version "
                f"{event.schema_version}): {exc}",
                event.position,
            ) from exc
        # Counted only once decoded: a batch that stops here writes the events before it.
        out.events += 1
        out.last_position = event.position
        if type(payload) is TaskSeen:
            return  # tasks are never resources; history reads their actor from the envelope
        rid = event.stream_id
        old = self.cache.get(rid)
        time = event.observed_at if old is None else max(event.observed_at, old.time)
        alive = old is not None and not old.removed
        old_state = old.state if old is not None and alive else None
        # Without the old state (a creation, an end, a change of something not alive) the
        # config and the edges may have changed; else only if a changed field says so.
        config_changed = edges_changed = True
        kind = event.type
        if kind in ENDS:
            if old is None or not alive:
                return  # the end of something not alive changes nothing
            new_state: dict[str, Any] | None = None
        elif kind in CREATES:
            state = dict(getattr(payload, "state", {}))
            new_state = self._with_identity(rid, state)
        else:
            assert isinstance(payload, ResourceEvent)
            changes = payload.changes
            if old_state is not None:
                assert old is not None
                config_changed = edges_changed = False
                for change in changes:
                    flags = _FIELD_FLAGS.get(change.field)
                    if flags is None:
                        flags = _field_flags(change.field)
                    config_changed |= flags[0]
                    edges_changed |= flags[1]
                if edges_changed and old.edges is None:
                    old.edges = edges_of(rid, old_state)  # before the state changes in place
                # In place: the tracked resource alone holds its state (its rows hold text).
                new_state = old_state
            else:
                new_state = self._with_identity(rid, {})
            _apply_in_place(new_state, changes)
            if type(payload) is ConfigChanged and payload.digest is not None:
                new_state["digest"] = payload.digest
        self._write(event, out, old, old_state, new_state, time, config_changed, edges_changed)

    @staticmethod
    def _with_identity(rid: str, state: dict[str, Any]) -> dict[str, Any]:
        parts = rid.split("/")
        state.setdefault("id", rid)
        state.setdefault("cluster", parts[0])
        state.setdefault("type", parts[1] if len(parts) > 1 else "")
        return state

    def _write(
        self,
        event: RawEvent,
        out: BatchOutput,
        old: Tracked | None,
        old_state: dict[str, Any] | None,
        new_state: dict[str, Any] | None,
        time: Any,
        config_changed: bool,
        edges_changed: bool,
    ) -> None:
        rid = event.stream_id
        pos = event.position
        alive = old_state is not None
        # versions: close the open one, open the new one
        if old is not None and alive:
            ended = 1 if new_state is None else 0
            pending = out.version_inserts.get((rid, old.position))
            if pending is not None:
                pending[2], pending[4], pending[17] = pos, time, ended
            else:
                out.version_closes.append((pos, time, ended, rid, old.position))
        config_position = old.config_position if old is not None else 0
        if new_state is not None:
            # A config row only when the config may have changed; versions refer to it.
            config = new_state.pop("config", _ABSENT)
            if config_changed:
                text = encode_state(config or {}) if config is not _ABSENT else "{}"
                out.config_inserts.append((pos, rid, text))
                config_position = pos
            rest = encode_state(new_state)  # the state without its config
            if config is not _ABSENT:
                new_state["config"] = config
            out.version_inserts[(rid, pos)] = [
                rid,
                pos,
                None,
                time,
                None,
                *state_columns(rid, new_state),
                rest,
                config_position,
                0,  # ended_by_removal
            ]
        # relations: only when a field an edge depends on may have changed
        after: set[EdgeKey] | None = None
        if edges_changed:
            known = old.edges if old is not None and alive else None
            before = known if known is not None else edges_of(rid, old_state)
            after = edges_of(rid, new_state)
            if before != after:
                for key in sorted(before - after):
                    open_row = out.open_edges.pop(key, None)
                    if open_row is not None:
                        open_row[6], open_row[7] = pos, time
                    else:
                        out.edge_closes.append((pos, time, *key))
                for key in sorted(after - before):
                    edge = [*key, pos, time, None, None]
                    out.edge_inserts.append(edge)
                    out.open_edges[key] = edge
        # current state
        if new_state is None:
            assert old is not None
            # The last observation that showed it: the removal's observed_after, else (not
            # known) its last change.
            old.last_seen = event.observed_after if event.observed_after is not None else old.time
            old.removed = True
            old.position = pos
            old.time = time
            tracked = old
        elif old is None:
            tracked = Tracked(rid, new_state, False, pos, time, pos, time)
            self.cache[rid] = tracked
        else:
            old.state, old.removed, old.position, old.time = new_state, False, pos, time
            old.last_seen = None
            tracked = old
        if after is not None:
            tracked.edges = after
        tracked.config_position = config_position
        out.resources[rid] = tracked


_ABSENT: Any = object()

_decoder = msgspec.json.Decoder(AnyEvent)
"""Payloads at the current schema version, decoded without :func:`collectors.events.decode`'s
call: the fold checks the class it got against the envelope's type instead, and leaves
anything else (another version or type, a bad payload) to that function."""

_FIELD_FLAGS: dict[str, tuple[bool, bool]] = {}
"""Field name -> (changes the config, may change the edges); field names repeat."""

_NESTED_KEYS: dict[str, tuple[str, str] | None] = {}
"""Field name -> (``config`` or ``pending``, key) for a nested key, else None."""

_CACHED_NAMES = 4096
"""Distinct field names remembered in each of the two tables above."""


def _field_flags(name: str) -> tuple[bool, bool]:
    flags = (name.startswith("config."), affects_edges(name))
    if len(_FIELD_FLAGS) < _CACHED_NAMES:
        _FIELD_FLAGS[name] = flags
    return flags


def _nested_key(name: str) -> tuple[str, str] | None:
    prefix, _, key = name.partition(".")
    found = (prefix, key) if key and (prefix == "config" or prefix == "pending") else None
    if len(_NESTED_KEYS) < _CACHED_NAMES:
        _NESTED_KEYS[name] = found
    return found


def _apply_in_place(state: dict[str, Any], changes: list[FieldChange]) -> None:
    """:func:`collectors.events.apply_changes`, changing ``state`` itself (no copies)."""
    for change in changes:
        name = change.field
        nested_key = _NESTED_KEYS[name] if name in _NESTED_KEYS else _nested_key(name)
        if nested_key is not None:
            prefix, key = nested_key
            nested = state.get(prefix)
            if type(nested) is not dict or not nested:
                nested = dict(nested or {})
                state[prefix] = nested
            if change.new is None:
                nested.pop(key, None)
            else:
                nested[key] = change.new
        else:
            state[name] = change.new
