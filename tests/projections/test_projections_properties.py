"""Property: for random logs and random times, the versions table answers what a naive fold
of the log answers (inventory, one resource, net change and relations; by time and position).
"""

from __future__ import annotations

import asyncio
import random
import tempfile
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import EventStore, open_store
from eventstore.postgres import split_url
from projections.diff import diff_states
from projections.queries import changes, inventory, relations
from projections.relations import edges_of
from projections.runner import ProjectionRunner
from tests.projections.projection_helpers import (
    at,
    naive_states,
    normalise,
    random_events,
    read_log,
    resource_state,
)


async def _check(store: EventStore, seed: int, count: int, probes: list[float]) -> None:
    rng = random.Random(seed)
    events = random_events(rng, count)
    runner = ProjectionRunner(store, batch_size=rng.randint(1, 40))
    for start in range(0, len(events), 25):
        await store.append(events[start : start + 25])
        await runner.catch_up()
    log = await read_log(store)
    last = max(e.observed_at for e in log)
    for fraction in probes:
        # times on, between and around the events' own times
        t = at(0) + (last - at(0) + timedelta(seconds=2)) * fraction
        if fraction > 0.5:
            t = log[int(fraction * (len(log) - 1))].observed_at
        expected = naive_states(log, t=t)
        page = await inventory(store, at=t, limit=1000)
        assert {r.id: resource_state(r) for r in page.items} == {
            rid: normalise(s) for rid, s in expected.items()
        }, f"inventory at {t}"
        # the whole inventory in one page, and a filtered page (every id has a '/'): one index
        # scan on PostgreSQL instead of a probe per resource, the same answer
        whole = await inventory(store, at=t, limit=None)
        assert whole.items == page.items, f"whole inventory at {t}"
        filtered = await inventory(store, at=t, limit=1000, q="/")
        assert filtered.items == page.items, f"filtered inventory at {t}"
        graph = await relations(store, at=t)
        got_edges = {(e.from_, e.rel, e.to) for e in graph.edges}
        want_edges = {k[:3] for rid, s in expected.items() for k in edges_of(rid, s)}
        assert got_edges == want_edges, f"relations at {t}"
        p = int(fraction * len(log))
        by_position = await inventory(store, position=p, limit=1000)
        assert {r.id: resource_state(r) for r in by_position.items} == {
            rid: normalise(s) for rid, s in naive_states(log, p=p).items()
        }, f"inventory at position {p}"
    since = at(0) + (last - at(0)) * min(probes)
    until = at(0) + (last - at(0)) * max(probes)
    before, after = naive_states(log, t=since), naive_states(log, t=until)
    want = {}
    for rid in set(before) | set(after):
        if rid not in before:
            want[rid] = "created"
        elif rid not in after:
            want[rid] = "removed"
        elif diff_states(before[rid], after[rid]):
            want[rid] = "changed"
    got = await changes(store, since=since, until=until, limit=1000)
    assert {c.id: c.change for c in got.items} == want


EXAMPLES = {
    "seed": st.integers(0, 2**32),
    "count": st.integers(1, 120),
    "probes": st.lists(st.floats(0, 1), min_size=2, max_size=5),
}
PROPERTY = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


async def _check_new_store(url: str, seed: int, count: int, probes: list[float]) -> None:
    """:func:`_check` on a store at ``url``, migrated first, closed after."""
    store = await open_store(url)
    try:
        await store.migrate()
        await _check(store, seed, count, probes)
    finally:
        await store.close()


@settings(PROPERTY, max_examples=25)
@given(**EXAMPLES)
def test_versions_answer_what_a_naive_fold_answers(
    seed: int, count: int, probes: list[float]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'p.db'}"
        asyncio.run(_check_new_store(url, seed, count, probes))


@pytest.mark.postgres
@settings(PROPERTY, max_examples=15)
@given(**EXAMPLES)
def test_versions_answer_what_a_naive_fold_answers_on_postgresql(
    postgres_url: str, seed: int, count: int, probes: list[float]
) -> None:
    """The same property with examples of its own on PostgreSQL: the test's one schema is
    emptied (dropped and made again) before each example."""
    dsn, schema = split_url(postgres_url)
    assert schema is not None

    async def run() -> None:
        admin = await asyncpg.connect(dsn)
        try:
            await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
        finally:
            await admin.close()
        await _check_new_store(postgres_url, seed, count, probes)

    asyncio.run(run())


async def test_the_same_property_on_each_backend(store: EventStore) -> None:
    """One larger example on both backends (PostgreSQL included)."""
    await _check(store, 1234, 300, [0.1, 0.35, 0.6, 0.9, 1.0])
