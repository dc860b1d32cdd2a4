"""Proving plans by running them: observe fakepve, plan, execute each step with proxmoxer
exactly as given, observe again, and compare the guest with its state at the target."""

from __future__ import annotations

from typing import Any

from proxmoxer import ProxmoxAPI
from proxmoxer.core import ResourceException

from collectors.service import CollectorService
from collectors.values import (
    disk_volume,
    format_property,
    is_disk_key,
    is_nic_key,
    parse_property,
)
from eventstore import EventStore
from projections import queries
from projections.models import Resource
from projections.rollback import PlanRequest, PlanTarget, RollbackPlan, plan_rollback
from projections.rollback.guest import effective_config
from projections.rollback.keys import differing_keys
from projections.runner import ProjectionRunner


class StepFailed(AssertionError):
    """A step Proxmox refused, or whose task ended in an error."""


async def observe(store: EventStore, collector: CollectorService) -> None:
    """One deep poll, and the projections brought up to it."""
    result = await collector.sync("lab", deep=True)
    assert result.ok, result.faults
    await ProjectionRunner(store).catch_up()


async def plan(store: EventStore, resource: str, **target: Any) -> RollbackPlan:
    """The plan for one target (``at=``, ``position=``, ``snapshot=`` or ``backup=``)."""
    return await plan_rollback(store, PlanRequest(resource=resource, target=PlanTarget(**target)))


def run_step(api: ProxmoxAPI, method: str, path: str, params: dict[str, Any]) -> Any:
    """One call exactly as a plan gives it; a task is followed to its end, and an error
    (the call's or the task's) is raised as :class:`StepFailed`."""
    call = getattr(api(path.lstrip("/")), method.lower())
    try:
        answer = call(**params)
    except ResourceException as exc:
        raise StepFailed(f"{method} {path}: {exc}") from exc
    if isinstance(answer, str) and answer.startswith("UPID:"):
        node = answer.split(":")[1]
        status = api.nodes(node).tasks(answer).status.get()
        if status.get("exitstatus") != "OK":
            raise StepFailed(f"{method} {path}: task ended with {status.get('exitstatus')!r}")
    return answer


def execute(api: ProxmoxAPI, found: RollbackPlan) -> list[int]:
    """Run every step in order (a fallback step only when the step before it failed); the
    orders of the steps run."""
    assert not found.blockers, found.blockers
    ran: list[int] = []
    failed: StepFailed | None = None
    for step in found.steps:
        if step.fallback:
            if failed is None:
                continue
            failed = None
        elif failed is not None:
            raise failed
        try:
            run_step(api, step.method, step.path, step.params)
            ran.append(step.order)
        except StepFailed as exc:
            failed = exc
    if failed is not None:
        raise failed
    return ran


async def executed(
    store: EventStore, collector: CollectorService, api: ProxmoxAPI, found: RollbackPlan, rid: str
) -> Resource:
    """Run the plan, observe, and answer the guest as observed afterwards."""
    execute(api, found)
    await observe(store, collector)
    return await state(store, rid)


def _comparable(state: Resource, *, volumes: bool) -> dict[str, Any]:
    config = effective_config(state)
    if not volumes:  # restored into another vmid: its disks have new volume names
        for key, value in list(config.items()):
            if is_disk_key(key) and disk_volume(value) is not None:
                items = parse_property(key, value)
                items.pop("volume", None)
                config[key] = format_property(key, items)
    return config


# What Proxmox adds to an lxc NIC it writes (a MAC, the veth type); fakepve's seeded
# containers lack them, a real cluster's never do.
_WRITTEN_NIC_ITEMS = ("hwaddr", "type")


def differences(then: Resource, now: Resource, *, volumes: bool = True) -> list[str]:
    """What differs between two states of a guest, ignoring what only Proxmox writes: its
    config keys, node and status."""
    want, have = _comparable(then, volumes=volumes), _comparable(now, volumes=volumes)
    for key in [k for k in want if is_nic_key(k) and now.type == "lxc"]:
        target, found = parse_property(key, want[key]), parse_property(key, have.get(key))
        for item in _WRITTEN_NIC_ITEMS:
            if item not in target:
                found.pop(item, None)
        if key in have:
            have[key] = format_property(key, found)
    keys = differing_keys(want, have)
    for name in ("node", "status"):
        if getattr(then, name) != getattr(now, name):
            keys.append(name)
    return keys


async def state(store: EventStore, resource: str, **point: Any) -> Resource:
    """The guest as observed then (default: now)."""
    return await queries.resource_at(store, resource, **point)
