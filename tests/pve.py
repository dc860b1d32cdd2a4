"""Reusable helpers: fake Proxmox VE clusters served over HTTPS, seeded, and configs for them.

``fakepve`` (a fake PVE 9 API) runs on its own event loop in a daemon thread, so it serves
while a test's own loop (pytest-asyncio) drives the code under test through proxmoxer, exactly
as production does: HTTPS to 127.0.0.1, the certificate verified against a CA file, API-token
or password auth.

Typical use::

    with serve_pve(tmp_path) as served:          # or the `served_pve` pattern in a fixture
        seed_mixed(served.pve)
        cluster = served.cluster_config("lab")   # a ClusterConfig with a token
        env = served.environ                     # the token secret, by variable name
        ...
        served.run(served.pve.migrate(100, "pve2"))   # fakepve's in-process async API
        served.pve.set_node_offline("pve2")           # its sync API (between requests)

``FakePve``'s plain methods (``set_node_offline``, ``lose_quorum``, ``flaky_network``,
``fail``, ``store_file``, ...) change state directly; call them between polls. Its coroutines
(``migrate``, ``backup``) must run on the fake's loop: use :meth:`ServedPve.run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import secrets
import threading
import time
import warnings
from collections.abc import Coroutine, Iterator, Mapping
from pathlib import Path
from typing import Any

from fakepve import FakePve, settle
from fakepve.certs import make_cert

from collectors.config import ClusterConfig

HOST = "127.0.0.1"
TOKEN_ID = "audit@pve!pvetrail"
TOKEN_ENV = "PVETRAIL_TEST_TOKEN"
START_TIMEOUT_S = 30.0


class ServedPve:
    """A FakePve listening on https://127.0.0.1:PORT with a certificate ``cafile`` verifies."""

    def __init__(self, pve: FakePve, cafile: str, keyfile: str) -> None:
        self.pve = pve
        self.cafile = cafile
        self.token_secret = secrets.token_hex(16)
        pve.apitokens[TOKEN_ID] = self.token_secret
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="fakepve", daemon=True)
        self._thread.start()
        self.run(pve.start(cafile, keyfile))

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = START_TIMEOUT_S) -> Any:
        """Run one of fakepve's coroutines on its own loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, as a ClusterConfig's ``host``."""
        return f"{HOST}:{self.pve.port}"

    @property
    def environ(self) -> dict[str, str]:
        """The environment a ClusterConfig from :meth:`cluster_config` reads its secret from."""
        return {TOKEN_ENV: self.token_secret}

    def add_token(self, token_id: str) -> str:
        """A further API token (``user@realm!name``); returns its secret."""
        secret = secrets.token_hex(16)
        self.pve.apitokens[token_id] = secret
        return secret

    def cluster_config(self, name: str = "lab", **overrides: Any) -> ClusterConfig:
        """A ClusterConfig for this fake: token auth, TLS verified against ``cafile``.

        Timeouts and intervals are short, for tests; ``overrides`` replace any field.
        """
        values: dict[str, Any] = {
            "name": name,
            "host": self.host,
            "token_id": TOKEN_ID,
            "token_secret_env": TOKEN_ENV,
            "verify_tls": self.cafile,
            "connect_timeout_s": 2.0,
            "read_timeout_s": 5.0,
            "fast_interval_s": 10,
            "deep_interval_s": 300,
            "retry_backoff_s": 0.05,
        }
        values.update(overrides)
        return ClusterConfig(**values)

    def stop(self) -> None:
        """Stop serving and end the thread."""
        try:
            self.pve.network.update(drop_rate=0.0, hang_rate=0.0)
            self.run(settle())
            self.run(self.pve.stop())
            # let the closed connections' transports finish closing on this loop
            self.run(asyncio.sleep(0.05))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(START_TIMEOUT_S)
            if not self._thread.is_alive():
                self._close_loop()

    def _close_loop(self) -> None:
        # fakepve's dropped and hung connections can leave server-side sockets it never
        # closes; close them with the loop, so they do not surface as ResourceWarnings in
        # whichever later test the garbage collector happens to run in.
        transports = getattr(self._loop, "_transports", None) or {}
        for transport in list(transports.values()):
            if transport is not None and not transport.is_closing():
                transport.abort()
        self._loop.close()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


