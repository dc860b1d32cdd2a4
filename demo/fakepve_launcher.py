"""Run a simulated Proxmox VE cluster for ``pvetrail demo``: build it, seed it, keep changing it.

This script is the only place outside the tests that imports ``fakepve`` (AGPL-licensed):
``pvetrail demo`` runs it as its own process (``python fakepve_launcher.py ...``) and talks to
the cluster only over HTTPS, exactly as to a real one. It is shipped as a data file, not as a
module of any pvetrail package.

The seed: three nodes, about ``--guests`` qemu and lxc guests with real-looking configs (disks
on several storages, NICs on VLAN-tagged bridges, tags, pools, snapshots, backups). The churn
then changes it every ``--churn-interval`` seconds through the Proxmox API as different users
would: alice edits configs and takes snapshots, bob starts and stops guests and migrates
containers, an automation token creates and destroys guests. Where fakepve's API cannot do a
thing (qemu migrations, backup archives, API tokens: see pve-api.md section 10) its Python API
does it, attributed to a user the same way.

Once serving it prints one JSON line on stdout: ``{"url", "cafile", "nodes", "guests"}``. It
stops on SIGINT, SIGTERM, or when its standard input closes (its parent is gone).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import ssl
import sys
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

try:
    import aiohttp
    from fakepve.certs import make_cert
    from fakepve.server import FakePve
except ModuleNotFoundError as exc:  # pragma: no cover - the demo extra is missing
    print(
        f"fakepve_launcher: {exc.name} is not installed; install the demo extra: "
        "pip install 'pvetrail[demo]'",
        file=sys.stderr,
    )
    sys.exit(3)

log = logging.getLogger("fakepve_launcher")

NODES = ("pve1", "pve2", "pve3")
TOKEN_ENV = "PVETRAIL_DEMO_PVE_TOKEN"
"""The environment variable holding the secret of pvetrail's own API token (set by the demo)."""
PVETRAIL_TOKEN = "pvetrail@pve!demo"
AUTOMATION_TOKEN = "automation@pve!terraform"
USERS = {"alice@pve": "alice-password", "bob@pve": "bob-password"}

QEMU_NAMES = (
    "web",
    "db-pg",
    "k8s-worker",
    "gitlab",
    "grafana",
    "elastic",
    "vault",
    "proxy",
    "mail",
    "jenkins",
    "win-ad",
    "nextcloud",
)
LXC_NAMES = ("dns", "ntp", "redis", "mqtt", "pihole", "syncthing", "nginx", "unifi", "bastion")
POOLS = ("prod", "dev", "infra")
VLANS = (10, 20, 30, 40)
OS_TEMPLATES = (
    "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
    "local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
    "local:vztmpl/alpine-3.20-default_20240908_amd64.tar.xz",
)


def mac(rng: random.Random) -> str:
    """A MAC address in Proxmox's own prefix, as PVE generates them."""
    return "BC:24:11:" + ":".join(f"{rng.randrange(256):02X}" for _ in range(3))


