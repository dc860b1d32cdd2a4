"""``pvetrail plan ID --to T | --position N | --snapshot NAME | --backup VOLID``: a rollback
plan, printed as numbered ``pvesh`` commands (or, with ``--json``, as the API answers it)."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from projections.errors import NotFoundError
from projections.rollback import PlanRequest, PlanStep, PlanTarget, RollbackPlan, plan_rollback

from ..terminal import add_json, ask, print_json, run, time_arg

NAME = "plan"
HELP = "plan the Proxmox VE calls that take a guest back to a time, snapshot or backup"
DESCRIPTION = """Plan a rollback of one guest: the Proxmox VE API calls that would take it from
its state as last observed back to a past time, a log position, one of its snapshots or one
of its backups. Nothing is run: each step is printed as a pvesh command line (run them in
order on a node of the cluster, or run the --json steps with proxmoxer). Disruptive steps
(a restart, a rollback, a restore) are marked; a fallback step runs only when the step
before it failed. The first config step carries the guest's config digest, so Proxmox
refuses it if the guest changed after planning.

exit codes: 0 a plan (possibly empty: nothing to do), 1 blockers remain (printed), 2 the
plan could not be made (unknown guest, impossible target, no database).

examples:
  pvetrail plan lab/qemu/100 --to 2026-11-01T14:03:00Z
  pvetrail plan lab/qemu/100 --snapshot before-upgrade
  pvetrail plan lab/lxc/200 --backup local:backup/vzdump-lxc-200-2026_11_01-00_00_01.tar.zst
  pvetrail plan lab/qemu/100 --position 4711 --json
"""

PVESH = {"GET": "get", "POST": "create", "PUT": "set", "DELETE": "delete"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="guest id, e.g. lab/qemu/100")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--to", type=time_arg, metavar="T", help="the guest as it was at T")
    group.add_argument("--position", type=int, metavar="N", help="as it was at log position N")
    group.add_argument("--snapshot", metavar="NAME", help="one of its snapshots")
    group.add_argument("--backup", metavar="VOLID", help="one of its backups (storage:volume)")
    add_json(parser)


def main(args: argparse.Namespace) -> int:
    return run(lambda: _run(args))


async def _run(args: argparse.Namespace) -> int:
    request = PlanRequest(
        resource=args.id,
        target=PlanTarget(
            at=args.to, position=args.position, snapshot=args.snapshot, backup=args.backup
        ),
    )
    try:
        found: RollbackPlan = await ask(args, lambda store: plan_rollback(store, request))
    except NotFoundError as exc:  # an unknown guest is an error here, not a "no"
        print(f"pvetrail: {exc.detail}", file=sys.stderr)
        return 2
    if args.json:
        print_json(found)
    else:
        print(render(found))
    return 1 if found.blockers else 0


def pvesh(step: PlanStep) -> str:
    """A step as a ``pvesh`` command line (paths relative to ``/api2/json``)."""
    words = ["pvesh", PVESH[step.method], step.path]
    for name, value in step.params.items():
        words += [f"--{name}", _text(value)]
    return " ".join(shlex.quote(w) for w in words)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def render(found: RollbackPlan) -> str:
    """The plan for a terminal: what it is based on, numbered steps with their pvesh lines,
    then blockers and warnings."""
    lines = [f"rollback plan for {found.resource}: {found.summary}"]
    if found.based_on_digest:
        lines.append(f"based on config digest {found.based_on_digest}")
    if found.vmid is not None and not found.resource.endswith(f"/{found.vmid}"):
        lines.append(f"acts on vmid {found.vmid}")
    for step in found.steps:
        marks = [
            mark
            for mark, on in (
                ("DISRUPTIVE", step.disruptive),
                ("needs reboot", step.requires_reboot),
                ("fallback: only if the step before failed", step.fallback),
            )
            if on
        ]
        head = f"{step.order:>2}. {step.action}" + (f"  [{'; '.join(marks)}]" if marks else "")
        lines += ["", head, f"    {pvesh(step)}", f"    why: {step.reason}"]
    if found.blockers:
        lines += ["", "blockers:"] + [f"  - {b}" for b in found.blockers]
    if found.warnings:
        lines += ["", "warnings:"] + [f"  - {w}" for w in found.warnings]
    return "\n".join(lines)