def make_pki(directory: Path) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (cert file, key file) in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    certfile, keyfile, _der = make_cert(str(directory), hosts=(HOST,))
    return certfile, keyfile


@contextlib.contextmanager
def serve_pve(directory: Path, pve: FakePve | None = None) -> Iterator[ServedPve]:
    """Serve ``pve`` (a fresh, empty FakePve by default) over HTTPS for the block."""
    certfile, keyfile = make_pki(directory)
    fake = pve or FakePve(host=HOST, port=0)
    served = ServedPve(fake, certfile, keyfile)
    try:
        yield served
    finally:
        served.stop()


def seed_mixed(pve: FakePve, *, secret: str = "hunter2-plaintext") -> None:
    """A small mixed cluster: 2 nodes, 2 VMs and a container, a pool, snapshots, a backup.

    * ``pve1``: VM 100 ``web`` (running, tags prod;web, pool ``prod``, a ``cipassword`` of
      ``secret``, snapshot ``before-upgrade``), storages ``local`` and ``local-lvm``;
    * ``pve2``: VM 101 ``batch`` (stopped), container 200 ``db`` (running);
    * a vzdump archive of VM 100 on ``local``.
    """
    pve.cluster_name = "lab"
    pve.add_node("pve1")
    pve.add_node("pve2")
    web = pve.add_vm(
        100,
        "web",
        node="pve1",
        status="running",
        pool="prod",
        config={
            "cores": 2,
            "memory": 2048,
            "ostype": "l26",
            "scsi0": "local-lvm:vm-100-disk-0,size=32G",
            "net0": "virtio=BC:24:11:00:01:00,bridge=vmbr0,firewall=1",
            "tags": "prod;web",
            "ciuser": "ops",
            "cipassword": secret,
            "sshkeys": "ssh-ed25519%20AAAAC3Nza%20ops%40example",
        },
    )
    web.snapshots["before-upgrade"] = {
        "cores": 2,
        "snaptime": int(time.time()) - 3600,
        "description": "before the upgrade",
    }
    pve.add_vm(
        101,
        "batch",
        node="pve2",
        status="stopped",
        config={"cores": 1, "memory": 1024, "scsi0": "local-lvm:vm-101-disk-0,size=8G"},
    )
    pve.add_ct(
        200,
        "db",
        node="pve2",
        status="running",
        config={"cores": 1, "net0": "name=eth0,bridge=vmbr0,ip=dhcp", "tags": "db"},
    )
    pve.store_file("local", "vzdump-qemu-100-2026_11_01-00_00_01.vma.zst", 4096, content="backup")


def seed_many(pve: FakePve, *, nodes: int = 3, guests: int = 1000) -> None:
    """A bigger cluster for benchmarks: ``nodes`` nodes, ``guests`` guests (a tenth containers)."""
    names = [f"pve{i + 1}" for i in range(nodes)]
    for name in names:
        pve.add_node(name)
    for index in range(guests):
        vmid = 1000 + index
        node = names[index % nodes]
        if index % 10 == 9:
            pve.add_ct(vmid, f"ct{vmid}", node=node, status="running", config={"cores": 1})
        else:
            pve.add_vm(
                vmid,
                f"vm{vmid}",
                node=node,
                status="running" if index % 2 else "stopped",
                config={
                    "cores": 2,
                    "memory": 2048,
                    "scsi0": f"local-lvm:vm-{vmid}-disk-0,size=16G",
                    "net0": f"virtio=BC:24:11:{index >> 8:02X}:{index & 255:02X}:00,bridge=vmbr0",
                    "tags": "bench",
                },
            )


def env_with(base: Mapping[str, str], **extra: str) -> dict[str, str]:
    """``base`` plus more variables (a second token's secret, say)."""
    out = dict(base)
    out.update(extra)
    return out
