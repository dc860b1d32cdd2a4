"""``pvetrail serve`` end to end, as a subprocess against fakepve over HTTPS.

A change made through the Proxmox API by a second user's token shows up through pvetrail's
HTTP API with that actor and an honest window; SIGTERM stops the process cleanly.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from api_helpers import WAIT_S, wait_for
from proxmoxer import ProxmoxAPI

from eventstore import parse_time, utcnow
from tests.pve import HOST, TOKEN_ENV, TOKEN_ID, ServedPve, seed_mixed, serve_pve

ROOT = Path(__file__).resolve().parents[2]
READER_SECRET = "reader-secret-for-the-e2e-test"


def write_config(path: Path, database_url: str, host: str, cafile: str) -> None:
    """A serve config: one reader token, one cluster polled every second (deep: two)."""
    path.write_text(
        f"""
database_url = "{database_url}"

[api]
listen = "127.0.0.1:0"
[[api.tokens]]
name = "e2e"
role = "reader"
secret_env = "PVETRAIL_E2E_READER"

[[clusters]]
name = "lab"
host = "{host}"
token_id = "{TOKEN_ID}"
token_secret_env = "{TOKEN_ENV}"
verify_tls = "{cafile}"
fast_interval_s = 1
deep_interval_s = 2
connect_timeout_s = 2.0
read_timeout_s = 5.0
"""
    )


def serve_environ(served: ServedPve) -> dict[str, str]:
    """A serve subprocess's environment: the cluster's and the reader's secrets, this
    checkout importable, and nothing that would override the config file."""
    env = {
        **os.environ,
        **served.environ,
        "PVETRAIL_E2E_READER": READER_SECRET,
        "PYTHONPATH": str(ROOT),
    }
    env.pop("PVETRAIL_DATABASE_URL", None)
    env.pop("PVETRAIL_LISTEN", None)
    return env


async def start_serve(
    config: Path, env: dict[str, str], cwd: Path, stderr: Any = asyncio.subprocess.PIPE
) -> asyncio.subprocess.Process:
    """``pvetrail serve --config CONFIG`` as a subprocess; it prints its URL on stdout."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "api",
        "serve",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
        env=env,
        cwd=str(cwd),
    )


@pytest.mark.slow
async def test_serve_records_a_change_with_actor_and_window_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    with serve_pve(tmp_path / "pki") as served:
        seed_mixed(served.pve)
        ops_secret = served.add_token("ops@pve!ci")
        config = tmp_path / "pvetrail.toml"
        write_config(config, f"sqlite:///{tmp_path / 'pvetrail.db'}", served.host, served.cafile)
        env = serve_environ(served)
        process = await start_serve(config, env, tmp_path)
        try:
            assert process.stdout is not None
            line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
            if not line and process.stderr is not None:
                pytest.fail(f"serve exited: {(await process.stderr.read()).decode()}")
            assert line.startswith("pvetrail: serving on http://127.0.0.1:"), line
            url = line.split()[-1]
            headers = {"Authorization": f"Bearer {READER_SECRET}"}
            async with aiohttp.ClientSession(headers=headers) as http:

                async def get(path: str) -> tuple[int, Any]:
                    async with http.get(url + path) as response:
                        return response.status, await response.json()

                async def discovered() -> bool:
                    status, _ = await get("/api/v1/resources/lab/qemu/101")
                    return status == 200

                await wait_for(discovered, "serve to record lab/qemu/101", interval=0.2)
                status, _ = await get("/readyz")
                assert status == 200
                # A second user's token changes the guest through the Proxmox API.
                ops = ProxmoxAPI(
                    HOST,
                    port=served.pve.port,
                    user="ops@pve",
                    token_name="ci",
                    token_value=ops_secret,
                    verify_ssl=served.cafile,
                    timeout=10,
                )
                try:
                    before = utcnow()
                    upid = ops.nodes("pve2").qemu(101).config.post(memory=3072)
                    after = utcnow()
                finally:
                    ops._store["session"].close()

                async def changed() -> Any:
                    _, page = await get("/api/v1/resources/lab%2Fqemu%2F101/history")
                    return next(
                        (
                            e
                            for e in page["items"]
                            if e["event"] != "discovered"
                            and any(c["field"] == "config.memory" for c in e["changes"])
                        ),
                        None,
                    )

                entry = await wait_for(changed, "the memory change in the history", interval=0.2)
                assert entry["actor"] == {"user": "ops@pve", "token": "ops@pve!ci", "upid": upid}, (
                    entry
                )
                memory = next(c for c in entry["changes"] if c["field"] == "config.memory")
                assert str(memory["new"]) == "3072"
                # The window: the previous observation did not show it; this one did.
                assert entry["observed_after"] is not None
                assert parse_time(entry["observed_after"]) <= after
                assert parse_time(entry["observed_at"]) >= before

                # History reads the log; the resource, the projections, which follow it.
                async def projected() -> Any:
                    status, now = await get("/api/v1/resources/lab/qemu/101")
                    return status == 200 and str(now["config"]["memory"]) == "3072"

                await wait_for(projected, "the projections to show the change", interval=0.2)
                # The query commands work beside the running server, on the same database.
                cli = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "api",
                    "history",
                    "lab/qemu/101",
                    "--json",
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    env={**env, "PVETRAIL_DATABASE_URL": f"sqlite:///{tmp_path / 'pvetrail.db'}"},
                    cwd=str(tmp_path),
                )
                out, err = await asyncio.wait_for(cli.communicate(), 30)
                assert cli.returncode == 0, err.decode()
                assert upid in out.decode()
                # A reader may not ask for a resync.
                async with http.post(url + "/api/v1/resyncs", json={"cluster": "lab"}) as r:
                    assert r.status == 403
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    # A bound on a hang, not a measure of speed (that is bench/'s to measure).
                    code = await asyncio.wait_for(process.wait(), WAIT_S)
                except TimeoutError:
                    process.kill()
                    await process.wait()
                    pytest.fail(f"serve did not stop within {WAIT_S:.0f} s of SIGTERM")
        stderr = (await process.stderr.read()).decode() if process.stderr else ""
        assert code == 0, stderr
        assert '"message": "stopped"' in stderr
        assert READER_SECRET not in stderr
        assert served.token_secret not in stderr
        assert ops_secret not in stderr
