"""Three ``pvetrail serve`` processes on one database: one collector per cluster.

Each process reaches fakepve through a thin HTTPS proxy of its own that counts the requests it
forwards, so the test sees which process polls. Exactly one does; SIGKILL it, and another
takes over within twice the fast interval; across the handover no event is duplicated or
lost. On SQLite (one file) and on PostgreSQL (one database).
"""

from __future__ import annotations

import asyncio
import signal
import ssl
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web
from api_helpers import WAIT_S, wait_for

from eventstore import EventStore
from tests.api.test_api_serve import serve_environ, start_serve, write_config
from tests.collectors.conftest import operator, pve_pki, served  # noqa: F401 - fixtures
from tests.pve import HOST, ServedPve

FAST_S = 1
PROCESSES = 3


class CountingProxy:
    """HTTPS on a port of its own, forwarding every request to fakepve; counts them."""

    def __init__(self, pve: ServedPve, certfile: str, keyfile: str) -> None:
        self.target = f"https://{pve.host}"
        self.requests: list[tuple[float, str, str]] = []  # (monotonic time, method, path)
        self.server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_ssl.load_cert_chain(certfile, keyfile)
        self.client_ssl = ssl.create_default_context(cafile=pve.cafile)
        self.runner: web.AppRunner | None = None
        self.session: aiohttp.ClientSession | None = None
        self.port = 0

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.forward)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, HOST, 0, ssl_context=self.server_ssl)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def forward(self, request: web.Request) -> web.Response:
        assert self.session is not None
        self.requests.append((time.monotonic(), request.method, request.path))
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in ("host", "content-length", "transfer-encoding", "connection")
        }
        async with self.session.request(
            request.method,
            self.target + request.path_qs,
            headers=headers,
            data=await request.read(),
            ssl=self.client_ssl,
        ) as answer:
            body = await answer.read()
            kept = {
                k: v
                for k, v in answer.headers.items()
                if k.lower() in ("content-type", "content-encoding", "set-cookie", "date")
            }
            return web.Response(status=answer.status, body=body, headers=kept)

    def count(self, since: float = 0.0) -> int:
        return sum(1 for at, _, _ in self.requests if at >= since)

    def first_after(self, since: float) -> float | None:
        return next((at for at, _, _ in self.requests if at >= since), None)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
        if self.runner is not None:
            await self.runner.cleanup()


