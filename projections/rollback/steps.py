"""The Proxmox VE calls a rollback plan is made of (pve-api.md §5), as :class:`PlanStep` s.

Paths are relative to ``/api2/json``; parameters are what Proxmox takes (lists such as
``delete`` comma-separated, booleans ``1``). Steps are numbered by :func:`numbered` once a
plan is complete.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from .models import PlanStep

SHUTDOWN_TIMEOUT_S = 180
"""A clean shutdown's timeout: Proxmox's own default for qemu (lxc's is 60 s) is 180 s."""


def guest_path(node: str, guest_type: str, vmid: int, *rest: str) -> str:
    """``/nodes/pve1/qemu/100/...``."""
    return "/".join([f"/nodes/{node}/{guest_type}/{vmid}", *rest]).rstrip("/")


def config(
    node: str,
    guest_type: str,
    vmid: int,
    *,
    sets: Mapping[str, Any],
    deletes: Iterable[str] = (),
    reverts: Iterable[str] = (),
    digest: str | None,
    reason: str,
    requires_reboot: bool = False,
) -> PlanStep:
    """``PUT .../config``: every set, delete and revert in one call, with ``digest`` when the
    state it was planned from is known (Proxmox refuses it if the guest changed since)."""
    params: dict[str, Any] = dict(sorted(sets.items()))
    if deletes:
        params["delete"] = ",".join(sorted(deletes))
    if reverts:
        params["revert"] = ",".join(sorted(reverts))
    if digest is not None:
        params["digest"] = digest
    return PlanStep(
        order=0,
        action="config",
        method="PUT",
        path=guest_path(node, guest_type, vmid, "config"),
        params=params,
        reason=reason,
        requires_reboot=requires_reboot,
    )


def resize(node: str, guest_type: str, vmid: int, disk: str, size: str, reason: str) -> PlanStep:
    """``PUT .../resize``: grow a disk (Proxmox never shrinks one)."""
    return PlanStep(
        order=0,
        action="resize",
        method="PUT",
        path=guest_path(node, guest_type, vmid, "resize"),
        params={"disk": disk, "size": size},
        reason=reason,
    )


def power(
    node: str, guest_type: str, vmid: int, action: str, reason: str, **params: Any
) -> PlanStep:
    """``POST .../status/{start|shutdown|stop|reboot}``."""
    return PlanStep(
        order=0,
        action=action,
        method="POST",
        path=guest_path(node, guest_type, vmid, "status", action),
        params=params,
        reason=reason,
        disruptive=action in ("shutdown", "stop", "reboot"),
        requires_reboot=action == "reboot",
    )


def migrate(node: str, guest_type: str, vmid: int, target: str, running: bool) -> PlanStep:
    """``POST .../migrate``: online for a running qemu guest, restart mode for a running lxc."""
    params: dict[str, Any] = {"target": target}
    if running:
        params["online" if guest_type == "qemu" else "restart"] = 1
    how = "" if not running else (" online" if guest_type == "qemu" else " (restart mode)")
    return PlanStep(
        order=0,
        action="migrate",
        method="POST",
        path=guest_path(node, guest_type, vmid, "migrate"),
        params=params,
        reason=f"the guest ran on {target} at the target; migrate it back{how}",
        disruptive=running and guest_type == "lxc",
    )


def snapshot_rollback(
    node: str, guest_type: str, vmid: int, name: str, *, start: bool, reason: str
) -> PlanStep:
    """``POST .../snapshot/{name}/rollback`` (``start=1`` starts the guest afterwards)."""
    return PlanStep(
        order=0,
        action="rollback",
        method="POST",
        path=guest_path(node, guest_type, vmid, "snapshot", name, "rollback"),
        params={"start": 1} if start else {},
        reason=reason,
        disruptive=True,
    )


def restore(
    node: str, guest_type: str, vmid: int, volid: str, params: Mapping[str, Any], reason: str
) -> PlanStep:
    """``POST /nodes/{n}/qemu`` with ``archive=`` or ``POST /nodes/{n}/lxc`` with
    ``ostemplate=`` and ``restore=1`` (§5): never ``force=1``, so an existing guest is never
    overwritten."""
    body: dict[str, Any] = {"vmid": vmid}
    if guest_type == "qemu":
        body["archive"] = volid
    else:
        body.update(ostemplate=volid, restore=1)
    body.update(params)
    return PlanStep(
        order=0,
        action="restore",
        method="POST",
        path=f"/nodes/{node}/{guest_type}",
        params=body,
        reason=reason,
        disruptive=True,
    )


def numbered(steps: Iterable[PlanStep]) -> list[PlanStep]:
    """The steps numbered 1, 2, ... in their order."""
    return [msgspec.structs.replace(step, order=i) for i, step in enumerate(steps, start=1)]
