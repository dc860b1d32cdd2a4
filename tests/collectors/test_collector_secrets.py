"""Secrets never reach the database (invariant 5), yet a change of a secret is still seen."""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import pytest
from collector_helpers import not_tasks, read_events

from collectors import secrets
from collectors.observe import Observation
from collectors.state import Known, diff
from eventstore import EventStore, open_store
from tests.collectors.conftest import CollectorFactory
from tests.pve import ServedPve

PLAINTEXTS = ("hunter2-plaintext", "rotated-plaintext", "pbs-plaintext-secret", "mount-plaintext")


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("cipassword", True),
        ("password", True),
        ("encryption-key", True),
        ("api_token", True),
        ("client-secret", True),
        ("keyring", True),
        ("sshkeys", False),
        ("keyboard", False),
        ("ciuser", False),
        ("net0", False),
    ],
)
def test_which_keys_are_secrets(key: str, secret: bool) -> None:
    assert secrets.is_secret_key(key) is secret


def test_redaction_of_values_and_property_strings() -> None:
    key = b"k"
    fp = secrets.fingerprint(key, "s3cret")
    assert fp.startswith("hmac-sha256:")
    assert "s3cret" not in fp
    assert secrets.redact_value(key, "cipassword", "s3cret") == fp
    assert secrets.redact_value(key, "cipassword", fp) == fp  # idempotent
    assert secrets.fingerprint(b"other", "s3cret") != fp  # keyed
    mount = "nas:/export,mp=/data,password=s3cret,ro=1"
    assert secrets.redact_value(key, "mp0", mount) == f"nas:/export,mp=/data,password={fp},ro=1"
    assert secrets.redact_value(key, "net0", "virtio=AA,bridge=vmbr0") == "virtio=AA,bridge=vmbr0"
    assert secrets.redact_config(key, {"sshkeys": "ssh-rsa%20AAA", "cores": 2}) == {
        "sshkeys": "ssh-rsa%20AAA",
        "cores": 2,
    }
    # a value Proxmox masks is not a change
    assert secrets.masks(fp, secrets.MASK)
    assert secrets.masks(f"a=1,password={fp}", f"a=1,password={secrets.MASK}")
    assert not secrets.masks(f"a=1,password={fp}", f"a=2,password={secrets.MASK}")
    assert not secrets.masks(None, secrets.MASK)


def test_a_masked_secret_is_not_a_change() -> None:
    known = Known("lab")
    old = {
        "id": "lab/qemu/100",
        "cluster": "lab",
        "type": "qemu",
        "vmid": 100,
        "config": {"cipassword": secrets.fingerprint(b"k", "x"), "cores": 2},
    }
    known.states["lab/qemu/100"] = old
    obs = Observation("lab", "deep")
    obs.states["lab/qemu/100"] = dict(old, config={"cipassword": secrets.MASK, "cores": "2"})
    obs.present.add("lab/qemu/100")
    assert diff(known, obs) == []


async def test_the_key_comes_from_the_environment_or_once_from_the_database(
    store: EventStore, database_url: str
) -> None:
    assert await secrets.load_fingerprint_key(store, "FP_KEY", {"FP_KEY": "abc"}) == b"abc"
    # A named variable that is not set is refused, never replaced by the database's key.
    with pytest.raises(secrets.SecretsError, match="FP_KEY, which is not set"):
        await secrets.load_fingerprint_key(store, "FP_KEY", {})
    assert await store.get_setting(secrets.KEY_SETTING) is None
    made = await secrets.load_fingerprint_key(store, None, {})
    assert len(made) == 32
    assert await secrets.load_fingerprint_key(store, None, {}) == made
    other = await open_store(database_url)  # a second process fingerprints alike
    try:
        assert await secrets.load_fingerprint_key(other, None, {}) == made
    finally:
        await other.close()
    with pytest.raises(secrets.SecretsError, match="FP_KEY is set but empty"):
        await secrets.load_fingerprint_key(store, "FP_KEY", {"FP_KEY": ""})


async def _raw_database_text(store: EventStore, database_url: str) -> bytes:
    """Everything the database holds, as raw bytes (SQLite: the files; PostgreSQL: the rows)."""
    if store.dialect == "sqlite":
        path = Path(database_url.removeprefix("sqlite:///"))
        blobs = [p.read_bytes() for p in path.parent.glob(path.name + "*") if p.is_file()]
        return b"".join(blobs)
    out = []
    async with store.read_connection() as conn:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
        for row in tables:
            for record in await conn.fetch(f'SELECT * FROM "{row[0]}"'):
                for value in record.values():
                    out.append(value if isinstance(value, bytes) else str(value).encode())
    return b"\n".join(out)


async def test_secrets_never_reach_the_database(
    store: EventStore,
    database_url: str,
    make_collector: CollectorFactory,
    served: ServedPve,
    operator: Any,
) -> None:
    pve = served.pve
    pve.storages["backup-nas"] = {
        "type": "cifs",
        "server": "10.0.0.5",
        "share": "backups",
        "username": "backup",
        "password": "pbs-plaintext-secret",
        "content": "backup",
        "active": 1,
        "shared": 1,
        "files": set(),
    }
    pve.vm(101).config["mp0"] = "nas:/export,mp=/data,password=mount-plaintext"
    pve.vm(101).config["cipassword"] = "hunter2-plaintext"
    key = base64.b64decode(base64.b64encode(b"a key of the test"))
    collector = make_collector(key=key)
    await collector.sync("lab", deep=True)
    head = await store.head()
    operator.nodes("pve2").qemu(101).config.put(cipassword="rotated-plaintext")
    await collector.sync("lab", deep=True)
    rotated = not_tasks(await read_events(store, head))
    assert [e.type for e in rotated] == ["config_changed"]
    old, new = rotated[0].changes()["config.cipassword"]
    assert old == secrets.fingerprint(key, "hunter2-plaintext")
    assert new == secrets.fingerprint(key, "rotated-plaintext")  # a rotation is visible
    events = await read_events(store)
    nas = next(e for e in events if e.stream == "lab/storage/pve1/backup-nas")
    assert nas.event.state["config"]["password"].startswith("hmac-sha256:")  # type: ignore[attr-defined]
    raw = await _raw_database_text(store, database_url)
    assert b"hmac-sha256:" in raw  # the search does see the payloads
    for plaintext in PLAINTEXTS:
        assert plaintext.encode() not in raw, plaintext


async def test_no_secret_reaches_the_logs(
    make_collector: CollectorFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # proxmoxer logs response bodies (configs, with cipassword) at DEBUG and sets its own
    # loggers to WARNING; the collectors must leave them there.
    caplog.set_level(logging.DEBUG)
    result = await make_collector().sync("lab", deep=True)
    assert result.events_appended > 0
    assert logging.getLogger("proxmoxer.core").getEffectiveLevel() >= logging.WARNING
    assert "hunter2-plaintext" not in caplog.text