def qemu_config(rng: random.Random, vmid: int, name: str) -> dict[str, Any]:
    """A real-looking qemu config: disks on ceph or local-lvm, NICs on VLAN-tagged bridges."""
    storage = rng.choice(("ceph-vm", "ceph-vm", "local-lvm"))
    config: dict[str, Any] = {
        "name": name,
        "cores": rng.choice((1, 2, 2, 4, 8)),
        "sockets": 1,
        "memory": str(rng.choice((1024, 2048, 4096, 8192, 16384))),
        "cpu": "x86-64-v2-AES",
        "ostype": "win11" if name.startswith("win") else "l26",
        "scsihw": "virtio-scsi-single",
        "scsi0": f"{storage}:vm-{vmid}-disk-0,iothread=1,discard=on,size={rng.choice((16, 64))}G",
        "net0": f"virtio={mac(rng)},bridge=vmbr0,tag={rng.choice(VLANS)},firewall=1",
        "boot": "order=scsi0;net0",
        "agent": "1",
        "onboot": rng.choice((0, 1)),
        "numa": 0,
        "vmgenid": f"{rng.getrandbits(128):032x}",
        "smbios1": f"uuid={rng.getrandbits(128):032x}",
        "tags": ";".join(sorted(rng.sample(("prod", "web", "db", "k8s", "backup", "ha"), 2))),
        "description": f"{name}: managed by the platform team",
    }
    if rng.random() < 0.4:
        config["scsi1"] = f"local-lvm:vm-{vmid}-disk-1,size={rng.choice((50, 100, 200))}G"
    if rng.random() < 0.3:
        config["net1"] = f"virtio={mac(rng)},bridge=vmbr1,tag={rng.choice(VLANS)}"
    if rng.random() < 0.3:
        config["ipconfig0"] = f"ip=10.0.{rng.choice(VLANS)}.{vmid % 250}/24,gw=10.0.10.1"
        config["ciuser"] = "debian"
    return config


def lxc_config(rng: random.Random, vmid: int, name: str) -> dict[str, Any]:
    """A real-looking container config: rootfs, a mount point, a VLAN-tagged NIC."""
    config: dict[str, Any] = {
        "hostname": name,
        "arch": "amd64",
        "ostype": "debian",
        "cores": rng.choice((1, 1, 2)),
        "memory": rng.choice((256, 512, 1024, 2048)),
        "swap": 512,
        "rootfs": f"local-lvm:vm-{vmid}-disk-0,size={rng.choice((4, 8, 16))}G",
        "net0": f"name=eth0,bridge=vmbr0,hwaddr={mac(rng)},ip=dhcp,tag={rng.choice(VLANS)}",
        "unprivileged": 1,
        "features": "nesting=1",
        "onboot": 1,
        "tags": rng.choice(("infra", "infra;dns", "lab", "monitoring")),
    }
    if rng.random() < 0.3:
        config["mp0"] = f"ceph-vm:vm-{vmid}-disk-1,mp=/srv/data,size=20G"
    return config


def seed(pve: Any, rng: random.Random, guests: int) -> list[int]:
    """Nodes, storages, pools and guests, through fakepve's Python API (before it serves)."""
    for node in NODES:
        pve.add_node(node)
    pve.cluster_name = "lab"
    pve.add_ceph_storage("ceph-vm", pool="vm-pool")
    pve.storages["nfs-backup"] = {
        "type": "nfs",
        "server": "10.0.10.5",
        "export": "/srv/pve-backup",
        "path": "/mnt/pve/nfs-backup",
        "content": "backup",
        "active": 1,
        "files": set(),
        "shared": 1,
        # Room for three nightly archives of up to 40 GiB per guest, and the churn's.
        "avail": max(4 * 1024**4, guests * 256 * 1024**3),
    }
    for user, password in USERS.items():
        pve.users[user] = password
    pve.apitokens[AUTOMATION_TOKEN] = "automation-" + os.urandom(8).hex()
    pve.apitokens[PVETRAIL_TOKEN] = os.environ.get(TOKEN_ENV) or "pvetrail-" + os.urandom(8).hex()
    vmids = []
    qemu_count = round(guests * 0.6)
    # qemu guests take 101, 102, ...; containers start at the next hundred past them plus one
    # (201 for up to 99 VMs, 301 for up to 199, ...), so the two ranges never meet.
    lxc_first = (100 + qemu_count) // 100 * 100 + 101
    for i in range(guests):
        node = NODES[i % len(NODES)]
        pool = rng.choice((*POOLS, None))
        status = "running" if rng.random() < 0.7 else "stopped"
        if i < qemu_count:
            vmid = 101 + i
            name = f"{QEMU_NAMES[i % len(QEMU_NAMES)]}-{i // len(QEMU_NAMES) + 1:02d}"
            pve.add_vm(
                vmid, name, node=node, status=status, config=qemu_config(rng, vmid, name), pool=pool
            )
        else:
            vmid = lxc_first + i - qemu_count
            name = f"{LXC_NAMES[i % len(LXC_NAMES)]}-{i // len(LXC_NAMES) + 1:02d}"
            pve.add_ct(
                vmid,
                name,
                node=node,
                status=status,
                config=lxc_config(rng, vmid, name),
                pool=pool,
                ostemplate=rng.choice(OS_TEMPLATES),
            )
        vmids.append(vmid)
    # Nightly backups of the last three days for about half the guests.
    today = datetime.now(UTC).replace(hour=1, minute=0, second=0, microsecond=0)
    for vmid in vmids:
        if rng.random() < 0.5:
            for days in (3, 2, 1):
                add_backup(pve, vmid, today - timedelta(days=days), rng)
    return vmids


