"""``pvetrail drift`` against a real database: table, --json, exit codes 0/1/2, desired_dir
and drift_ignore from the configuration, and the example configuration's drift keys."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from api_helpers import WEB, iso
from drift_helpers import BASELINE_15, seed_drift_history

from api.cli import main
from api.config import load_config
from eventstore import EventStore

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "pvetrail.example.toml"


@pytest.fixture
async def seeded(store: EventStore, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The drift log in the test's database, which the command finds by the environment."""
    await seed_drift_history(store)
    monkeypatch.setenv("PVETRAIL_DATABASE_URL", database_url)
    monkeypatch.delenv("PVETRAIL_CONFIG", raising=False)


async def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The command as a shell runs it (its own event loop: in a thread beside the test's)."""
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_drift_exits_1_with_drift_and_0_without(
    seeded: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = await run(capsys, "drift", "--baseline", iso(15))
    assert code == 1
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "KIND", "FIELD", "EXPECTED", "ACTUAL", "SINCE", "ACTOR"]
    assert lines[3].split() == [
        WEB,
        "changed",
        "name",
        "web",
        "web3",
        "2025-06-01",
        "12:01:30Z",
        "root@pam",
    ]
    code, out, _ = await run(capsys, "drift", "--baseline", iso(15), "--json")
    assert code == 1
    assert json.loads(out)["items"] == BASELINE_15
    code, out, _ = await run(capsys, "drift", "--baseline", iso(100))
    assert (code, out.strip()) == (0, "no drift")
    code, out, _ = await run(capsys, "drift", "--baseline", iso(100), "--json")
    assert (code, json.loads(out)) == (0, {"items": []})


async def test_drift_exits_2_when_it_cannot_ask(
    seeded: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = await run(capsys, "drift", "--desired", "nosuch")
    assert code == 2
    assert "no desired set named 'nosuch'" in err
    code, _, err = await run(capsys, "drift", "--baseline", "2999-01-01T00:00:00Z")
    assert code == 2
    assert "--baseline" in err
    code, _, err = await run(capsys, "drift", "--baseline", iso(15), "--unmanaged")
    assert code == 2
    with pytest.raises(SystemExit) as exited:
        await run(capsys, "drift")
    assert exited.value.code == 2


async def test_drift_reads_desired_dir_and_drift_ignore_from_the_configuration(
    seeded: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    directory = tmp_path / "desired"
    directory.mkdir()
    (directory / "web.yaml").write_text(
        f"resources:\n  - match: {{id: {WEB}}}\n    fields: {{node: pve1, name: web3}}\n"
    )
    config = tmp_path / "pvetrail.toml"
    config.write_text(f'desired_dir = "{directory}"\n')
    code, out, _ = await run(capsys, "drift", "--desired", "web", "--config", str(config), "--json")
    assert code == 1
    assert [(i["id"], i["field"]) for i in json.loads(out)["items"]] == [(WEB, "node")]
    config.write_text(f'desired_dir = "{directory}"\ndrift_ignore = ["node"]\n')
    code, out, _ = await run(capsys, "--config", str(config), "drift", "--desired", "web")
    assert (code, out.strip()) == (0, "no drift")
    code, out, _ = await run(
        capsys, "drift", "--desired", "web", "--unmanaged", "--config", str(config)
    )
    assert code == 1
    assert "lab/lxc/200" in out


def test_drift_help_has_examples_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["drift", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out
    assert "pvetrail drift --desired prod" in out
    assert "0 no drift, 1 drift, 2" in out


def test_the_example_configuration_sets_the_drift_keys() -> None:
    config = load_config(str(EXAMPLE), environ={})
    assert config.desired_dir == "desired/"
    assert config.drift_ignore == ["config.smbios1", "config.vmgenid"]
    assert load_config(None, environ={}).drift_ignore == []
