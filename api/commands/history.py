"""``pvetrail history ID``: a resource's changes, oldest first."""

from __future__ import annotations

import argparse
from typing import Any

from eventstore import EventStore
from projections import queries
from projections.models import HistoryEntry, HistoryPage

from ..terminal import add_json, ask, print_json, run, show_time, show_value, table, time_arg

NAME = "history"
HELP = "list a resource's changes, oldest first, with who and when"
DESCRIPTION = """List every change of one resource, oldest first: the event, when it was
observed (and the previous observation that did not show it yet, so the change happened
between the two), who did it as far as the Proxmox task log says, and each field's old and
new value.

exit codes: 0 listed, 1 no such resource was ever seen, 2 the question could not be asked.

examples:
  pvetrail history lab/qemu/100
  pvetrail history lab/qemu/100 --since 2026-11-01T00:00:00Z --until 2026-11-02T00:00:00Z
  pvetrail history lab/lxc/200 --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="resource id, e.g. lab/qemu/100")
    parser.add_argument("--since", type=time_arg, metavar="T", help="changes observed after T")
    parser.add_argument("--until", type=time_arg, metavar="T", help="changes observed up to T")
    parser.add_argument(
        "--limit", type=int, default=1000, metavar="N", help="at most N changes (1000)"
    )
    add_json(parser)


def main(args: argparse.Namespace) -> int:
    return run(lambda: _run(args))


async def collect(store: EventStore, args: argparse.Namespace) -> list[HistoryEntry]:
    """Every page up to ``--limit`` entries."""
    items: list[HistoryEntry] = []
    cursor: str | None = None
    while len(items) < args.limit:
        page: HistoryPage = await queries.history(
            store,
            args.id,
            since=args.since,
            until=args.until,
            limit=min(1000, args.limit - len(items)),
            cursor=cursor,
        )
        items += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    return items


async def _run(args: argparse.Namespace) -> int:
    if args.limit < 1:
        print("pvetrail: --limit must be at least 1")
        return 2
    items = await ask(args, lambda store: collect(store, args))
    if args.json:
        print_json({"items": items})
        return 0
    rows = [
        [
            str(e.position),
            show_time(e.observed_at),
            show_time(e.observed_after),
            e.event,
            _actor(e.actor),
            "; ".join(f"{c.field}: {show_value(c.old)} -> {show_value(c.new)}" for c in e.changes),
        ]
        for e in items
    ]
    print(table(["POSITION", "OBSERVED_AT", "NOT_BEFORE", "EVENT", "ACTOR", "CHANGES"], rows))
    return 0


def _actor(actor: Any) -> str:
    if actor is None:
        return "-"
    return str(actor.token or actor.user or "-")
