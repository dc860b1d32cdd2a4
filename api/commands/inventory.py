"""``pvetrail inventory [--at T]``: every resource as it was then."""

from __future__ import annotations

import argparse

from eventstore import EventStore
from projections import queries
from projections.models import InventoryPage

from ..terminal import (
    add_json,
    add_point,
    add_wide,
    ask,
    natural_key,
    print_json,
    run,
    show_value,
    status_style,
    table,
)

NAME = "inventory"
HELP = "list every resource as it is now or was at a time"
DESCRIPTION = """List the inventory (guests, nodes, storages, pools, snapshots, backups, ...)
as pvetrail had observed it at a time (default now), filtered: guests first, grouped by type
(qemu, lxc, then nodes, storages, pools, networks, snapshots, backups), fitted to the
terminal's width (--wide shows every value in full; --json prints the API's answer).

exit codes: 0 listed (possibly nothing), 2 the question could not be asked.

examples:
  pvetrail inventory
  pvetrail inventory --at 2026-11-01T14:03:00Z --type qemu
  pvetrail inventory --node pve1 --status running
  pvetrail inventory --tag prod --json
  pvetrail inventory --type backup --wide
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_point(parser)
    parser.add_argument("--type", help="qemu, lxc, node, storage, pool, snapshot, backup, ...")
    parser.add_argument("--node", help="only resources on this node")
    parser.add_argument("--status", help="running, stopped, online, ...")
    parser.add_argument("--tag", help="only resources with this tag")
    parser.add_argument("--pool", help="only members of this pool")
    parser.add_argument("-q", "--search", metavar="TEXT", help="substring of the id or name")
    add_wide(parser)
    add_json(parser)


TYPE_ORDER = ("qemu", "lxc", "node", "storage", "pool", "network", "snapshot", "backup")
"""Guests first, then what they run on, then what was taken of them."""


def type_rank(type_: str) -> int:
    """Where a type's group stands in the table (types not listed come last)."""
    return TYPE_ORDER.index(type_) if type_ in TYPE_ORDER else len(TYPE_ORDER)


def main(args: argparse.Namespace) -> int:
    return run(lambda: _run(args))


async def collect(store: EventStore, args: argparse.Namespace) -> InventoryPage:
    """Every resource, as one page: one query (on PostgreSQL one index scan for a time)
    rather than pages of 1,000 with a cursor each."""
    return await queries.inventory(
        store,
        at=args.at,
        position=args.position,
        type=args.type,
        node=args.node,
        status=args.status,
        tag=args.tag,
        pool=args.pool,
        q=args.search,
        limit=None,
    )


async def _run(args: argparse.Namespace) -> int:
    page = await ask(args, lambda store: collect(store, args))
    if args.json:
        print_json(page)
        return 0
    items = sorted(page.items, key=lambda r: (type_rank(r.type), r.type, natural_key(r.id)))
    rows = [
        [
            r.id,
            r.type,
            show_value(r.name),
            show_value(r.node),
            show_value(r.status),
            ";".join(r.tags) or "-",
            show_value(r.pool),
        ]
        for r in items
    ]
    headers = ["ID", "TYPE", "NAME", "NODE", "STATUS", "TAGS", "POOL"]
    print(table(headers, rows, wide=args.wide, style=_style))
    counts: dict[str, int] = {}
    for r in items:
        counts[r.type] = counts.get(r.type, 0) + 1
    summary = ", ".join(f"{n} {t}" for t, n in counts.items())
    print(
        f"\n{len(items)} resources at position {page.position}"
        + (f": {summary}" if summary else "")
    )
    return 0


def _style(column: int, text: str) -> str | None:
    return status_style(text) if column == 4 else None
