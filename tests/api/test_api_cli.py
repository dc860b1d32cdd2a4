"""The query commands against a real database: tables, --json, exit codes, --help."""

from __future__ import annotations

import asyncio
import io
import json
import sys

import pytest
from api_helpers import DB, WEB, iso, seed_history

from api.cli import COMMAND_MODULES, main
from eventstore import open_store


@pytest.fixture
def seeded_url(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    url = database_url

    async def seed() -> None:
        store = await open_store(url)
        try:
            await store.migrate()
            await seed_history(store)
        finally:
            await store.close()

    asyncio.run(seed())
    monkeypatch.setenv("PVETRAIL_DATABASE_URL", url)
    monkeypatch.delenv("PVETRAIL_CONFIG", raising=False)
    return url


NET0 = "virtio=BC:24:11:00:00:01,bridge=vmbr0,tag=20"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_inventory_table_and_json(seeded_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inventory")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "TYPE", "NAME", "NODE", "STATUS", "TAGS", "POOL"]
    assert any(line.split()[:4] == [WEB, "qemu", "web", "pve2"] for line in lines)
    assert not any(line.startswith(DB) for line in lines)
    code, out, _ = run(capsys, "inventory", "--at", iso(15), "--type", "qemu", "--json")
    assert code == 0
    page = json.loads(out)
    assert [r["id"] for r in page["items"]] == [WEB, DB]
    assert page["at"] == iso(15)
    code, out, _ = run(capsys, "inventory", "--node", "pve2", "-q", "web", "--json")
    assert [r["id"] for r in json.loads(out)["items"]] == [WEB]


def test_show_now_then_and_not_found(seeded_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "show", WEB)
    assert code == 0
    rows = dict(line.split(None, 1) for line in out.splitlines()[1:])
    assert rows["node"] == "pve2"
    assert rows["config.memory"] == "4096"
    code, out, _ = run(capsys, "show", WEB, "--at", iso(15), "--json")
    assert code == 0
    resource = json.loads(out)
    assert (resource["node"], resource["config"]["memory"]) == ("pve1", "2048")
    code, out, err = run(capsys, "show", DB)
    assert code == 1
    assert "did not exist" in err
    assert f"first seen {iso(10)[:-1]}" in err
    code, _, err = run(capsys, "show", "lab/qemu/999")
    assert code == 1
    assert "has ever been seen" in err


def test_history_lists_who_and_when(seeded_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "history", WEB)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["POSITION", "OBSERVED_AT", "NOT_BEFORE", "EVENT"]
    assert "config.memory: 2048 → 4096" in lines[2]
    assert "root@pam" in lines[2]
    # One line per field: the continuation line has no position, time, event or actor.
    assert lines[3].split() == ["digest:", "-", "→", "d2"]
    migrated = next(line for line in lines if " migrated " in line)
    assert "alice@pve" in migrated
    assert "node: pve1 → pve2" in migrated
    code, out, _ = run(capsys, "history", WEB, "--since", iso(25), "--json")
    entries = json.loads(out)["items"]
    assert [e["event"] for e in entries] == ["migrated"]
    assert entries[0]["observed_after"] == iso(25)


def test_changes_between_two_times(seeded_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "changes", "--since", iso(15), "--until", iso(65))
    assert code == 0
    by_id = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert by_id[DB].split()[1] == "removed"
    assert "node: pve1 → pve2" in by_id[WEB]
    code, out, _ = run(capsys, "changes", "--since", iso(15), "--type", "node", "--json")
    assert json.loads(out) == {"items": []}


def test_history_sums_up_a_discovery(seeded_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "history", WEB, "--wide")
    assert code == 0
    discovery = out.splitlines()[1]
    assert " discovered " in discovery
    assert discovery.endswith(
        "qemu web on pve1, running, 2 cores, 2048 MiB, disks scsi0 32G, tags prod (11 fields)"
    )
    assert "config.net0" not in out  # the rest is in --json, not in the table
    code, out, _ = run(capsys, "history", WEB, "--json")
    discovered = json.loads(out)["items"][0]
    assert {"field": "config.net0", "old": None, "new": NET0} in discovered["changes"]


@pytest.mark.parametrize("columns", [80, 120])
def test_tables_fit_the_terminal_and_wide_shows_all(
    seeded_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    columns: int,
) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    for argv in (["inventory"], ["show", WEB], ["history", WEB]):
        code, out, _ = run(capsys, *argv)
        assert code == 0
        assert max(len(line) for line in out.splitlines()) <= columns, argv
    monkeypatch.setenv("COLUMNS", "40")  # the narrowest a table is fitted to
    code, out, _ = run(capsys, "show", WEB)
    net0 = next(line for line in out.splitlines() if line.startswith("config.net0"))
    assert len(net0) == 40
    assert net0.endswith("…")
    assert NET0 not in out
    code, out, _ = run(capsys, "show", WEB, "--wide")
    assert f"config.net0       {NET0}" in out.splitlines()


def test_inventory_lists_guests_first_grouped_by_type(
    seeded_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "inventory", "--at", iso(15))
    assert code == 0
    lines = out.splitlines()
    ids = [line.split()[0] for line in lines[1:] if line.startswith("lab/")]
    assert ids == [WEB, DB, "lab/node/pve1", "lab/node/pve2"]
    assert lines[-1].startswith("4 resources at position ")
    assert lines[-1].endswith(": 2 qemu, 2 node")
    code, out, _ = run(capsys, "inventory", "--at", iso(15), "--type", "node")
    assert [line.split()[0] for line in out.splitlines()[1:-2]] == [
        "lab/node/pve1",
        "lab/node/pve2",
    ]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("no_color", [None, "1"])
def test_colour_only_on_a_terminal_without_no_color(
    seeded_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    no_color: str | None,
) -> None:
    code, out, _ = run(capsys, "inventory")
    assert code == 0
    assert "\x1b[" not in out  # captured: not a terminal
    if no_color is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", no_color)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert main(["inventory"]) == 0
    text = terminal.getvalue()
    if no_color is None:
        assert "\x1b[1mID" in text
        assert "\x1b[32mrunning" in text
    else:
        assert "\x1b[" not in text
        assert "running" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["changes", "--since", "2999-01-01T00:00:00Z"], "in the future"),
        (["changes", "--since", iso(30), "--until", iso(20)], "since is after until"),
        (["show", WEB, "--at", "2999-01-01T00:00:00Z"], "in the future"),
        (["inventory", "--position", "99999"], "past the head"),
        (["history", WEB, "--limit", "0"], "--limit"),
    ],
)
def test_impossible_questions_exit_2(
    seeded_url: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err + out


@pytest.mark.parametrize(
    "argv",
    [
        ["show", WEB, "--at", "yesterday"],
        ["inventory", "--at", "2026-11-01"],
        ["changes"],
        ["show", WEB, "--at", iso(1), "--position", "3"],
        ["history"],
    ],
)
def test_malformed_arguments_are_usage_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_an_unmigrated_database_is_named(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PVETRAIL_DATABASE_URL", sqlite_url)
    code, _, err = run(capsys, "inventory")
    assert code == 2
    assert "not migrated" in err


@pytest.mark.parametrize(
    "name", ["serve", "demo", "show", "history", "changes", "inventory", "plan"]
)
def test_every_command_has_help_with_examples(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert name in COMMAND_MODULES
    with pytest.raises(SystemExit) as exited:
        main([name, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text
    assert f"  pvetrail {name}" in text


def test_plan_command_prints_numbered_pvesh_lines(
    seeded_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", WEB, "--to", iso(15)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"rollback plan for {WEB}: 3 step(s), 1 disruptive\n")
    assert "based on config digest d2" in out
    assert " 1. config  [needs reboot]\n    pvesh set /nodes/pve2/qemu/100/config " in out
    assert "--memory 2048 --digest d2" in out
    assert (
        " 2. migrate\n    pvesh create /nodes/pve2/qemu/100/migrate --target pve1 --online 1" in out
    )
    assert " 3. reboot  [DISRUPTIVE; needs reboot]\n" in out
    assert main(["plan", WEB, "--to", iso(15), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [s["action"] for s in plan["steps"]] == ["config", "migrate", "reboot"]
    assert main(["plan", WEB, "--to", iso(45)]) == 0  # the state it has now
    assert "nothing to do" in capsys.readouterr().out


def test_plan_command_exits_1_with_blockers(
    seeded_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", DB, "--to", iso(15)]) == 1  # removed, and no backup of it
    out = capsys.readouterr().out
    assert "blocker(s)" in out.splitlines()[0]
    assert "blockers:\n  - the guest at the target is gone and no backup" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plan", "lab/qemu/999", "--to", iso(15)], "has ever been seen"),
        (["plan", WEB, "--to", iso(5)], "did not exist"),
        (["plan", WEB, "--snapshot", "nope"], "no snapshot"),
        (["plan", "lab/node/pve1", "--to", iso(15)], "not a guest"),
    ],
)
def test_plan_command_errors_exit_2(
    seeded_url: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def run_serve(capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``pvetrail serve`` in this process, leaving the root logger as it found it (serve
    configures logging for the process)."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        return run(capsys, "serve")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_serve_refuses_a_public_address_without_tokens(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PVETRAIL_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("PVETRAIL_LISTEN", "0.0.0.0:8080")
    code, _, err = run_serve(capsys)
    assert code == 2
    assert "refusing to listen on 0.0.0.0" in err
    assert "no API tokens are configured" in err


def test_serve_says_when_its_port_is_taken(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("PVETRAIL_DATABASE_URL", sqlite_url)
        monkeypatch.setenv("PVETRAIL_LISTEN", f"127.0.0.1:{taken.getsockname()[1]}")
        code, _, err = run_serve(capsys)
    assert code == 2
    assert "cannot listen on 127.0.0.1" in err
