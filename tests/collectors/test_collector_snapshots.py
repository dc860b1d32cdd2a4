"""A start in time independent of the log's length (collectors.snapshots), and tasks
remembered for a bounded time (Known.forget_tasks)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from collectors import snapshots
from collectors.service import TASK_MEMORY
from collectors.state import Known
from collectors.values import upid_started
from eventstore import EventStore
from tests.collectors.conftest import CollectorFactory
from tests.pve import ServedPve


async def _fold(store: EventStore, known: Known | None = None) -> Known:
    known = known or Known("lab")
    async for recorded in store.read_all(known.head):
        known.apply(recorded)
    return known


async def test_the_saved_fold_and_the_events_after_it_are_the_whole_fold(
    store: EventStore,
    make_collector: CollectorFactory,
    operator: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(snapshots, "EVERY", 1)  # save after every poll that moved the log
    collector = make_collector()
    assert (await collector.sync("lab", deep=True)).events_appended > 0
    operator.nodes("pve2").qemu(101).config.put(cores=3)
    assert (await collector.sync("lab", deep=True)).events_appended > 0
    saved = await snapshots.load(store, "lab")
    assert saved is not None
    assert saved.head == await store.head()
    assert saved == await _fold(store)

    # More events after the snapshot, none saved: a start folds the saved state and them.
    monkeypatch.setattr(snapshots, "EVERY", 10**9)
    operator.nodes("pve1").qemu(100).config.put(memory=4096)
    operator.nodes("pve2").lxc(200).config.put(cores=2)
    assert (await collector.sync("lab", deep=True)).events_appended > 0
    loaded = await snapshots.load(store, "lab")
    assert loaded is not None
    assert loaded.head < await store.head()
    assert await _fold(store, loaded) == await _fold(store)

    # A new process starts from it, and its no-change poll appends nothing.
    restarted = make_collector()
    assert (await restarted.sync("lab", deep=True)).events_appended == 0


@pytest.mark.parametrize(
    ("column", "value"),
    [("format", "written-by-other-code"), ("event_hash", "0" * 64)],
)
async def test_a_snapshot_of_other_code_or_of_another_log_is_ignored(
    store: EventStore,
    make_collector: CollectorFactory,
    monkeypatch: pytest.MonkeyPatch,
    column: str,
    value: str,
) -> None:
    monkeypatch.setattr(snapshots, "EVERY", 1)
    collector = make_collector()
    assert (await collector.sync("lab", deep=True)).events_appended > 0
    assert await snapshots.load(store, "lab") is not None
    async with store.transaction() as conn:
        await conn.execute(f"UPDATE collector_snapshots SET {column} = ?", (value,))
    assert await snapshots.load(store, "lab") is None
    # The start folds the whole log instead: nothing is appended twice.
    assert (await make_collector().sync("lab", deep=True)).events_appended == 0


def _upid(started: int, vmid: int = 100) -> str:
    return f"UPID:pve1:00001234:00008000:{started:08X}:qmstart:{vmid}:root@pam:"


@pytest.mark.parametrize(
    ("upid", "started"),
    [
        ("UPID:pve1:0020C066:042DF204:69C26EB0:vzdump::root@pam:", 0x69C26EB0),
        ("UPID:pve1:0020C066:142DF2040:69C26EB0:qmstart:100:ops@pve!ci:", 0x69C26EB0),
        ("UPID:pve1:0020C066:042DF204", None),
        ("not a upid", None),
        (None, None),
    ],
)
def test_upid_started(upid: Any, started: int | None) -> None:
    assert upid_started(upid) == started


def test_forgotten_tasks_leave_the_fold() -> None:
    now = int(time.time())
    old, recent = _upid(now - 40 * 86400), _upid(now - 60)
    known = Known("lab")
    known.tasks_seen |= {old, recent}
    known.used |= {(old, "lab/qemu/100", "config_changed"), (recent, "lab/qemu/100", "renamed")}
    known.versions.update({f"lab/task/{old}": 1, f"lab/task/{recent}": 1, "lab/qemu/100": 3})
    assert known.forget_tasks(now - 30 * 86400) == 1
    assert known.tasks_seen == {recent}
    assert known.used == {(recent, "lab/qemu/100", "renamed")}
    assert known.versions == {f"lab/task/{recent}": 1, "lab/qemu/100": 3}


async def test_tasks_older_than_the_memory_are_not_recorded(
    store: EventStore, make_collector: CollectorFactory, served: ServedPve, operator: Any
) -> None:
    started = int(time.time() - TASK_MEMORY.total_seconds()) - 3600
    old = _upid(started)
    record = {
        "upid": old,
        "node": "pve1",
        "pid": 0x1234,
        "pstart": 0x8000,
        "starttime": started,
        "endtime": started + 5,
        "type": "qmstart",
        "id": "100",
        "user": "root@pam",
        "status": "stopped",
        "exitstatus": "OK",
        "log": ["TASK OK"],
    }
    served.pve.tasks[old] = record
    served.pve.tasklog.append(record)
    recent = operator.nodes("pve2").qemu(101).config.post(cores=3)
    collector = make_collector()
    assert (await collector.sync("lab", deep=True)).ok
    tasks = [e.stream_id async for e in store.read_all(0) if e.type == "task_seen"]
    assert f"lab/task/{recent}" in tasks
    assert f"lab/task/{old}" not in tasks
