"""How a history is cut into configurations: by observation, never inside one poll."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from collectors.events import FieldChange
from projections.models import HistoryEntry
from projections.rollback.targets import config_groups

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def entry(position: int, seconds: int, event: str, *fields: str) -> HistoryEntry:
    return HistoryEntry(
        position=position,
        event=event,
        observed_at=T0 + timedelta(seconds=seconds),
        observed_after=None,
        actor=None,
        changes=[FieldChange(f, 1, 2) for f in fields],
    )


def test_one_poll_is_one_observation_and_removals_end_lives() -> None:
    history = [
        entry(1, 0, "discovered"),
        entry(2, 10, "status_changed", "status"),
        # one poll: a migration, then a config change; the migration belongs to the new config
        entry(5, 20, "migrated", "node"),
        entry(6, 20, "config_changed", "config.memory"),
        entry(7, 30, "status_changed", "status"),
        entry(9, 40, "removed"),
        entry(12, 50, "discovered"),  # a new guest with the same vmid
    ]
    groups = config_groups(history)
    assert [[e.position for e in g.entries] for g in groups] == [[1, 2], [5, 6, 7], [12]]
    assert [g.ended_by.position if g.ended_by else None for g in groups] == [5, 9, None]
