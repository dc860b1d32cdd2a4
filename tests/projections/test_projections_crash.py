"""Crash test: a runner in another process is killed (SIGKILL) at random points; after a
restart the tables equal a clean rebuild (nothing skipped, nothing applied twice)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from pathlib import Path

from eventstore import EventStore
from projections.runner import ProjectionRunner, rebuild
from tests.projections.projection_helpers import random_events, table_rows

REPO = Path(__file__).resolve().parents[2]

CHILD = """
import asyncio, sys
from eventstore import open_store
from projections.runner import ProjectionRunner

async def main() -> None:
    store = await open_store(sys.argv[1])
    runner = ProjectionRunner(store, batch_size=int(sys.argv[2]))
    print("ready", flush=True)
    while True:
        await runner.catch_up()
        await store.wait_for_events(runner.position or 0, 1.0)

asyncio.run(main())
"""


async def test_killed_runner_restarts_to_the_rows_of_a_clean_rebuild(store: EventStore) -> None:
    rng = random.Random(77)
    events = random_events(rng, 1500)
    await store.append(events[:900])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    kills = 0
    reached: list[int] = []
    for round_ in range(5):
        if round_ == 2:
            await store.append(events[900:])
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD,
            store.url,
            str(rng.randint(5, 40)),
            cwd=REPO,
            env=env,
            stdout=asyncio.subprocess.PIPE,
        )
        assert child.stdout is not None
        assert await asyncio.wait_for(child.stdout.readline(), 30) == b"ready\n"
        await asyncio.sleep(rng.uniform(0.0, 0.3))
        if child.returncode is None:
            child.send_signal(signal.SIGKILL)
            kills += 1
        await child.wait()
        reached.append((await ProjectionRunner(store).lag()).checkpoint)
    assert kills == 5
    # the kills landed while there was work left, and every restart made progress
    assert any(0 < done < 1500 for done in reached), reached
    checkpoint = await ProjectionRunner(store).catch_up()
    assert checkpoint == await store.head()
    after_crashes = await table_rows(store)
    await rebuild(store)
    assert await table_rows(store) == after_crashes
