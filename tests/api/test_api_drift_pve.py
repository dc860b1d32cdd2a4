"""Drift end to end: changes made through the Proxmox API by a second user, seen by the real
collectors polling a fakepve, and reported by a real server with when and who from the log."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from proxmoxer import ProxmoxAPI

from collectors.service import CollectorService
from eventstore import EventStore, format_time, parse_time, utcnow
from projections.runner import ProjectionRunner
from tests.api.conftest import Server, ServerFactory
from tests.collectors.conftest import operator, pve_pki, served  # noqa: F401 - fixtures
from tests.pve import HOST, ServedPve

WEB, BATCH, DB = "lab/qemu/100", "lab/qemu/101", "lab/lxc/200"


async def entry_of(server: Server, rid: str, event: str, field: str | None = None) -> Any:
    """The last history entry of ``rid`` of type ``event`` (changing ``field``, if given)."""
    status, page, _ = await server.get(f"/api/v1/resources/{rid}/history?limit=1000")
    assert status == 200, page
    found = [
        e
        for e in page["items"]
        if e["event"] == event and (field is None or field in {c["field"] for c in e["changes"]})
    ]
    assert found, [(e["event"], e["changes"], e["actor"]) for e in page["items"]]
    return found[-1]


async def drift(server: Server, query: str) -> dict[tuple[str, str | None], Any]:
    status, page, _ = await server.get(f"/api/v1/drift?{query}&limit=1000")
    assert status == 200, page
    assert page["next_cursor"] is None
    return {(i["id"], i["field"]): i for i in page["items"]}


def between(text: str, start: datetime, end: datetime) -> bool:
    return start <= parse_time(text) <= end


async def test_drift_names_the_user_who_changed_it_and_when(
    store: EventStore,
    serve_app: ServerFactory,
    served: ServedPve,  # noqa: F811 - the imported fixture
    operator: Any,  # noqa: F811 - the imported fixture
) -> None:
    collector = CollectorService(
        store, [served.cluster_config("lab")], fingerprint_key=b"k" * 32, environ=served.environ
    )
    operator.access.password.put(userid="alice@pve", password="alice-pass-1")
    alice = ProxmoxAPI(
        HOST,
        port=served.pve.port,
        user="alice@pve",
        password="alice-pass-1",
        verify_ssl=served.cafile,
        timeout=10,
    )
    try:
        assert (await collector.sync("lab", deep=True)).ok
        baseline = utcnow()
        await asyncio.sleep(0.01)
        # alice changes batch (stopped: applied at once) through the API, in a qmconfig task
        # that names her; root changes db with a PUT (no task: who did it is unknown)
        net0 = "virtio=BC:24:11:00:02:00,bridge=vmbr1,firewall=1"
        await asyncio.to_thread(alice.nodes("pve2").qemu(101).config.post, memory=4096, net0=net0)
        await asyncio.to_thread(operator.nodes("pve2").lxc(200).config.put, cores=3)
        started = utcnow()
        assert (await collector.sync("lab", deep=True)).ok
        seen = utcnow()
        await ProjectionRunner(store).catch_up()
        server = await serve_app()

        changed = await entry_of(server, BATCH, "config_changed", "config.memory")
        assert changed["actor"]["user"] == "alice@pve"
        assert between(changed["observed_at"], started, seen)
        items = await drift(server, f"baseline={format_time(baseline)}")
        assert {key[0] for key in items} == {BATCH, DB}
        memory = items[(BATCH, "config.memory")]
        assert memory["kind"] == "changed"
        assert (str(memory["expected"]), str(memory["actual"])) == ("1024", "4096")
        assert (memory["since"], memory["actor"]) == (changed["observed_at"], changed["actor"])
        added = items[(BATCH, "config.net0")]
        assert (added["expected"], added["actual"]) == (None, net0)
        assert added["actor"]["user"] == "alice@pve"
        cores = items[(DB, "config.cores")]
        assert (str(cores["expected"]), str(cores["actual"]), cores["actor"]) == ("1", "3", None)
        assert cores["since"] == (await entry_of(server, DB, "config_changed"))["observed_at"]

        # a desired set: partial specs matched by name or id, property-string keys, sizes
        batch = {
            "match": {"cluster": "lab", "type": "qemu", "name": "batch"},
            "fields": {
                "config.memory": "1024",
                "config.net0.bridge": "vmbr0",  # never: it had no NIC before alice's change
                "config.net0.firewall": "on",
                "config.scsi0.size": "8192M",
                "config.scsi0.volume": "local-lvm:vm-101-disk-0",
                "node": "pve2",
                "status": "stopped",
            },
        }
        web = {
            "match": {"id": WEB},
            "fields": {
                "config.memory": 2048,
                "config.net0.macaddr": "bc:24:11:00:01:00",
                "config.net0.model": "virtio",
                "config.net0.firewall": True,
                "config.scsi0.size": "32768M",
                "tags": ["web", "prod"],
                "pool": "prod",
                "node": "pve1",
            },
        }
        body = {"resources": [batch, web, {"match": {"id": BATCH}}]}
        status, stored, _ = await server.request("PUT", "/api/v1/desired/lab", json=body)
        assert status == 200, stored
        items = await drift(server, "desired=lab&unmanaged=true")
        assert sorted(items) == [
            (DB, None),
            (BATCH, "config.memory"),
            (BATCH, "config.net0.bridge"),
        ]
        assert items[(BATCH, "config.memory")]["since"] == changed["observed_at"]
        assert items[(BATCH, "config.memory")]["actor"]["user"] == "alice@pve"
        bridge = items[(BATCH, "config.net0.bridge")]
        assert (bridge["actual"], bridge["since"], bridge["actor"]) == ("vmbr1", None, None)
        assert items[(DB, None)]["kind"] == "unmanaged"

        # batch removed by root: the specs naming it report it missing, the one by id since
        # its removal
        await asyncio.to_thread(operator.nodes("pve2").qemu(101).delete)
        assert (await collector.sync("lab", deep=True)).ok
        await ProjectionRunner(store).catch_up()
        removed = await entry_of(server, BATCH, "removed")
        items = await drift(server, "desired=lab")
        assert sorted(items) == [(BATCH, None), ("lab/qemu?name=batch", None)]
        missing = items[(BATCH, None)]
        assert missing["kind"] == "missing"
        assert (missing["since"], missing["actor"]) == (removed["observed_at"], removed["actor"])
        assert items[("lab/qemu?name=batch", None)]["since"] is None
        items = await drift(server, f"baseline={format_time(baseline)}")
        assert (items[(BATCH, None)]["kind"], items[(BATCH, None)]["since"]) == (
            "removed",
            removed["observed_at"],
        )
    finally:
        alice._store["session"].close()
        await collector.stop()
