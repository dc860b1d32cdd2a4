"""The service's schedule and lifecycle, targeted polls, and the ``pvetrail sync`` command."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from collector_helpers import not_tasks, read_events, summary
from conftest import CollectorFactory

from api.cli import main as cli_main
from collectors.client import CollectorError, UnknownClusterError
from eventstore import EventStore
from tests.pve import TOKEN_ENV, ServedPve


async def test_start_polls_at_once_then_on_schedule_and_stop_closes(
    store: EventStore, make_collector: CollectorFactory, served: ServedPve
) -> None:
    collector = make_collector(fast_interval_s=1, deep_interval_s=300)
    assert collector.health()["lab"].state == "starting"
    await collector.start()
    try:
        async with asyncio.timeout(10):
            while collector.health()["lab"].polls_total.get("deep", 0) < 1:
                await asyncio.sleep(0.05)
        assert await store.head() > 0  # the first deep poll ran at start, without waiting
        served.pve.vm(101).status = "running"
        async with asyncio.timeout(10):
            while not any(e.type == "status_changed" for e in await read_events(store)):
                await asyncio.sleep(0.1)
    finally:
        await collector.stop()
    health = collector.health()["lab"]
    assert health.state == "ok" and health.consecutive_failures == 0
    assert health.polls_total["fast"] >= 1 and health.events_appended_total == await store.head()
    assert set(health.last_poll_duration_s) >= {"fast", "deep"}
    with pytest.raises(CollectorError, match="stopping"):
        await collector.sync("lab")


async def test_sync_waits_for_a_running_poll_and_targets_one_guest(
    store: EventStore, make_collector: CollectorFactory, served: ServedPve, operator: Any
) -> None:
    collector = make_collector()
    first, second = await asyncio.gather(
        collector.sync("lab", deep=True), collector.sync("lab", deep=True)
    )
    assert first.events_appended > 0 and second.events_appended == 0
    head = await store.head()
    operator.nodes("pve2").qemu(101).config.put(cores=3)
    operator.nodes("pve2").lxc(200).config.put(cores=2)
    result = await collector.sync("lab", vmid=101)
    assert result.kind == "targeted"
    assert summary(not_tasks(await read_events(store, head))) == [
        ("lab/qemu/101", "config_changed")
    ]
    result = await collector.sync("lab", node="pve2")
    assert summary(not_tasks(await read_events(store, head)))[-1] == (
        "lab/lxc/200",
        "config_changed",
    )
    with pytest.raises(UnknownClusterError, match="known: lab"):
        await collector.sync("nope")


def _write_config(tmp_path: Path, served: ServedPve, *, host: str | None = None) -> Path:
    path = tmp_path / "pvetrail.toml"
    path.write_text(
        f"""
database_url = "sqlite:///{tmp_path / "cli.db"}"

[[clusters]]
name = "lab"
host = "{host or served.host}"
token_id = "audit@pve!pvetrail"
token_secret_env = "{TOKEN_ENV}"
verify_tls = "{served.cafile}"
connect_timeout_s = 1.0
read_timeout_s = 2.0
retries = 0
"""
    )
    return path


def test_the_sync_command(
    tmp_path: Path,
    served: ServedPve,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(TOKEN_ENV, served.token_secret)
    config = str(_write_config(tmp_path, served))
    assert cli_main(["--config", config, "sync"]) == 2  # not migrated yet
    assert "pvetrail migrate" in capsys.readouterr().err
    assert cli_main(["migrate", "--config", config]) == 0
    capsys.readouterr()
    assert cli_main(["sync", "--config", config, "--deep"]) == 0
    out = capsys.readouterr().out
    assert "lab: deep poll appended" in out and "discovered: 10" in out
    assert cli_main(["sync", "--config", config, "--cluster", "lab"]) == 0
    assert "appended 0 events" in capsys.readouterr().out

    assert cli_main(["sync", "--config", config, "--cluster", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no cluster named 'nope'" in err and "Traceback" not in err

    unreachable = str(_write_config(tmp_path, served, host="127.0.0.1:1"))
    assert cli_main(["sync", "--config", unreachable]) == 2
    err = capsys.readouterr().err
    assert "could not observe" in err and "cannot connect" in err and "Traceback" not in err
