"""``POST /hooks/pve``: Proxmox VE notification webhooks (PVE 8.3+ webhook targets) queue resyncs.

The target sends the JSON body ``docs/webhooks.md`` shows (``pve-api.md`` §6.1) with the
shared secret in ``X-Pvetrail-Secret``. The notification decides what is polled:

* a backup (``fields.type`` ``vzdump``): the node that ran it, a targeted deep poll of its
  guests and storages (the backup storages gained a volume);
* anything else (a fenced node, whose guests come back on other nodes; replication, updates,
  mail) or no ``fields`` at all (Proxmox's test notification): a deep poll of the cluster
  (every poll begins with the fast poll's reads, so a fenced node gets both).

The cluster is ``?cluster=NAME`` in the target's URL, else every cluster with a node named
``fields.hostname``, else the only one configured. Requests go through the resync queue, so
a burst of notifications for one scope is one poll.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence

import msgspec
from aiohttp import web

from collectors import resyncs as queue
from eventstore import EventStore
from projections import queries

from .config import ConfigError
from .errors import BadParameterError, NotFoundError, UnauthorizedError, UnprocessableError
from .responses import render
from .services import services_of

SECRET_HEADER = "X-Pvetrail-Secret"
REQUESTED_BY = "webhook"


class Notification(msgspec.Struct, kw_only=True):
    """The body the documented template renders (other keys are ignored)."""

    title: str
    severity: str
    timestamp: int | float
    message: str = ""
    fields: dict[str, str] | None = None


class HookAccepted(msgspec.Struct, kw_only=True):
    """``POST /hooks/pve``'s answer: the resync the notification queued (or joined)."""

    resync_id: str


def resolve_secret(env: str | None, environ: Mapping[str, str]) -> bytes | None:
    """The webhook secret from its variable (None: no webhook configured); refuses an unset or
    short one, naming the variable."""
    if env is None:
        return None
    secret = environ.get(env, "")
    if not secret:
        raise ConfigError(f"api.webhook_secret_env: environment variable {env} is not set")
    if len(secret) < 16:
        raise ConfigError(
            f"api.webhook_secret_env: the secret in {env} is shorter than 16 characters"
        )
    return secret.encode()


def check_secret(expected: bytes | None, presented: str | None) -> None:
    """404 when no webhook is configured; 401 for a missing or wrong secret (constant time)."""
    if expected is None:
        raise NotFoundError("no webhook is configured (api.webhook_secret_env)")
    if not presented:
        raise UnauthorizedError(f"the webhook needs its secret in the {SECRET_HEADER} header")
    if not hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), expected):
        raise UnauthorizedError(f"the {SECRET_HEADER} header does not hold the webhook secret")


def parse(raw: bytes) -> Notification:
    """The notification in ``raw``; 400 naming what does not fit the documented shape."""
    try:
        return msgspec.json.decode(raw, type=Notification)
    except msgspec.DecodeError as exc:
        raise BadParameterError(
            "body", f"not the notification body docs/webhooks.md shows: {exc}"
        ) from None


async def clusters_for(
    store: EventStore, note: Notification, named: str | None, clusters: Sequence[str]
) -> list[str]:
    """The clusters the notification is about (see the module's docstring); 422 when none."""
    if named is not None:
        if named not in clusters:
            known = ", ".join(clusters) or "none configured"
            raise UnprocessableError(
                f"no cluster named {named!r} is collected (known: {known})", param="cluster"
            )
        return [named]
    hostname = (note.fields or {}).get("hostname")
    if hostname:
        page = await queries.inventory(store, type="node", q=hostname, limit=None)
        found = sorted(
            {r.cluster for r in page.items if r.name == hostname and r.cluster in clusters}
        )
        if found:
            return found
    if len(clusters) == 1:
        return list(clusters)
    raise UnprocessableError(
        f"cannot tell which cluster the notification is about (hostname "
        f"{hostname!r} is no node of {', '.join(clusters) or 'any configured cluster'}); "
        "add ?cluster=NAME to the target's URL",
        param="cluster",
    )


def scope_for(cluster: str, note: Notification) -> queue.Scope:
    """What to poll in ``cluster``: a backup's node, or the whole cluster (deep)."""
    fields = note.fields or {}
    if fields.get("type") == "vzdump" and fields.get("hostname"):
        return queue.Scope(cluster=cluster, node=fields["hostname"])
    return queue.Scope(cluster=cluster)


async def pve_hook(request: web.Request) -> web.Response:
    """A Proxmox VE notification: queue the resync it calls for; 202 with its id."""
    services = services_of(request)
    check_secret(services.webhook_secret, request.headers.get(SECRET_HEADER))
    note = parse(await request.read())
    clusters = await clusters_for(
        services.store, note, request.query.get("cluster"), services.resyncs.clusters
    )
    ids = [
        await services.resyncs.enqueue(scope_for(cluster, note), REQUESTED_BY)
        for cluster in clusters
    ]
    return render(HookAccepted(resync_id=ids[0]), 202)