def add_backup(pve: Any, vmid: int, when: datetime, rng: random.Random) -> None:
    """A vzdump archive on the NFS storage (fakepve's vzdump writes none)."""
    kind = "qemu" if pve.vm(vmid) is not None else "lxc"
    ext = "vma.zst" if kind == "qemu" else "tar.zst"
    name = f"vzdump-{kind}-{vmid}-{when:%Y_%m_%d-%H_%M_%S}.{ext}"
    pve.store_file("nfs-backup", name, rng.randrange(1, 40) * 1024**3, content="backup")


class Client:
    """The Proxmox API over HTTPS, as one user (password ticket) or one API token."""

    def __init__(self, session: aiohttp.ClientSession, url: str, who: str, secret: str) -> None:
        self.session = session
        self.base = f"{url}/api2/json"
        self.who = who
        self.secret = secret
        self.headers: dict[str, str] = {}

    async def login(self) -> None:
        if "!" in self.who:
            self.headers = {"Authorization": f"PVEAPIToken={self.who}={self.secret}"}
            return
        data = {"username": self.who, "password": self.secret}
        async with self.session.post(f"{self.base}/access/ticket", data=data) as response:
            response.raise_for_status()
            ticket = (await response.json())["data"]
        self.headers = {
            "Cookie": f"PVEAuthCookie={ticket['ticket']}",
            "CSRFPreventionToken": ticket["CSRFPreventionToken"],
        }

    async def call(self, method: str, path: str, **data: Any) -> Any:
        if not self.headers:
            await self.login()
        async with self.session.request(
            method, self.base + path, data=data or None, headers=self.headers
        ) as response:
            body = await response.json(content_type=None)
            if response.status >= 400:
                raise RuntimeError(f"{method} {path}: {response.status} {body.get('message')}")
            return body.get("data")


