"""Reading back what the collectors appended, for assertions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from collectors import events as ev
from eventstore import EventStore, RecordedEvent
from eventstore.envelope import Actor
from tests.waiting import until

__all__ = ["Seen", "not_tasks", "read_events", "summary", "until"]


@dataclass
class Seen:
    """One appended event, decoded."""

    recorded: RecordedEvent
    event: ev.Event

    @property
    def stream(self) -> str:
        return self.recorded.stream_id

    @property
    def type(self) -> str:
        return self.recorded.type

    @property
    def actor(self) -> Actor | None:
        return self.recorded.actor

    def changes(self) -> dict[str, tuple[Any, Any]]:
        """field -> (old, new) of a resource event."""
        assert isinstance(self.event, ev.ResourceEvent), self.type
        return {c.field: (c.old, c.new) for c in self.event.changes}


async def read_events(store: EventStore, after: int = 0) -> list[Seen]:
    """Every event after a position, decoded."""
    out = []
    async for recorded in store.read_all(after):
        out.append(Seen(recorded, ev.decode(recorded.type, recorded.schema_version, recorded.data)))
    return out


def summary(events: list[Seen], *, tasks: bool = False) -> list[tuple[str, str]]:
    """(stream, type) pairs, task streams left out unless asked for."""
    return [(e.stream, e.type) for e in events if tasks or e.type != "task_seen"]


def not_tasks(events: list[Seen]) -> list[Seen]:
    """The events that are not task_seen."""
    return [e for e in events if e.type != "task_seen"]
