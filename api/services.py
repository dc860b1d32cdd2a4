"""What a handler may use at request time: :class:`Services`, kept on the app under
:data:`SERVICES`.

:func:`api.app.create_app` builds it once; handlers reach it through :func:`services_of`. It
imports no handler and no route, so handlers, routes and the app all import it, never each
other in a circle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from aiohttp import web

from eventstore import EventStore
from projections.drift import DesiredSets

from .auth import Authenticator
from .integrity import IntegrityCheck
from .metrics import Metrics
from .ports import CollectorsPort, ProjectionsPort
from .resyncs import Resyncs


@dataclass
class Services:
    """Everything a handler may use."""

    store: EventStore
    auth: Authenticator
    metrics: Metrics
    resyncs: Resyncs
    collectors: CollectorsPort | None = None
    projections: ProjectionsPort | None = None
    migrations_current: bool = False
    openapi: bytes | None = None
    webhook_secret: bytes | None = None
    """``POST /hooks/pve``'s shared secret (None: the route answers 404)."""
    desired_dir: str | None = None
    """The configuration's directory of desired-state sets."""
    drift_ignore: Sequence[str] = ()
    """The configuration's field patterns that no drift report shows."""
    integrity: IntegrityCheck = field(init=False)
    desired: DesiredSets = field(init=False)

    def __post_init__(self) -> None:
        self.integrity = IntegrityCheck(self.store)
        self.desired = DesiredSets(self.store, self.desired_dir)


SERVICES = web.AppKey("services", Services)


def services_of(request: web.Request) -> Services:
    """The services of the app serving ``request``."""
    return request.app[SERVICES]
