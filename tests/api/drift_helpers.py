"""The known log of the drift tests: :func:`api_helpers.seed_history` and, after it, web
renamed away from "web" and back and away again, and a container created (seconds after T0):

* 20: web memory 2048 -> 4096 by root; 30: web migrated pve1 -> pve2 by alice; 60: db removed;
* 70: web renamed web -> web-old by alice; 80: back to web by root; 90: web -> web2 by root;
  100: web2 -> web3 by alice (so "since" for the name "web" is 90, by root: the last change
  away from it, not the first nor the last change of the name);
* 95: container lab/lxc/200 "cache" discovered, by root.
"""

from __future__ import annotations

from typing import Any

from api_helpers import ALICE, ROOT, WEB, iso, new, seed_history

from collectors.events import Discovered, FieldChange, Renamed
from eventstore import Actor, EventStore
from projections.runner import ProjectionRunner
from tests.projections.projection_helpers import guest_state

CACHE = "lab/lxc/200"


def renamed(old: str, new_name: str) -> Renamed:
    return Renamed(changes=[FieldChange("name", old, new_name)])


async def seed_drift_history(store: EventStore) -> None:
    """Append the history above and bring the projections up to date."""
    await seed_history(store)
    await store.append([new(WEB, renamed("web", "web-old"), 70, observed_after=65, actor=ALICE)])
    await store.append([new(WEB, renamed("web-old", "web"), 80, observed_after=75, actor=ROOT)])
    await store.append([new(WEB, renamed("web", "web2"), 90, observed_after=85, actor=ROOT)])
    cache = guest_state(CACHE, name="cache", config={"cores": 1, "rootfs": "local:8,size=8G"})
    await store.append([new(CACHE, Discovered(state=cache), 95, actor=ROOT)])
    await store.append([new(WEB, renamed("web2", "web3"), 100, observed_after=96, actor=ALICE)])
    await ProjectionRunner(store).catch_up()


def actor(who: Actor | None) -> dict[str, Any] | None:
    """An actor as the API renders it."""
    return None if who is None else {"user": who.user, "token": who.token, "upid": who.upid}


def item(
    rid: str,
    kind: str,
    field: str | None = None,
    expected: Any = None,
    actual: Any = None,
    since: float | None = None,
    who: Actor | None = None,
) -> dict[str, Any]:
    """A drift item as the API renders it; ``since`` in seconds after T0."""
    return {
        "id": rid,
        "kind": kind,
        "field": field,
        "expected": expected,
        "actual": actual,
        "since": iso(since) if since is not None else None,
        "actor": actor(who),
    }


BASELINE_15 = [
    item(CACHE, "created", since=95, who=ROOT),
    item(WEB, "changed", "config.memory", "2048", "4096", 20, ROOT),
    item(WEB, "changed", "name", "web", "web3", 90, ROOT),
    item(WEB, "changed", "node", "pve1", "pve2", 30, ALICE),
    item("lab/qemu/101", "removed", since=60),
]
"""The drift from the baseline at 15 s to now."""