class Churn:
    """One change every interval, chosen at random (repeatably, from the seed)."""

    def __init__(self, pve: Any, clients: dict[str, Client], rng: random.Random) -> None:
        self.pve = pve
        self.clients = clients
        self.rng = rng
        self.actions: list[tuple[float, Callable[[], Coroutine[Any, Any, str]]]] = [
            (5, self.edit_config),
            (3, self.power),
            (2, self.snapshot),
            (1, self.delete_snapshot),
            (2, self.migrate),
            (2, self.backup),
            (1, self.create_guest),
            (1, self.destroy_guest),
            (1, self.retag),
        ]

    def guests(self, kind: str | None = None) -> list[Any]:
        pool = [*self.pve.vms, *self.pve.cts] if kind is None else getattr(self.pve, kind)
        return [g for g in pool if not g.lock and not g.template]

    @staticmethod
    def kind(guest: Any) -> str:
        return "qemu" if hasattr(guest, "qmpstatus") else "lxc"

    async def step(self) -> str:
        weights = [w for w, _ in self.actions]
        action = self.rng.choices([a for _, a in self.actions], weights=weights)[0]
        return await action()

    async def edit_config(self) -> str:
        guest = self.rng.choice(self.guests())
        kind = self.kind(guest)
        key, value = self.rng.choice(
            [
                ("memory", str(self.rng.choice((512, 1024, 2048, 4096, 8192)))),
                ("cores", str(self.rng.choice((1, 2, 4)))),
                ("description", f"changed by alice at {datetime.now(UTC):%H:%M:%S}"),
                ("onboot", str(self.rng.choice((0, 1)))),
            ]
        )
        path = f"/nodes/{guest.node}/{kind}/{guest.vmid}/config"
        # qemu: POST makes a qmconfig task, so the change is attributed; lxc has only PUT.
        await self.clients["alice"].call("POST" if kind == "qemu" else "PUT", path, **{key: value})
        return f"alice set {key}={value} on {kind}/{guest.vmid}"

    async def retag(self) -> str:
        guest = self.rng.choice(self.guests())
        kind = self.kind(guest)
        tags = ";".join(sorted(self.rng.sample(("prod", "web", "db", "k8s", "staging", "eol"), 2)))
        path = f"/nodes/{guest.node}/{kind}/{guest.vmid}/config"
        await self.clients["automation"].call("PUT", path, tags=tags)
        return f"{AUTOMATION_TOKEN} tagged {kind}/{guest.vmid} {tags}"

    async def power(self) -> str:
        guest = self.rng.choice(self.guests())
        kind = self.kind(guest)
        action = "stop" if guest.status == "running" else "start"
        if action == "stop" and self.rng.random() < 0.5:
            action = "shutdown"
        await self.clients["bob"].call(
            "POST", f"/nodes/{guest.node}/{kind}/{guest.vmid}/status/{action}"
        )
        return f"bob {action} {kind}/{guest.vmid}"

    async def snapshot(self) -> str:
        guest = self.rng.choice(self.guests("vms"))
        name = (
            f"before-{self.rng.choice(('upgrade', 'patch', 'change'))}-{int(time.time()) % 100000}"
        )
        await self.clients["alice"].call(
            "POST", f"/nodes/{guest.node}/qemu/{guest.vmid}/snapshot", snapname=name
        )
        return f"alice snapshot qemu/{guest.vmid}@{name}"

    async def delete_snapshot(self) -> str:
        candidates = [g for g in self.guests("vms") if g.snapshots]
        if not candidates:
            return await self.snapshot()
        guest = self.rng.choice(candidates)
        name = self.rng.choice(sorted(guest.snapshots))
        await self.clients["alice"].call(
            "DELETE", f"/nodes/{guest.node}/qemu/{guest.vmid}/snapshot/{name}"
        )
        return f"alice deleted snapshot qemu/{guest.vmid}@{name}"

    async def migrate(self) -> str:
        guest = self.rng.choice(self.guests())
        target = self.rng.choice([n for n in NODES if n != guest.node])
        if self.kind(guest) == "qemu":
            # fakepve's qemu migrate endpoint does not move the VM; its Python API does.
            await self.pve.migrate(guest.vmid, target, secs=0, user="alice@pve")
            return f"alice migrated qemu/{guest.vmid} to {target}"
        params = {"target": target}
        if guest.status == "running":
            params["restart"] = "1"
        await self.clients["bob"].call(
            "POST", f"/nodes/{guest.node}/lxc/{guest.vmid}/migrate", **params
        )
        return f"bob migrated lxc/{guest.vmid} to {target}"

    async def backup(self) -> str:
        guest = self.rng.choice(self.guests())
        # fakepve's vzdump task writes no archive: run the task, then add the archive.
        await self.pve.backup(guest.vmid, secs=0, user="bob@pve")
        add_backup(self.pve, guest.vmid, datetime.now(UTC), self.rng)
        return f"bob backed up {self.kind(guest)}/{guest.vmid}"

    async def create_guest(self) -> str:
        client = self.clients["automation"]
        vmid = int(await client.call("GET", "/cluster/nextid"))
        node = self.rng.choice(NODES)
        name = f"ci-runner-{vmid}"
        config = qemu_config(self.rng, vmid, name)
        for key in ("vmgenid", "smbios1"):
            config.pop(key)
        config["scsi0"] = "local-lvm:16,iothread=1,discard=on"
        config.pop("scsi1", None)
        await client.call("POST", f"/nodes/{node}/qemu", vmid=str(vmid), **config)
        return f"{AUTOMATION_TOKEN} created qemu/{vmid} on {node}"

    async def destroy_guest(self) -> str:
        candidates = [v for v in self.guests("vms") if v.status == "stopped"]
        if len(self.pve.vms) + len(self.pve.cts) < 10 or not candidates:
            return await self.create_guest()
        guest = self.rng.choice(candidates)
        await self.clients["automation"].call("DELETE", f"/nodes/{guest.node}/qemu/{guest.vmid}")
        return f"{AUTOMATION_TOKEN} destroyed qemu/{guest.vmid}"


