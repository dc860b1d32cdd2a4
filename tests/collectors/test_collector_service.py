"""The service's schedule and lifecycle, targeted polls, and the ``pvetrail sync`` command."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest
from collector_helpers import not_tasks, read_events, summary, until

from api.cli import main as cli_main
from collectors.client import CollectorError, UnknownClusterError
from eventstore import EventStore
from tests.collectors.conftest import CollectorFactory
from tests.pve import TOKEN_ENV, ServedPve
from tests.waiting import GENEROUS_S


async def test_start_polls_at_once_then_on_schedule_and_stop_closes(
    store: EventStore, make_collector: CollectorFactory, served: ServedPve
) -> None:
    collector = make_collector(fast_interval_s=1, deep_interval_s=300)
    assert collector.health()["lab"].state == "starting"
    await collector.start()
    try:
        # the first polls run at start, without waiting for an interval
        assert await store.wait_for_events(0, timeout=10) > 0
        served.pve.vm(101).status = "running"
        head = await store.head()
        # the next fast poll, about a second later, sees the change
        assert await store.wait_for_events(head, timeout=10) > head
        changed = not_tasks(await read_events(store, head))
        assert [(e.stream, e.type) for e in changed][:1] == [("lab/qemu/101", "status_changed")]
    finally:
        await collector.stop()
    health = collector.health()["lab"]
    assert health.state == "ok"
    assert health.consecutive_failures == 0
    assert health.polls_total["fast"] >= 1
    assert health.events_appended_total == await store.head()
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
    assert first.events_appended > 0
    assert second.events_appended == 0
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
    assert "lab: deep poll appended" in out
    assert "discovered: 10" in out
    assert cli_main(["sync", "--config", config, "--cluster", "lab"]) == 0
    assert "appended 0 events" in capsys.readouterr().out

    assert cli_main(["sync", "--config", config, "--cluster", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no cluster named 'nope'" in err
    assert "Traceback" not in err

    unreachable = str(_write_config(tmp_path, served, host="127.0.0.1:1"))
    assert cli_main(["sync", "--config", unreachable]) == 2
    err = capsys.readouterr().err
    assert "could not observe" in err
    assert "cannot connect" in err
    assert "Traceback" not in err


async def test_a_cluster_that_is_down_does_not_hold_up_the_others(
    store: EventStore, served: ServedPve
) -> None:
    from collectors.service import CollectorService

    good = served.cluster_config("lab", fast_interval_s=1)
    # A server that takes connections and never answers: the silent cluster's first request
    # hangs until its timeout, far past the bound within which lab must be observed, so lab
    # can only be "ok" in time if the silent cluster does not hold it up.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        down = served.cluster_config(
            "gone",
            host=f"127.0.0.1:{silent.getsockname()[1]}",
            connect_timeout_s=4 * GENEROUS_S,  # (it covers the TLS handshake, which hangs)
            read_timeout_s=4 * GENEROUS_S,
            retries=0,
            fast_interval_s=1,
        )
        collector = CollectorService(
            store, [down, good], fingerprint_key=b"k", environ=served.environ
        )
        await collector.start()
        try:
            await until(lambda: collector.health()["lab"].state == "ok", GENEROUS_S)
            assert collector.health()["gone"].state == "starting"  # its request still hangs
            # The silent server goes away: its waiting connections are reset.
            silent.close()
            await until(lambda: collector.health()["gone"].state == "down", GENEROUS_S)
        finally:
            await collector.stop()
    gone = collector.health()["gone"]
    assert gone.consecutive_failures >= 1
    assert gone.last_success is None
    assert gone.poll_errors_total.keys() & {"timeout", "unreachable"}
    assert all(e.stream.startswith("lab/") for e in await read_events(store))
