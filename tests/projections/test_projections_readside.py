"""The read side's building blocks on both backends: points, versions at a point, a resource's
state at a point, and a field's last change (also against a naive fold of random logs)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from collectors.events import (
    CREATES,
    ENDS,
    ConfigChanged,
    Discovered,
    Migrated,
    Removed,
    Renamed,
    ResourceEvent,
    StatusChanged,
    apply_changes,
    decode,
)
from eventstore import Actor, EventStore, RecordedEvent, utcnow
from projections.dialects import dialect_for
from projections.diff import diff_states
from projections.errors import InvalidParameterError, QueryError, UnprocessableError
from projections.queries import (
    Filters,
    LastChange,
    Point,
    last_change,
    resolve_point,
    state_at,
    state_of,
    versions_at,
)
from projections.runner import ProjectionRunner
from tests.projections.projection_helpers import (
    BACKUP,
    GUESTS,
    SNAPSHOT,
    at,
    change,
    guest_state,
    new,
    random_events,
    read_log,
)

WEB = "lab/qemu/100"
DB = "lab/lxc/200"
ROOT = Actor(user="root@pam", upid="UPID:pve1:1:2:3:qmigrate:100:root@pam:")


@pytest.fixture
async def lives(store: EventStore) -> EventStore:
    """Two lives of one guest, positions 1-8 (seconds after T0):

    1 @10 web discovered on pve1 (name web, memory 2048);  2 @15 db discovered;
    3 @20 web memory 2048 -> 4096 (root, after 15);  4 @30 web migrated to pve2 (root);
    5 @40 web renamed www;  6 @50 web removed (last seen at 45);
    7 @60 web discovered again on pve3 (www, memory 4096);  8 @70 web stopped.
    """
    web = guest_state(WEB, name="web", tags=["prod"], config={"memory": "2048"})
    again = guest_state(WEB, name="www", node="pve3", tags=["prod"], config={"memory": "4096"})
    await store.append(
        [
            new(WEB, Discovered(state=web), 10),
            new(DB, Discovered(state=guest_state(DB, name="db")), 15),
            new(
                WEB,
                ConfigChanged(changes=change("config.memory", "2048", "4096")),
                20,
                observed_after=15,
                actor=ROOT,
            ),
            new(WEB, Migrated(changes=change("node", "pve1", "pve2")), 30, actor=ROOT),
            new(WEB, Renamed(changes=change("name", "web", "www")), 40),
            new(WEB, Removed(), 50, observed_after=45),
            new(WEB, Discovered(state=again), 60),
            new(WEB, StatusChanged(changes=change("status", "running", "stopped")), 70),
        ]
    )
    await ProjectionRunner(store).catch_up()
    return store


async def test_a_point_names_what_it_reports_bounds_and_stands_at(lives: EventStore) -> None:
    dialect = dialect_for(lives)
    async with lives.read_connection() as conn:
        by_time = await resolve_point(dialect, conn, at(35), None)
        by_position = await resolve_point(dialect, conn, None, 4)
        now = await resolve_point(dialect, conn, None, None)
        bad_points: list[tuple[datetime | None, int | None, type[QueryError], str]] = [
            (at(35), 4, InvalidParameterError, "position"),  # both
            (utcnow() + timedelta(hours=1), None, UnprocessableError, "at"),  # the future
            (None, -1, InvalidParameterError, "position"),
            (None, 9, UnprocessableError, "position"),  # past the head
        ]
        for at_, position, error, param in bad_points:
            with pytest.raises(error) as bad:
                await resolve_point(dialect, conn, at_, position)
            assert type(bad.value) is error
            assert bad.value.param == param
    assert (by_time.at, by_time.position) == (at(35), 8)  # at the projections' checkpoint
    assert dialect.time_out(by_time.time_bound) == at(35)
    assert by_time == Point.of_time(dialect, at(35), 8)
    assert (by_position.at, by_position.time_bound, by_position.position) == (at(30), None, 4)
    assert now.time_bound is None
    assert now.position == 8
    assert now.at is not None


async def test_versions_at_a_point(lives: EventStore) -> None:
    dialect = dialect_for(lives)

    async def read(point: Point, **options: Any) -> list[tuple[str, int, str | None]]:
        async with lives.read_connection() as conn:
            found = await versions_at(dialect, conn, point, **options)
        return [(v.resource_id, v.valid_from_position, state_of(v)["node"]) for v in found]

    t35, t55 = Point.of_time(dialect, at(35), 8), Point.of_time(dialect, at(55), 8)
    assert await read(t35) == [(DB, 2, "pve1"), (WEB, 4, "pve2")]
    assert await read(t35, ids=[WEB]) == [(WEB, 4, "pve2")]
    assert await read(t35, filters=Filters(node="pve2")) == [(WEB, 4, "pve2")]
    assert await read(t35, after=DB) == [(WEB, 4, "pve2")]
    assert await read(t35, limit=1) == [(DB, 2, "pve1")]
    assert await read(t55) == [(DB, 2, "pve1")]  # web removed at 50
    assert await read(t55, include_removed=True) == [(DB, 2, "pve1"), (WEB, 5, "pve2")]
    assert await read(Point(None, None, 3)) == [(DB, 2, "pve1"), (WEB, 3, "pve1")]
    assert await read(Point.of_time(dialect, at(65), 8)) == [(DB, 2, "pve1"), (WEB, 7, "pve3")]
    async with lives.read_connection() as conn:
        [web] = await versions_at(dialect, conn, t55, ids=[WEB], include_removed=True)
    assert (web.ended_by_removal, web.valid_to_position) == (1, 6)
    assert dialect.time_out(web.valid_from_time) == at(40)
    assert dialect.time_out(web.valid_to_time) == at(50)
    assert state_of(web)["config"] == {"memory": "4096"}


async def test_a_resource_state_at_a_point(lives: EventStore) -> None:
    dialect = dialect_for(lives)
    async with lives.read_connection() as conn:
        at45 = await state_at(dialect, conn, WEB, Point.of_time(dialect, at(45), 8))
        at55 = await state_at(dialect, conn, WEB, Point.of_time(dialect, at(55), 8))
        at65 = await state_at(dialect, conn, WEB, Point.of_time(dialect, at(65), 8))
        third = await state_at(dialect, conn, WEB, Point(None, None, 3))
        unknown = await state_at(dialect, conn, "lab/qemu/999", Point(None, None, 8))
    assert at45 is not None
    assert (at45.name, at45.node, at45.position) == ("www", "pve2", 5)
    assert at45.valid_until == at(50)
    assert at55 is None
    assert unknown is None
    assert at65 is not None
    assert (at65.node, at65.status, at65.observed_at) == (
        "pve3",
        "running",
        at(60),
    )
    assert third is not None
    assert third.config == {"memory": "4096"}


Found = tuple[int, datetime, Any, Any, str]


def _expect(position: int, seconds: float, old: Any, new_value: Any, event: str) -> Found:
    return (position, at(seconds), old, new_value, event)


async def test_a_fields_last_change(lives: EventStore) -> None:
    dialect = dialect_for(lives)

    async def last(field: str, point: Point, rid: str = WEB) -> Found | None:
        async with lives.read_connection() as conn:
            found = await last_change(dialect, conn, rid, field, point)
        if found is None:
            return None
        assert (found.resource_id, found.field) == (rid, field)
        return (found.position, found.at, found.old, found.new, found.event)

    def time(seconds: float) -> Point:
        return Point.of_time(dialect, at(seconds), 8)

    assert await last("name", time(45)) == _expect(5, 40, "web", "www", "renamed")
    assert await last("name", time(39)) == _expect(1, 10, None, "web", "discovered")
    assert await last("name", time(55)) == _expect(6, 50, "www", None, "removed")
    # the second life begins with a change from nothing, although the name is the same
    assert await last("name", time(75)) == _expect(7, 60, None, "www", "discovered")
    assert await last("node", time(35)) == _expect(4, 30, "pve1", "pve2", "migrated")
    assert await last("config.memory", time(35)) == _expect(3, 20, "2048", "4096", "config_changed")
    assert await last("config.memory", time(15)) == _expect(1, 10, None, "2048", "discovered")
    assert await last("config.memory", time(75)) == _expect(7, 60, None, "4096", "discovered")
    assert await last("tags", time(45)) == _expect(1, 10, None, ["prod"], "discovered")
    assert await last("status", time(75)) == _expect(8, 70, "running", "stopped", "status_changed")
    assert await last("status", time(69)) == _expect(7, 60, None, "running", "discovered")
    assert await last("node", Point(None, None, 3)) == _expect(1, 10, None, "pve1", "discovered")
    assert await last("name", time(5)) is None  # before anything
    assert await last("pool", time(75)) is None  # never set
    assert await last("config.cores", time(75)) is None
    assert await last("name", time(75), rid="lab/qemu/999") is None
    # the event's window and actor
    async with lives.read_connection() as conn:
        memory = await last_change(dialect, conn, WEB, "config.memory", time(35))
        removal = await last_change(dialect, conn, WEB, "node", time(55))
    assert memory == LastChange(
        resource_id=WEB,
        field="config.memory",
        position=3,
        at=at(20),
        old="2048",
        new="4096",
        event="config_changed",
        observed_at=at(20),
        observed_after=at(15),
        actor=ROOT,
    )
    assert removal is not None
    assert (removal.position, removal.old, removal.new) == (6, "pve2", None)
    assert (removal.observed_after, removal.actor) == (at(45), None)


async def test_a_fields_last_change_far_back_reads_the_versions_in_steps(
    store: EventStore,
) -> None:
    """Many versions since the change (more than one read's worth): the walk reads on."""
    state = guest_state(WEB, config={"memory": "2048"})
    flips = [
        new(WEB, StatusChanged(changes=change("status", s, t)), 10 + n)
        for n, (s, t) in enumerate([("running", "stopped"), ("stopped", "running")] * 60)
    ]
    memory = ConfigChanged(changes=change("config.memory", "2048", 4))
    await store.append([new(WEB, Discovered(state=state), 5), new(WEB, memory, 8), *flips])
    await store.append([new(WEB, ConfigChanged(changes=change("config.memory", 4, "4")), 200)])
    await ProjectionRunner(store).catch_up()
    dialect = dialect_for(store)
    async with store.read_connection() as conn:
        for point in (Point(None, None, 123), Point.of_time(dialect, at(300), 123)):
            name = await last_change(dialect, conn, WEB, "name", point)
            assert name is not None
            assert (name.position, name.new) == (1, "vm100")
            # 4 -> "4" is no change: the last change of the memory is still the second event
            config = await last_change(dialect, conn, WEB, "config.memory", point)
            assert config is not None
            assert (config.position, config.old, config.new) == (
                2,
                "2048",
                4,
            )
            status = await last_change(dialect, conn, WEB, "status", point)
            assert status is not None
            assert status.position == 122


# -- against a naive fold ----------------------------------------------------------------------
def _value(state: dict[str, Any] | None, field: str) -> Any:
    if state is None:
        return None
    prefix, _, key = field.partition(".")
    if key:
        return (state.get(prefix) or {}).get(key)
    return state.get(field)


def _naive_steps(
    log: list[RecordedEvent], rid: str
) -> Iterator[tuple[RecordedEvent, datetime, dict[str, Any] | None, dict[str, Any] | None]]:
    """Each event of a stream, its effective time, and the state before and after it."""
    state: dict[str, Any] | None = None
    effective: datetime | None = None
    parts = rid.split("/")
    identity = {"id": rid, "cluster": parts[0], "type": parts[1]}
    for e in log:
        if e.stream_id != rid:
            continue
        effective = e.observed_at if effective is None else max(effective, e.observed_at)
        payload = decode(e.type, e.schema_version, e.data)
        after: dict[str, Any] | None
        if e.type in CREATES:
            after = {**identity, **getattr(payload, "state", {})}
        elif e.type in ENDS:
            after = None
        else:
            assert isinstance(payload, ResourceEvent)
            after = apply_changes(state if state is not None else identity, payload.changes)
            if isinstance(payload, ConfigChanged) and payload.digest is not None:
                after["digest"] = payload.digest
        yield e, effective, state, after
        state = after


def _naive_last_change(
    log: list[RecordedEvent], rid: str, field: str, t: datetime | None, p: int
) -> LastChange | None:
    """The newest event within (t, p) whose diff of the whole states lists the field."""
    found = None
    for e, effective, before, after in _naive_steps(log, rid):
        if e.position > p or (t is not None and effective > t):
            break
        for c in diff_states(before or {}, after or {}):
            if c.field == field:
                found = LastChange(
                    resource_id=rid,
                    field=field,
                    position=e.position,
                    at=effective,
                    old=c.old,
                    new=c.new,
                    event=e.type,
                    observed_at=e.observed_at,
                    observed_after=e.observed_after,
                    actor=e.actor,
                )
    return found


FIELDS = [
    "name",
    "node",
    "status",
    "tags",
    "pool",
    "lock",
    "digest",
    "ha_state",
    "size",
    "config.memory",
    "config.cores",
    "config.net0",
    "config.scsi0",
]


@pytest.mark.parametrize("seed", [3, 41])
async def test_a_fields_last_change_is_what_a_naive_fold_says(store: EventStore, seed: int) -> None:
    rng = random.Random(seed)
    events = random_events(rng, 260)
    runner = ProjectionRunner(store, batch_size=rng.randint(5, 60))
    for start in range(0, len(events), 40):
        await store.append(events[start : start + 40])
        await runner.catch_up()
    log = await read_log(store)
    dialect = dialect_for(store)
    head = log[-1].position
    last = max(e.observed_at for e in log)
    points: list[tuple[datetime | None, int]] = [(None, head), (None, head // 3)]
    for fraction in (0.2, 0.5, 0.77, 1.0):
        points.append((at(0) + (last - at(0)) * fraction, head))
        points.append((log[int(fraction * (len(log) - 1))].observed_at, head))
    points.append((at(0) + (last - at(0)) * 0.9, head * 2 // 3))  # a time and an older position
    checked = 0
    async with store.read_connection() as conn:
        for rid in [*GUESTS, SNAPSHOT, BACKUP]:
            for field in FIELDS:
                for t, p in points:
                    point = Point.of_time(dialect, t, p) if t is not None else Point(None, None, p)
                    want = _naive_last_change(log, rid, field, t, p)
                    got = await last_change(dialect, conn, rid, field, point)
                    assert got == want, (rid, field, t, p)
                    checked += want is not None
    assert checked > 200  # most answers are changes, not None
