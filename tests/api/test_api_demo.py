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


@pytest.mark.slow
async def test_demo_fills_inventory_and_history_and_stops_on_sigint(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("PVETRAIL_DATABASE_URL", "PVETRAIL_LISTEN", "PVETRAIL_CONFIG"):
        env.pop(name, None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "api",
        "demo",
        "--port",
        "0",
        "--guests",
        "12",
        "--churn-interval",
        "0.2",
        "--seed",
        "7",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=str(tmp_path),
    )
    try:
        assert process.stdout is not None
        banner = await read_banner(process.stdout)
        match = re.search(r"API: +(http://127\.0\.0\.1:\d+)/api/v1/resources", banner)
        assert match, banner
        url = match.group(1)
        pve_url = re.search(r"simulated cluster: (https://\S+)", banner)
        assert pve_url, banner
        churn_log = re.search(r"changes logged in (\S+)\)", banner)
        assert churn_log, banner
        assert "pvetrail history lab/qemu/101" in banner
        async with aiohttp.ClientSession() as http:

            async def get(path: str) -> Any:
                async with http.get(url + path) as response:
                    assert response.status == 200, await response.text()
                    return await response.json()

            async def inventory() -> Any:
                page = await get("/api/v1/resources?limit=1000")
                kinds = [r["type"] for r in page["items"]]
                return page if kinds.count("qemu") + kinds.count("lxc") >= 12 else None

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
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            try:
                code = await asyncio.wait_for(process.wait(), WAIT_S)  # a bound on a hang
            except TimeoutError:
                process.kill()
                await process.wait()
                pytest.fail(f"the demo did not stop within {WAIT_S:.0f} s of SIGINT")
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
