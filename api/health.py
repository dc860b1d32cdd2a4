"""How the process is doing: ``/readyz``'s checks, each cluster's collector health, the lag.

The probes and ``/metrics`` read these at request time; a failure to answer is reported as
"not ready" (or left out of the metrics), never raised as a 500.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec

from .models import Check, ClusterState, Readiness
from .ports import CollectorsPort, ProjectionsPort
from .services import Services

log = logging.getLogger("pvetrail.api")

MAX_LAG_SECONDS = 30.0
"""``/readyz`` answers 503 while the projections lag more than this."""


async def readiness(services: Services) -> Readiness:
    """Database answers, migrations applied, projections within 30 s; clusters reported."""
    checks = {"migrations": await _migrations_check(services)}
    if checks["migrations"].ok:
        try:
            head = await asyncio.wait_for(services.store.head(), timeout=5)
            checks["database"] = Check(ok=True, head=head)
        except Exception as exc:  # any failure to answer is "not ready", never a 500
            checks["database"] = Check(ok=False, detail=f"{type(exc).__name__}: {exc}")
        if services.projections is not None and checks["database"].ok:
            checks["projections"] = await _projections_check(services.projections)
    clusters = {
        name: msgspec.convert(health, ClusterState, from_attributes=True, strict=False)
        for name, health in cluster_health(services.collectors).items()
    }
    ready = all(check.ok for check in checks.values())
    return Readiness(ready=ready, checks=checks, clusters=clusters)


def cluster_health(collectors: CollectorsPort | None) -> dict[str, Any]:
    """Each cluster's collector health as plain data (none without collectors)."""
    if collectors is None:
        return {}
    return {name: msgspec.to_builtins(h) for name, h in collectors.health().items()}


async def projection_lag(projections: ProjectionsPort | None) -> tuple[int, int, float] | None:
    """The projections' head, checkpoint and lag in seconds; None when unknown."""
    if projections is None:
        return None
    try:
        lag = msgspec.to_builtins(await projections.lag())
    except Exception:
        log.warning("projection lag unavailable for /metrics", exc_info=True)
        return None
    return (
        int(lag.get("head") or 0),
        int(lag.get("checkpoint") or 0),
        float(lag.get("seconds") or 0.0),
    )


async def _migrations_check(services: Services) -> Check:
    if services.migrations_current:  # applied migrations never become pending again
        return Check(ok=True)
    try:
        status = await asyncio.wait_for(services.store.pending_migrations(), timeout=5)
    except Exception as exc:  # the database does not answer
        return Check(ok=False, detail=f"database: {type(exc).__name__}: {exc}")
    if status.pending:
        return Check(ok=False, detail=f"{len(status.pending)} migration(s) pending")
    services.migrations_current = True
    return Check(ok=True)


async def _projections_check(projections: ProjectionsPort) -> Check:
    try:
        lag = msgspec.to_builtins(await projections.lag())
    except Exception as exc:
        return Check(ok=False, detail=f"{type(exc).__name__}: {exc}")
    seconds = float(lag.get("seconds") or 0.0)
    # Stopped or failing is not ready even with nothing new to apply (no lag yet to see).
    detail = projections.problem()
    if detail is None and seconds >= MAX_LAG_SECONDS:
        detail = f"projections lag {seconds:.0f} s (limit {MAX_LAG_SECONDS:.0f} s)"
    return Check(
        ok=detail is None,
        head=lag.get("head"),
        checkpoint=lag.get("checkpoint"),
        lag_seconds=round(seconds, 3),
        detail=detail,
    )
