"""The read side's building blocks on both backends: points, versions at a point and a
resource's state at a point."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from collectors.events import (
    ConfigChanged,
    Discovered,
    Migrated,
    Removed,
    Renamed,
    StatusChanged,
)
from eventstore import Actor, EventStore, utcnow
from projections.dialects import dialect_for
from projections.errors import InvalidParameterError, QueryError, UnprocessableError
from projections.queries import (
    Filters,
    Point,
    resolve_point,
    state_at,
    state_of,
    versions_at,
)
from projections.runner import ProjectionRunner
from tests.projections.projection_helpers import (
    at,
    change,
    guest_state,
    new,
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
