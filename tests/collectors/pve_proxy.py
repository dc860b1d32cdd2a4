"""A thin rewriting proxy in front of fakepve: answers as a real cluster would where fakepve
cannot (``pve-api.md`` §10), for the tests only.

It forwards every request to the served fake (HTTPS, the same certificate) and rewrites:

* ``clock_shift[node]``: that node's clock runs so many seconds ahead of ours: the ``Date``
  header of answers to ``/nodes/{node}/...`` and its tasks' ``starttime``/``endtime``;
* ``real_task_log``: a node's task list honours ``since`` (on ``starttime``) and lists running
  tasks only with ``source=active`` or ``all``, as a real node does;
* ``pre_81_pools``: ``GET /pools?poolid=`` is refused as before PVE 8.1 (§4.16);
* ``ha_resources``: the answer of ``/cluster/ha/resources`` (fakepve's is a placeholder);
* ``offline_shapes``: the entries of an offline node's guests in ``/cluster/resources`` shrink
  to ``{id, vmid, node, type, status: "unknown"}`` (plus ``tags``, ``pool``, ``lock``), its
  storages' to ``status: "unknown"`` without sizes (§7).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import ssl
import threading
from typing import Any

import aiohttp
from aiohttp import web

from collectors.config import ClusterConfig
from tests.pve import HOST, START_TIMEOUT_S, ServedPve

_HOP = {"host", "content-length", "transfer-encoding", "connection", "content-encoding"}
_PRE_81 = (
    '{"data":null,"errors":{"poolid":"property is not defined in schema and the schema '
    'does not allow additional properties"}}'
)


class PveProxy:
    """Serves on https://127.0.0.1:PORT in a thread of its own; see the module docstring."""

    def __init__(self, served: ServedPve, cafile: str, keyfile: str) -> None:
        self.served = served
        self.clock_shift: dict[str, int] = {}
        self.real_task_log = False
        self.pre_81_pools = False
        self.offline_shapes = False
        self.ha_resources: list[dict[str, Any]] | None = None
        self.requests: list[str] = []
        self._cafile, self._keyfile = cafile, keyfile
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.port = self._run(self._start())

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(START_TIMEOUT_S)

    async def _start(self) -> int:
        client_ssl = ssl.create_default_context(cafile=self.served.cafile)
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ssl))
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ssl.load_cert_chain(self._cafile, self._keyfile)
        site = web.TCPSite(self._runner, HOST, 0, ssl_context=server_ssl)
        await site.start()
        sockets = site._server.sockets  # type: ignore[union-attr]
        return int(sockets[0].getsockname()[1])

    def cluster_config(self, name: str = "lab", **overrides: Any) -> ClusterConfig:
        """The served fake's ClusterConfig, through this proxy."""
        return self.served.cluster_config(name, host=f"{HOST}:{self.port}", **overrides)

    def stop(self) -> None:
        """Stop serving and end the thread."""

        async def close() -> None:
            await self._session.close()
            await self._runner.cleanup()

        try:
            self._run(close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(START_TIMEOUT_S)
            self._loop.close()

    # -- rewriting ------------------------------------------------------------------------
    async def _forward(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.requests.append(path)
        if (
            self.pre_81_pools
            and path.rstrip("/") == "/api2/json/pools"
            and "poolid" in request.query
        ):
            return web.Response(
                status=400,
                reason="Parameter verification failed.",
                text=_PRE_81,
                content_type="application/json",
            )
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        target = request.rel_url
        if self.real_task_log and _is_task_list(path):  # the whole list: paged here, filtered
            target = target.update_query(start=0, limit=1_000_000)
        url = f"https://{HOST}:{self.served.pve.port}{target}"
        async with self._session.request(
            request.method, url, headers=headers, data=await request.read()
        ) as upstream:
            body = await upstream.read()
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP}
            status, reason = upstream.status, upstream.reason
        node = _node_of(path)
        shift = self.clock_shift.get(node or "", 0)
        if shift and "Date" in out:
            when = email.utils.parsedate_to_datetime(out["Date"]).timestamp() + shift
            out["Date"] = email.utils.formatdate(when, usegmt=True)
        if status == 200 and out.get("Content-Type", "").startswith("application/json"):
            data = json.loads(body)
            data["data"] = self._rewrite(path, request.query, data.get("data"), shift)
            body = json.dumps(data).encode()
        return web.Response(status=status, reason=reason, body=body, headers=out)

    def _rewrite(self, path: str, query: Any, data: Any, shift: int) -> Any:
        tail = path.removeprefix("/api2/json/")
        if _is_task_list(path):
            return self._tasks(data, query, shift)
        if tail == "cluster/ha/resources" and self.ha_resources is not None:
            return self.ha_resources
        if tail == "cluster/resources" and self.offline_shapes:
            return self._offline(data)
        return data

    def _tasks(self, data: Any, query: Any, shift: int) -> Any:
        tasks = [dict(t) for t in data]
        for task in tasks:
            for key in ("starttime", "endtime"):
                if isinstance(task.get(key), int):
                    task[key] += shift
        if self.real_task_log:
            since = int(query.get("since", 0))
            source = query.get("source", "archive")
            tasks = [
                t
                for t in tasks
                if t["starttime"] >= since
                and (source in ("active", "all") or t.get("status") != "running")
            ]
            start = int(query.get("start", 0))
            tasks = tasks[start : start + int(query.get("limit", 50))]
        return tasks

    def _offline(self, data: Any) -> Any:
        offline = {n for n, state in self.served.pve.nodes.items() if not state.get("online", 1)}
        out = []
        for entry in data:
            if entry.get("node") in offline and entry.get("type") in ("qemu", "lxc"):
                keep = ("id", "vmid", "node", "type", "tags", "pool", "lock", "hastate")
                entry = {k: entry[k] for k in keep if k in entry} | {"status": "unknown"}
            elif entry.get("node") in offline and entry.get("type") == "storage":
                entry = {k: v for k, v in entry.items() if k not in ("disk", "maxdisk")}
                entry["status"] = "unknown"
            out.append(entry)
        return out


def _is_task_list(path: str) -> bool:
    parts = path.removeprefix("/api2/json/").split("/")
    return len(parts) == 3 and parts[0] == "nodes" and parts[2] == "tasks"


def _node_of(path: str) -> str | None:
    parts = path.removeprefix("/api2/json/").split("/")
    return parts[1] if len(parts) > 1 and parts[0] == "nodes" else None