async def run(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    os.makedirs(args.state_dir, exist_ok=True)
    try:
        certfile, keyfile, _ = make_cert(args.state_dir, hosts=(args.host,))
    except ModuleNotFoundError as exc:  # fakepve imports cryptography only here
        print(
            f"fakepve_launcher: {exc.name} is not installed; install the demo extra: "
            "pip install 'pvetrail[demo]'",
            file=sys.stderr,
        )
        sys.exit(3)
    pve = FakePve(user="root@pam", password=os.urandom(12).hex(), host=args.host, port=args.port)
    pve.time_scale = 0  # tasks finish before their request returns
    vmids = seed(pve, rng, args.guests)
    await pve.start(certfile, keyfile)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    _watch_stdin(loop, stop)
    context = ssl.create_default_context(cafile=certfile)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        clients = {
            "alice": Client(session, pve.url, "alice@pve", USERS["alice@pve"]),
            "bob": Client(session, pve.url, "bob@pve", USERS["bob@pve"]),
            "automation": Client(
                session, pve.url, AUTOMATION_TOKEN, pve.apitokens[AUTOMATION_TOKEN]
            ),
        }
        # A few snapshots to start with, taken the way a user would.
        for vmid in rng.sample([v for v in vmids if pve.vm(v) is not None], 4):
            vm = pve.vm(vmid)
            await clients["alice"].call(
                "POST", f"/nodes/{vm.node}/qemu/{vmid}/snapshot", snapname="before-upgrade"
            )
        ready = {"url": pve.url, "cafile": certfile, "nodes": list(NODES), "guests": len(vmids)}
        print(json.dumps(ready), flush=True)
        churn = Churn(pve, clients, rng)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=args.churn_interval)
                break
            try:
                log.info("%s", await churn.step())
            except Exception as exc:  # a refused change (locked guest, ...) is part of life
                log.info("change refused: %s", exc)
    await pve.stop()


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Stop when standard input closes: the demo that started us has gone.

    Watched by the event loop on the raw descriptor, not by a thread: a thread blocked in a
    buffered read holds stdin's lock, and interpreter shutdown then aborts with a fatal error.
    """
    if sys.stdin is None or sys.stdin.isatty():
        return
    fd = sys.stdin.fileno()

    def readable() -> None:
        try:
            data = os.read(fd, 4096)  # nothing is ever sent; anything that is, is dropped
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            stop.set()

    try:
        os.set_blocking(fd, False)
        loop.add_reader(fd, readable)
    except (OSError, ValueError):
        return  # not a pipe (a file, /dev/null): nothing to watch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: one the system picks")
    parser.add_argument("--guests", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--churn-interval", type=float, default=5.0)
    parser.add_argument("--state-dir", required=True, help="folder for the TLS certificate")
    parser.add_argument("--log-file", help="write each change made here")
    args = parser.parse_args()
    logging.basicConfig(
        filename=args.log_file,
        level=logging.INFO if args.log_file else logging.WARNING,
        format="%(asctime)s %(message)s",
    )
    logging.getLogger("fakepve").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