class Serve:
    """One ``pvetrail serve`` subprocess behind its own counting proxy."""

    def __init__(self, index: int, proxy: CountingProxy) -> None:
        self.index = index
        self.proxy = proxy
        self.process: asyncio.subprocess.Process | None = None
        self.url = ""
        self.stderr: Path | None = None

    async def start(
        self, tmp_path: Path, database_url: str, cafile: str, env: dict[str, str]
    ) -> None:
        config = tmp_path / f"serve{self.index}.toml"
        write_config(config, database_url, f"{HOST}:{self.proxy.port}", cafile)
        self.stderr = tmp_path / f"serve{self.index}.log"
        with self.stderr.open("wb") as log:
            self.process = await start_serve(config, env, tmp_path, stderr=log)

    async def listening(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        line = (await asyncio.wait_for(self.process.stdout.readline(), WAIT_S)).decode()
        assert line.startswith("pvetrail: serving on http://127.0.0.1:"), (line, self.log())
        self.url = line.split()[-1]

    def log(self) -> str:
        return self.stderr.read_text() if self.stderr is not None else ""

    async def cluster(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        async with http.get(self.url + "/readyz") as response:
            body = await response.json()
            assert response.status == 200, body
            return dict(body["clusters"]["lab"])

    async def metrics(self, http: aiohttp.ClientSession) -> str:
        async with http.get(self.url + "/metrics") as response:
            return await response.text()

    async def stop(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), WAIT_S)
        except TimeoutError:
            process.kill()
            await process.wait()
            pytest.fail(f"serve {self.index} did not stop within {WAIT_S:.0f} s of SIGTERM")


async def _memory_changes(store: EventStore) -> list[Any]:
    news = []
    async for event in store.read_all(0):
        if event.stream_id != "lab/qemu/101" or event.type != "config_changed":
            continue
        for change in msgspec.json.decode(event.data)["changes"]:
            if change["field"] == "config.memory":
                news.append(str(change["new"]))
    return news


@pytest.mark.slow
async def test_three_serves_one_polls_and_another_takes_over_within_two_fast_intervals(
    tmp_path: Path,
    database_url: str,
    store: EventStore,
    served: ServedPve,  # noqa: F811 - the imported fixture
    operator: Any,  # noqa: F811 - the imported fixture
    pve_pki: tuple[str, str],  # noqa: F811 - the imported fixture
) -> None:
    proxies = [CountingProxy(served, *pve_pki) for _ in range(PROCESSES)]
    serves = [Serve(i, proxy) for i, proxy in enumerate(proxies)]
    env = serve_environ(served)
    http = aiohttp.ClientSession()
    try:
        for proxy in proxies:
            await proxy.start()
        for serve in serves:
            await serve.start(tmp_path, database_url, served.cafile, env)
        for serve in serves:
            await serve.listening()

        async def leader() -> Serve | None:
            alive = [s for s in serves if s.process and s.process.returncode is None]
            states = [await s.cluster(http) for s in alive]
            leading = [s for s, state in zip(alive, states, strict=True) if state["leader"]]
            return leading[0] if len(leading) == 1 else None

        first = await wait_for(leader, "one serve to lead")
        others = [s for s in serves if s is not first]

        async def discovered() -> bool:
            return bool(await store.stream_versions(["lab/qemu/101"]))

        await wait_for(discovered, "the leader to record lab/qemu/101")
        for serve in others:
            state = await serve.cluster(http)
            assert state["state"] == "standby", state
            assert state["leader"] is False
            assert 'pvetrail_collector_standby{cluster="lab"} 1.0' in await serve.metrics(http)
        assert 'pvetrail_collector_leader{cluster="lab"} 1.0' in await first.metrics(http)

        # Exactly one process polls.
        window = time.monotonic()
        await asyncio.sleep(3 * FAST_S)
        assert first.proxy.count(window) >= 2
        assert [s.proxy.count() for s in others] == [0, 0]

        # A change the leader records, then one it may or may not see before it dies.
        await asyncio.to_thread(operator.nodes("pve2").qemu(101).config.post, memory=1111)

        async def recorded(value: str) -> bool:
            return value in await _memory_changes(store)

        await wait_for(lambda: recorded("1111"), "the leader to record memory 1111")
        await asyncio.to_thread(operator.nodes("pve2").qemu(101).config.post, memory=2222)
        assert first.process is not None
        first.process.kill()  # SIGKILL: no cleanup, no unlock
        killed = time.monotonic()
        await first.process.wait()

        async def taken_over() -> float | None:
            seen = [s.proxy.first_after(killed) for s in others]
            return min((t for t in seen if t is not None), default=None)

        took_over_at = await wait_for(taken_over, "another serve to poll")
        assert took_over_at - killed < 2 * FAST_S, took_over_at - killed
        second = await wait_for(leader, "a new leader")
        assert second in others
        # The new leader has polled: it saw 2222 (or the old leader did); now 3333.
        await wait_for(lambda: recorded("2222"), "memory 2222 in the log")
        await asyncio.to_thread(operator.nodes("pve2").qemu(101).config.post, memory=3333)
        await wait_for(lambda: recorded("3333"), "the new leader to record memory 3333")

        # Exactly one of the survivors polls.
        window = time.monotonic()
        await asyncio.sleep(3 * FAST_S)
        third = next(s for s in others if s is not second)
        assert second.proxy.count(window) >= 2
        assert third.proxy.count() == 0
        assert (await third.cluster(http))["state"] == "standby"

        # `pvetrail sync` beside the running serves waits for the running poll, polls once.
        sync = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "api",
            "sync",
            "--config",
            str(tmp_path / "serve2.toml"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=str(tmp_path),
        )
        out, err = await asyncio.wait_for(sync.communicate(), WAIT_S)
        assert sync.returncode == 0, err.decode()
        assert "lab: fast poll appended" in out.decode()

        # No event duplicated or lost across the handover.
        assert await _memory_changes(store) == ["1111", "2222", "3333"]
        discovered_streams: list[str] = []
        tasks: list[str] = []
        async for event in store.read_all(0):
            if event.type == "discovered":
                discovered_streams.append(event.stream_id)
            if event.type == "task_seen":
                tasks.append(event.stream_id)
        assert len(discovered_streams) == len(set(discovered_streams))
        assert len(tasks) == len(set(tasks))
        assert (await store.verify()).ok
    finally:
        await http.close()
        for serve in serves:
            await serve.stop()
        for proxy in proxies:
            await proxy.close()
    for serve in serves:
        if serve is not first:
            assert serve.process is not None
            assert serve.process.returncode == 0, serve.log()
