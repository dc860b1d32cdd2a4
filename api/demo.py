"""``pvetrail demo``: a simulated Proxmox VE cluster that keeps changing, and ``serve`` against it.

The simulator (``fakepve``, AGPL-licensed, an optional dependency of the demo only) runs as its
own process, started by ``demo/fakepve_launcher.py``, a script shipped beside the packages as a
data file; pvetrail talks to it only over HTTPS, exactly as to a real cluster, and never
imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import sys
import sysconfig
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from collectors.config import ClusterConfig

from .config import ApiConfig, Config, ConfigError
from .server import serve

LAUNCHER = Path("demo") / "fakepve_launcher.py"
TOKEN_ID = "pvetrail@pve!demo"
TOKEN_ENV = "PVETRAIL_DEMO_PVE_TOKEN"
START_TIMEOUT_S = 60.0
MAX_GUESTS = 2000


class DemoError(Exception):
    """The demo could not start (no fakepve, no launcher, the simulator failed)."""


@dataclass(frozen=True)
class DemoOptions:
    """``pvetrail demo``'s options."""

    port: int = 8080
    guests: int = 40
    churn_interval: float = 5.0
    seed: int = 1
    database: str | None = None  # a SQLite file; None: a fresh one in a temporary folder


def launcher_path() -> Path:
    """The launcher script: beside the packages in a checkout or an editable install, or in
    the environment's ``share/pvetrail`` where a wheel installs it."""
    candidates = [
        Path(__file__).resolve().parent.parent / LAUNCHER,
        Path(sysconfig.get_path("data")) / "share" / "pvetrail" / LAUNCHER,
        Path(sys.prefix) / "share" / "pvetrail" / LAUNCHER,
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DemoError(f"the fakepve launcher is not installed (looked for {candidates[0]})")


class Simulator:
    """The launcher process: started, read until it says where it listens, then stopped."""

    def __init__(self, options: DemoOptions, state_dir: str, environ: Mapping[str, str]) -> None:
        self.options = options
        self.state_dir = state_dir
        self.environ = environ
        self.process: asyncio.subprocess.Process | None = None
        self.url = ""
        self.cafile = ""
        self.log_file = os.path.join(state_dir, "churn.log")

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(launcher_path()),
            "--state-dir",
            self.state_dir,
            "--guests",
            str(self.options.guests),
            "--seed",
            str(self.options.seed),
            "--churn-interval",
            str(self.options.churn_interval),
            "--log-file",
            self.log_file,
            stdin=asyncio.subprocess.PIPE,  # closing it (or our death) stops the simulator
            stdout=asyncio.subprocess.PIPE,
            env=dict(self.environ),
            # Its own process group: a Ctrl-C reaches only us, and we stop it in order.
            start_new_session=True,
        )
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), START_TIMEOUT_S)
        except TimeoutError:
            raise DemoError("the simulated cluster did not start within a minute") from None
        if not line:
            code = await self.process.wait()
            hint = " (install the demo extra: pip install 'pvetrail[demo]')" if code == 3 else ""
            raise DemoError(f"the simulated cluster exited with code {code}{hint}")
        ready = json.loads(line)
        self.url, self.cafile = ready["url"], ready["cafile"]

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


def demo_config(options: DemoOptions, database: str, simulator: Simulator) -> Config:
    """The configuration ``serve`` runs with: one cluster, the simulator, polled often."""
    host = simulator.url.removeprefix("https://")
    cluster = ClusterConfig(
        name="lab",
        host=host,
        token_id=TOKEN_ID,
        token_secret_env=TOKEN_ENV,
        verify_tls=simulator.cafile,
        # A large simulated cluster takes longer to poll (2,000 guests: about 10 s fast, 45 s
        # deep on two busy cores): poll it less often rather than back to back.
        fast_interval_s=max(1, round(options.churn_interval), options.guests // 200),
        deep_interval_s=max(5, round(options.churn_interval * 3), options.guests // 20),
    )
    return Config(
        database_url=f"sqlite:///{database}",
        api=ApiConfig(listen=f"127.0.0.1:{options.port}"),
        clusters=[cluster],
    )


async def run_demo(options: DemoOptions, environ: Mapping[str, str]) -> int:
    """Start the simulator, serve against it until interrupted, then stop both."""
    if options.guests < 1 or options.guests > MAX_GUESTS:
        raise ConfigError(f"--guests must be between 1 and {MAX_GUESTS}")
    if options.churn_interval <= 0:
        raise ConfigError("--churn-interval must be more than 0 seconds")
    state_dir = tempfile.mkdtemp(prefix="pvetrail-demo-")
    database = options.database or os.path.join(state_dir, "pvetrail-demo.db")
    env = {**environ, TOKEN_ENV: secrets.token_urlsafe(24)}
    simulator = Simulator(options, state_dir, env)
    try:
        # The web view's address first (known now unless the system picks the port).
        where = f"http://127.0.0.1:{options.port}/ (web view); " if options.port else ""
        print(f"pvetrail demo: {where}starting a simulated Proxmox VE cluster ...", flush=True)
        await simulator.start()
        config = demo_config(options, database, simulator)
        return await serve(
            config,
            env,
            on_listening=lambda url: print(banner(url, database, simulator), flush=True),
        )
    finally:
        await simulator.stop()
        shutil.rmtree(state_dir, ignore_errors=True)
        print("pvetrail demo: stopped", flush=True)


def banner(url: str, database: str, simulator: Simulator) -> str:
    """What the demo prints once the API answers."""
    db = f"PVETRAIL_DATABASE_URL=sqlite:///{database}"
    return f"""
pvetrail demo is running: open {url}/ (the web view).

  web view:          {url}/
  API:               {url}/api/v1/resources
  OpenAPI document:  {url}/api/v1/openapi.json
  simulated cluster: {simulator.url} (3 nodes; changes logged in {simulator.log_file})

Try (the first poll takes a few seconds; changes arrive every few seconds):

  curl -s '{url}/api/v1/resources?type=qemu&limit=5'
  curl -s '{url}/api/v1/resources/lab/qemu/101'
  curl -s '{url}/api/v1/resources/lab/qemu/101/history'
  curl -s '{url}/api/v1/changes?since=2026-01-01T00:00:00Z'
  curl -s '{url}/api/v1/relations?id=lab/qemu/101'

  {db} pvetrail inventory
  {db} pvetrail show lab/qemu/101
  {db} pvetrail history lab/qemu/101

Press Ctrl-C to stop.
"""
