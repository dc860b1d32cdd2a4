"""``pvetrail demo`` as a subprocess: it starts, fills inventory and history, stops on SIGINT."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import ssl
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from api_helpers import WAIT_S, wait_for

from eventstore import format_time, utcnow

ROOT = Path(__file__).resolve().parents[2]


async def read_banner(stdout: asyncio.StreamReader) -> str:
    """stdout up to the banner's last line."""
    text = ""
    while "Press Ctrl-C to stop." not in text:
        line = await asyncio.wait_for(stdout.readline(), 60)
        if not line:
            break
        text += line.decode()
    return text


async def read_url(process: asyncio.subprocess.Process) -> tuple[str, str]:
    """The demo's banner and the base URL it serves on."""
    assert process.stdout is not None
    banner = await read_banner(process.stdout)
    match = re.search(r"API: +(http://127\.0\.0\.1:\d+)/api/v1/resources", banner)
    assert match, banner
    return banner, match.group(1)


async def start_demo(tmp_path: Path, *args: str) -> asyncio.subprocess.Process:
    """``pvetrail demo --port 0 ARGS`` as its own process, in a fresh folder."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("PVETRAIL_DATABASE_URL", "PVETRAIL_LISTEN", "PVETRAIL_CONFIG"):
        env.pop(name, None)
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "api",
        "demo",
        "--port",
        "0",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=str(tmp_path),
    )


async def stop_demo(process: asyncio.subprocess.Process) -> int:
    """SIGINT, and its exit code; fail the test if it does not stop."""
    if process.returncode is not None:
        return process.returncode
    process.send_signal(signal.SIGINT)
    try:
        return await asyncio.wait_for(process.wait(), WAIT_S)  # a bound on a hang
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"the demo did not stop within {WAIT_S:.0f} s of SIGINT")


@pytest.mark.slow
async def test_demo_fills_inventory_and_history_and_stops_on_sigint(tmp_path: Path) -> None:
    process = await start_demo(tmp_path, "--guests", "12", "--churn-interval", "0.2", "--seed", "7")
    try:
        banner, url = await read_url(process)
        pve_url = re.search(r"simulated cluster: (https://\S+)", banner)
        assert pve_url, banner
        churn_log = re.search(r"changes logged in (\S+)\)", banner)
        assert churn_log, banner
        assert "pvetrail history lab/qemu/101" in banner
        # Once it runs, the web view's URL comes first.
        first = [line for line in banner.splitlines() if line.strip()][1]
        assert first == f"pvetrail demo is running: open {url}/ (the web view).", banner
        async with aiohttp.ClientSession() as http:

            async def get(path: str) -> Any:
                async with http.get(url + path) as response:
                    assert response.status == 200, await response.text()
                    return await response.json()

            async def inventory() -> Any:
                page = await get("/api/v1/resources?limit=1000")
                kinds = [r["type"] for r in page["items"]]
                return page if kinds.count("qemu") + kinds.count("lxc") >= 12 else None

            async with http.get(url + "/") as response:  # the web view, no token on loopback
                assert response.status == 200
                assert response.content_type == "text/html"
            page = await wait_for(inventory, "the demo to show its guests", interval=0.3)
            kinds = {r["type"] for r in page["items"]}
            assert {"qemu", "lxc", "node", "storage"} <= kinds
            assert {r["node"] for r in page["items"] if r["type"] == "node"} == {
                "pve1",
                "pve2",
                "pve3",
            }
            guest = next(r for r in page["items"] if r["type"] == "qemu")
            assert any(k.startswith("net") and "tag=" in v for k, v in guest["config"].items())

            filled_at = format_time(utcnow())

            async def churned() -> Any:
                changes = await get(f"/api/v1/changes?since={filled_at}&limit=1000")
                return [c for c in changes["items"] if c["change"] == "changed"]

            changed = await wait_for(churned, "a change made by the demo's churn", interval=0.3)
            history = await get(f"/api/v1/resources/{changed[0]['id']}/history")
            assert history["items"][0]["event"] == "discovered"
            assert len(history["items"]) >= 2
    finally:
        code = await stop_demo(process)
    stdout = (await process.stdout.read()).decode() if process.stdout else ""
    stderr = (await process.stderr.read()).decode() if process.stderr else ""
    assert code == 0, stderr
    assert "pvetrail demo: stopped" in stdout
    # The simulator shares our stderr: it too must stop without a crash or a traceback.
    assert "Fatal Python error" not in stderr, stderr
    assert "Traceback" not in stderr, stderr
    # The simulator is gone with it, and its temporary folder too.
    assert not Path(churn_log.group(1)).parent.exists()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            async with http.get(pve_url.group(1) + "/api2/json/version", ssl=context):
                pass


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("guests", [150, 1200])
async def test_demo_simulates_any_number_of_guests(tmp_path: Path, guests: int) -> None:
    """150 guests once crashed at start (qemu 101-190 and lxc 201-260 met at 201)."""
    process = await start_demo(tmp_path, "--guests", str(guests), "--churn-interval", "30")
    try:
        _, url = await read_url(process)
        async with aiohttp.ClientSession() as http:

            async def all_guests() -> list[dict[str, Any]] | None:
                found = []
                for kind in ("qemu", "lxc"):
                    cursor = ""
                    while True:
                        query = f"?type={kind}&limit=1000" + (f"&cursor={cursor}" if cursor else "")
                        async with http.get(f"{url}/api/v1/resources{query}") as response:
                            assert response.status == 200, await response.text()
                            page = await response.json()
                        found += page["items"]
                        cursor = page["next_cursor"]
                        if not cursor:
                            break
                return found if len(found) >= guests else None

            found = await wait_for(all_guests, f"the demo to show its {guests} guests", timeout=300)
        vmids = {
            kind: sorted(r["vmid"] for r in found if r["type"] == kind) for kind in ("qemu", "lxc")
        }
        assert len(vmids["qemu"]) == round(guests * 0.6)
        assert len(vmids["qemu"]) + len(vmids["lxc"]) == guests
        assert vmids["qemu"][0] == 101
        assert vmids["qemu"][-1] < vmids["lxc"][0]  # the ranges do not meet
    finally:
        code = await stop_demo(process)
    stderr = (await process.stderr.read()).decode() if process.stderr else ""
    assert code == 0, stderr
    assert "Traceback" not in stderr, stderr
