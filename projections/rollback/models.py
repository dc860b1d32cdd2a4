"""What rollback planning answers: msgspec Structs rendered as JSON and described in OpenAPI."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from eventstore import Actor


def _d(text: str) -> msgspec.Meta:
    return msgspec.Meta(description=text)


class RollbackTarget(msgspec.Struct, frozen=True, kw_only=True):
    """A point a guest can be taken back to."""

    kind: Annotated[Literal["version", "snapshot", "backup"], _d("what kind of point")]
    at: Annotated[
        datetime | None,
        _d("its time (a version's last observation, a snapshot's or backup's time)"),
    ]
    position: Annotated[
        int | None, _d("log position of the version (or of the snapshot or backup's record)")
    ]
    label: Annotated[str, _d("one line: what it is and what differs from now")]
    snapshot: Annotated[str | None, _d("snapshot name (kind snapshot)")] = None
    backup: Annotated[str | None, _d("backup volid (kind backup)")] = None
    changed_by: Annotated[
        Actor | None, _d("who changed the guest away from this version, when the task log says")
    ] = None
    differs: Annotated[list[str], _d("fields that differ from now (versions)")] = []
    description: Annotated[str | None, _d("snapshot description")] = None
    vmstate: Annotated[bool | None, _d("whether the snapshot holds RAM state")] = None
    storage: Annotated[str | None, _d("storage of the backup")] = None
    size: Annotated[int | None, _d("backup size in bytes")] = None
    protected: Annotated[bool | None, _d("whether the backup is protected")] = None
    earlier_life: Annotated[
        bool, _d("a version of an earlier guest that held this vmid before a removal")
    ] = False


class RollbackTargets(msgspec.Struct, frozen=True, kw_only=True):
    """The points a guest can be taken back to, newest first."""

    resource: Annotated[str, _d("the guest's resource id")]
    items: Annotated[list[RollbackTarget], _d("targets, newest first")]


class PlanTarget(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where to take the guest: exactly one of a time, a position, a snapshot or a backup."""

    at: Annotated[datetime | None, _d("a time (RFC 3339): the guest as it was then")] = None
    position: Annotated[
        Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] | None,
        _d("a log position: the guest as it was there"),
    ] = None
    snapshot: Annotated[
        Annotated[str, msgspec.Meta(min_length=1, max_length=512)] | None,
        _d("an existing Proxmox snapshot's name"),
    ] = None
    backup: Annotated[
        Annotated[str, msgspec.Meta(min_length=1, max_length=1024)] | None,
        _d("a backup volid the collectors see (storage:volume)"),
    ] = None


class PlanRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of ``POST /rollback-plans``."""

    resource: Annotated[
        str, msgspec.Meta(min_length=1, max_length=1024), _d("the guest's id, e.g. lab/qemu/100")
    ]
    target: Annotated[PlanTarget, _d("exactly one of at, position, snapshot, backup")]


class PlanStep(msgspec.Struct, frozen=True, kw_only=True):
    """One Proxmox VE API call, to run as given (proxmoxer, or pvesh)."""

    order: Annotated[int, _d("1, 2, ...: run in this order, each after the previous finished")]
    action: Annotated[
        str, _d("config, resize, migrate, restore, rollback, start, shutdown, stop, reboot")
    ]
    method: Annotated[Literal["GET", "POST", "PUT", "DELETE"], _d("HTTP method")]
    path: Annotated[str, _d("path relative to /api2/json, e.g. /nodes/pve1/qemu/100/config")]
    params: Annotated[dict[str, Any], _d("parameters, as Proxmox takes them")]
    reason: Annotated[str, _d("why this step, and what it does")]
    disruptive: Annotated[bool, _d("stops, restarts or overwrites the guest")] = False
    requires_reboot: Annotated[bool, _d("takes effect only after the guest restarts")] = False
    fallback: Annotated[
        bool, _d("run only if the step before it failed (a hard stop after a shutdown timed out)")
    ] = False


class RollbackPlan(msgspec.Struct, frozen=True, kw_only=True):
    """The calls that take a guest from its current (last observed) state to a target."""

    resource: Annotated[str, _d("the guest's resource id")]
    target: Annotated[PlanTarget, _d("the target as asked")]
    based_on_digest: Annotated[
        str | None, _d("the Proxmox config digest the plan was made from (none: no guest now)")
    ]
    steps: Annotated[list[PlanStep], _d("the calls, in order; empty when nothing is to do")]
    blockers: Annotated[list[str], _d("what keeps the plan from reaching the target")]
    warnings: Annotated[list[str], _d("what the operator must know or do besides")]
    summary: Annotated[str, _d("one line: what the plan does")] = ""
    based_on_position: Annotated[
        int | None, _d("the log position of the guest state the plan was made from")
    ] = None
    target_position: Annotated[int | None, _d("the log position of the target version")] = None
    vmid: Annotated[int | None, _d("the vmid the plan acts on (a free one for a restore)")] = None
