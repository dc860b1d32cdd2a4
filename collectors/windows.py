"""Observation windows: what bounds each event's ``observed_after`` (DESIGN invariant 6).

The real time of a change lies in ``(observed_after, observed_at]``. ``observed_at`` is taken
when a poll's last answer has arrived; :class:`Windows` keeps what ``observed_after`` needs,
all of it send times of requests on our clock (:class:`collectors.client.Answer`):

* per resource, when the requests of its last fast and deep observations were sent (the
  ``observations`` table's ``last_fast_at``/``last_deep_at``, so a restart continues);
* per scope (``guests``, ``snapshots:lab/qemu/100``, ``backups:local:pve1``, ``tasks:pve1``,
  ...), when its last complete listing was sent (kept in the same table as rows
  ``{cluster}/scope/{scope}``);
* per resource listed but not yet recorded, the last complete listing before it first
  appeared (in memory: a restart forgets it, and then nothing bounds such a resource).

See ``docs/collectors.md`` for the rules and why each is honest.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from eventstore import EventStore

from . import events as ev
from . import observations
from .observe import Observation
from .state import Known, Planned, scope_of

Row = tuple[str, datetime | None, datetime | None]


class Windows:
    """One cluster's observation times; see the module docstring."""

    def __init__(self, cluster: str) -> None:
        self.cluster = cluster
        self._prefix = f"{cluster}/scope/"
        self.seen: dict[str, observations.Seen] = {}
        self.scopes: dict[str, datetime] = {}
        self.first_present: dict[str, datetime | None] = {}

    async def load(self, store: EventStore) -> None:
        """Read the times kept in the ``observations`` table (at start, after a lost race)."""
        rows = await observations.load(store, self.cluster)
        prefix = self._prefix
        self.seen = {rid: row for rid, row in rows.items() if not rid.startswith(prefix)}
        self.scopes = {
            rid.removeprefix(prefix): row[1]
            for rid, row in rows.items()
            if rid.startswith(prefix) and row[1] is not None
        }

    def note_new(self, known: Known, obs: Observation) -> None:
        """Before planning windows: remember when each resource not yet recorded appeared."""
        for rid in sorted(obs.present | set(obs.states)):
            if rid not in known.states and rid not in self.first_present:
                self.first_present[rid] = self._listed_before(rid, obs.states.get(rid))

    def _listed_before(self, rid: str, state: dict[str, Any] | None) -> datetime | None:
        """The last complete listing of a resource's scope that did not show it, if known.

        An observations row as recent as that listing means a listing showed it already
        (unrecorded: its deep read failed, before a restart that forgot when it appeared):
        then nothing bounds it.
        """
        listed = self.scopes.get(scope_of(rid, state))
        seen = [t for t in self.seen.get(rid, (None, None)) if t is not None]
        if listed is not None and seen and max(seen) >= listed:
            return None
        return listed

    def observed_after(self, planned: Planned) -> datetime | None:
        """When the request of the last observation that did not show the change was sent;
        None when no observation bounds it."""
        fast, deep = self.seen.get(planned.stream_id, (None, None))
        if planned.basis == "fast":
            return fast
        if planned.basis == "deep":
            return deep
        if planned.basis == "both":
            return min(fast, deep) if fast is not None and deep is not None else None
        if planned.basis == "removed":  # both kinds of observation showed it there
            return max((t for t in (fast, deep) if t is not None), default=None)
        if planned.basis == "task":
            assert isinstance(planned.event, ev.TaskSeen)
            return self.scopes.get(f"tasks:{planned.event.node}")
        # new: the last complete listing of its scope before it first appeared in one
        return self.first_present.get(planned.stream_id)

    def rows(self, obs: Observation) -> list[Row]:
        """The ``observations`` rows of a poll: (id, fast, deep) send times, and its scopes."""
        rows: list[Row] = []
        for rid, state in obs.states.items():
            fast_type = state["type"] not in ("snapshot", "backup", "pool")
            fast = obs.fast_sent if fast_type else None
            deep = obs.sent.get(rid)
            if obs.kind == "deep" and state["type"] == "node":
                deep = obs.fast_sent  # a node has nothing but fast fields
            if fast or deep:
                rows.append((rid, fast, deep))
        rows.extend((f"{self._prefix}{scope}", at, at) for scope, at in obs.scope_sent.items())
        return rows

    def observed(self, known: Known, obs: Observation, rows: list[Row]) -> None:
        """After the append: the poll's times become the previous observation's."""
        for rid, fast, deep in rows:
            if rid.startswith(self._prefix):
                continue
            old_fast, old_deep = self.seen.get(rid, (None, None))
            self.seen[rid] = (fast or old_fast, deep or old_deep)
        self.scopes.update(obs.scope_sent)
        self.first_present = {
            rid: at
            for rid, at in self.first_present.items()
            if rid not in known.states
            and (rid in obs.present or scope_of(rid, None) not in obs.complete)
        }
