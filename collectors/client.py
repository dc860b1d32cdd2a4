"""proxmoxer, wrapped as ``pve-api.md`` §11 says: off the event loop, bounded, and honest.

proxmoxer is synchronous, so every request runs in the cluster's own bounded thread pool;
clients are built in those threads (a password login talks to the server in the constructor),
one per thread (requests' sessions are not meant to be shared between threads). A 401 means
the ticket or token was refused: the thread's client is rebuilt (logging in again) and the
request tried once more. Transient failures (connection errors, timeouts, 502/503/504) are
retried with exponential backoff and jitter; a 595-599 (node unreachable behind the proxy)
or a 500 is not, since asking again would not change the answer.

proxmoxer logs request data at INFO and bodies at DEBUG and sets its loggers to WARNING on
import: they are left alone here, so secrets never reach the logs.
"""

from __future__ import annotations

import asyncio
import random
import re
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, NamedTuple

import requests
from proxmoxer import AuthenticationError, ProxmoxAPI, ResourceException

from eventstore import utcnow

from .clocks import Clocks, parse_date
from .config import ClusterConfig


class CollectorError(Exception):
    """Root of every error the collectors raise."""


class UnknownClusterError(CollectorError):
    """No configured cluster has that name."""


class PveRequestError(CollectorError):
    """A Proxmox VE request failed; ``kind`` says how (for metrics and for what it means).

    Kinds: ``unreachable`` (no connection), ``timeout``, ``auth`` (401/403, or a missing
    secret variable), ``node_offline`` (595-599: the node behind the proxy is unreachable),
    ``http_5xx``, ``http_4xx``, ``invalid`` (an answer that makes no sense).
    """

    def __init__(self, kind: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


TRANSIENT = frozenset({"unreachable", "timeout", "http_5xx_retry"})
_NODE_PATH = re.compile(r"^/?nodes/([^/]+)/")


class Answer(NamedTuple):
    """An answer's ``data``, when its request was sent and when the answer arrived (our clock).

    ``sent`` is taken before the request is queued for a thread (no later than its sending),
    ``received`` after the answer is decoded (no earlier than its arrival): the two ends of
    every observation window (DESIGN invariant 6).
    """

    data: Any
    sent: datetime
    received: datetime


class PveClient:
    """GET requests to one cluster's API, run in a bounded thread pool."""

    def __init__(
        self,
        cluster: ClusterConfig,
        environ: Mapping[str, str],
    ) -> None:
        self.cluster = cluster
        self._environ = environ
        self._retries = cluster.retries
        self._backoff_s = cluster.retry_backoff_s
        self._pool = ThreadPoolExecutor(
            max_workers=cluster.max_workers, thread_name_prefix=f"pve-{cluster.name}"
        )
        self._local = threading.local()
        self._closed = False
        self._apis: list[Any] = []  # every client built, so close() can close their sessions
        self._sessions_lock = threading.Lock()
        self.clocks = Clocks()

    # -- in the worker threads -------------------------------------------------------------
    def _build(self) -> Any:
        cluster = self.cluster
        verify: bool | str = cluster.verify_tls
        common: dict[str, Any] = {
            "port": cluster.port,
            "verify_ssl": verify,
            "timeout": (cluster.connect_timeout_s, cluster.read_timeout_s),
        }
        if cluster.token_id is not None:
            assert cluster.token_secret_env is not None  # checked by ClusterConfig
            secret = self._environ.get(cluster.token_secret_env)
            if not secret:
                raise PveRequestError(
                    "auth", f"the variable {cluster.token_secret_env} (token secret) is not set"
                )
            user, _, token_name = cluster.token_id.partition("!")
            return ProxmoxAPI(
                cluster.hostname, user=user, token_name=token_name, token_value=secret, **common
            )
        assert cluster.user is not None
        assert cluster.password_env is not None
        password = self._environ.get(cluster.password_env)
        if not password:
            raise PveRequestError(
                "auth", f"the variable {cluster.password_env} (password) is not set"
            )
        return ProxmoxAPI(cluster.hostname, user=cluster.user, password=password, **common)

    def _api(self, fresh: bool = False) -> Any:
        local = self._local
        if fresh:
            local.api = None
        if getattr(local, "api", None) is None:
            local.api = self._translated(self._build)
            session = getattr(local.api, "_store", {}).get("session")
            if session is not None:  # the Date header of each answer, for the clock offsets
                session.hooks["response"].append(self._remember_date)
            with self._sessions_lock:
                self._apis.append(local.api)
        return local.api

    def _translated(self, call: Any) -> Any:
        try:
            return call()
        except PveRequestError:
            raise
        except ResourceException as exc:
            status = int(exc.status_code)
            text = str(exc.content or exc.status_message)
            if status in (401, 403):
                raise PveRequestError("auth", f"{status} {text}", status) from exc
            if status >= 595:
                raise PveRequestError("node_offline", f"{status} {text}", status) from exc
            if status in (502, 503, 504):
                raise PveRequestError("http_5xx_retry", f"{status} {text}", status) from exc
            if status >= 500:
                raise PveRequestError("http_5xx", f"{status} {text}", status) from exc
            raise PveRequestError("http_4xx", f"{status} {text}", status) from exc
        except AuthenticationError as exc:
            raise PveRequestError("auth", f"login refused: {exc}", 401) from exc
        except requests.Timeout as exc:
            raise PveRequestError("timeout", f"timed out: {exc.__class__.__name__}") from exc
        except requests.ConnectionError as exc:
            raise PveRequestError("unreachable", f"cannot connect: {_first_line(exc)}") from exc
        except requests.RequestException as exc:
            raise PveRequestError("unreachable", f"request failed: {_first_line(exc)}") from exc
        except (ValueError, TypeError) as exc:  # an answer that is not JSON, say
            raise PveRequestError("invalid", f"unreadable answer: {exc}") from exc

    def _remember_date(self, response: Any, *_args: Any, **_kwargs: Any) -> None:
        self._local.date = response.headers.get("Date")

    def _get_sync(self, path: str, params: Mapping[str, Any]) -> tuple[Answer, str | None]:
        api = self._api()
        try:
            return self._timed(api, path, params)
        except PveRequestError as exc:
            if exc.kind != "auth" or exc.status != 401:
                raise
        # The ticket (or token) was refused: log in again once, then give up.
        return self._timed(self._api(fresh=True), path, params)

    def _timed(self, api: Any, path: str, params: Mapping[str, Any]) -> tuple[Answer, str | None]:
        # Taken in the thread, right around the request: a request queued for a free thread
        # is not "sent" while it waits, and a tight window attributes better.
        self._local.date = None
        sent = utcnow()
        data = self._translated(lambda: api.get(path, **params))
        return Answer(data, sent, utcnow()), self._local.date

    # -- on the event loop ------------------------------------------------------------------
    async def get(self, path: str, **params: Any) -> Any:
        """GET ``path`` (without ``/api2/json``); the answer's ``data``. Retries transients."""
        return (await self.fetch(path, **params)).data

    async def fetch(self, path: str, **params: Any) -> Answer:
        """GET ``path``; its data with when it was sent and answered. Retries transients.

        The times are those of the attempt that answered. The answer's ``Date`` header feeds
        :attr:`clocks` (per node for ``nodes/{node}/...`` paths).
        """
        if self._closed:
            raise CollectorError(f"the client of cluster {self.cluster.name!r} is closed")
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            try:
                answer, date = await loop.run_in_executor(self._pool, self._get_sync, path, params)
                when = parse_date(date)
                if when is not None:
                    match = _NODE_PATH.match(path)
                    node = match.group(1) if match else ""
                    self.clocks.record(node, when, answer.sent, answer.received)
                return answer
            except PveRequestError as exc:
                if exc.kind not in TRANSIENT or attempt >= self._retries:
                    if exc.kind == "http_5xx_retry":
                        exc.kind = "http_5xx"
                    raise
            except RuntimeError as exc:  # the pool was shut down under us
                raise CollectorError(f"the client of {self.cluster.name!r} is closed") from exc
            attempt += 1
            delay = self._backoff_s * (2 ** (attempt - 1))
            await asyncio.sleep(delay + random.uniform(0, delay))

    async def close(self) -> None:
        """Stop the threads (after in-flight requests end; queued ones are cancelled)."""
        self._closed = True
        await asyncio.to_thread(self._pool.shutdown, True, cancel_futures=True)
        with self._sessions_lock:
            apis, self._apis = self._apis, []
        for api in apis:
            _close_session(api)


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else exc.__class__.__name__


def _close_session(api: Any) -> None:
    """Close the requests session inside a proxmoxer client (its pooled connections)."""
    session = getattr(api, "_store", {}).get("session")
    if session is not None:
        session.close()
