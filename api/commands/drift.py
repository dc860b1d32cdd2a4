"""``pvetrail drift --baseline T | --desired NAME``: what differs, since when, by whom."""

from __future__ import annotations

import argparse
import sys

from eventstore import EventStore
from projections.drift import DesiredSets, DriftItem, drift
from projections.errors import NotFoundError

from ..config import load_config
from ..terminal import add_json, ask, print_json, run, show_time, show_value, table, time_arg

NAME = "drift"
HELP = "list what differs from a baseline time or a desired set (exit 1 on drift)"
DESCRIPTION = """List what differs now from the inventory at a baseline time (fields changed,
resources created or removed since), or from a desired-state set (fields that differ from the
set, resources it names that are missing, and with --unmanaged the guests it does not cover):
each with when it last changed away from the expected value and who did it, as far as the
Proxmox task log says. Desired sets are those stored with PUT /api/v1/desired/NAME and the
files of the configuration's desired_dir; drift_ignore patterns are left out.

exit codes: 0 no drift, 1 drift, 2 the question could not be asked (no such set, a time in
the future, no database), so a pipeline can gate on it.

examples:
  pvetrail drift --baseline 2026-11-01T00:00:00Z
  pvetrail drift --desired prod
  pvetrail drift --desired prod --unmanaged --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    question = parser.add_mutually_exclusive_group(required=True)
    question.add_argument(
        "--baseline", type=time_arg, metavar="T", help="compare with the inventory at T"
    )
    question.add_argument("--desired", metavar="NAME", help="compare with this desired set")
    parser.add_argument(
        "--unmanaged", action="store_true", help="with --desired: list guests no spec covers"
    )
    add_json(parser)


def main(args: argparse.Namespace) -> int:
    return run(lambda: _run(args))


async def collect(store: EventStore, args: argparse.Namespace) -> list[DriftItem]:
    """Every page of the report."""
    config = load_config(getattr(args, "config", None))
    sets = DesiredSets(store, config.desired_dir)
    items: list[DriftItem] = []
    cursor: str | None = None
    while True:
        page = await drift(
            store,
            baseline=None if cursor else args.baseline,
            desired=None if cursor else args.desired,
            unmanaged=bool(args.unmanaged) and not cursor,
            sets=sets,
            ignore=config.drift_ignore,
            limit=1000,
            cursor=cursor,
        )
        items += page.items
        cursor = page.next_cursor
        if cursor is None:
            return items


async def _run(args: argparse.Namespace) -> int:
    try:
        items = await ask(args, lambda store: collect(store, args))
    except NotFoundError as exc:  # no such set: the question, not the answer (exit 2)
        print(f"pvetrail: {exc.detail}", file=sys.stderr)
        return 2
    if args.json:
        print_json({"items": items})
    elif items:
        rows = [
            [
                item.id,
                item.kind,
                item.field or "-",
                show_value(item.expected),
                show_value(item.actual),
                show_time(item.since),
                _actor(item),
            ]
            for item in items
        ]
        print(table(["ID", "KIND", "FIELD", "EXPECTED", "ACTUAL", "SINCE", "ACTOR"], rows))
    else:
        print("no drift")
    return 1 if items else 0


def _actor(item: DriftItem) -> str:
    if item.actor is None:
        return "-"
    return str(item.actor.token or item.actor.user or "-")
