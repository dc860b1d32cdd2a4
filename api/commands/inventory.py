"""``pvetrail inventory [--at T]``: every resource as it was then."""

from __future__ import annotations

import argparse

from eventstore import EventStore
from projections import queries
from projections.models import InventoryPage

from ..terminal import add_json, add_point, ask, print_json, run, show_value, table

NAME = "inventory"
HELP = "list every resource as it is now or was at a time"
DESCRIPTION = """List the inventory (guests, nodes, storages, pools, snapshots, backups, ...)
as pvetrail had observed it at a time (default now), filtered.

exit codes: 0 listed (possibly nothing), 2 the question could not be asked.

examples:
  pvetrail inventory
  pvetrail inventory --at 2026-11-01T14:03:00Z --type qemu
  pvetrail inventory --node pve1 --status running
  pvetrail inventory --tag prod --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_point(parser)
    parser.add_argument("--type", help="qemu, lxc, node, storage, pool, snapshot, backup, ...")
    parser.add_argument("--node", help="only resources on this node")
    parser.add_argument("--status", help="running, stopped, online, ...")
    parser.add_argument("--tag", help="only resources with this tag")
    parser.add_argument("--pool", help="only members of this pool")
    parser.add_argument("-q", "--search", metavar="TEXT", help="substring of the id or name")
    add_json(parser)


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
        for r in page.items
    ]
    print(table(["ID", "TYPE", "NAME", "NODE", "STATUS", "TAGS", "POOL"], rows))
    print(f"\n{len(page.items)} resources at position {page.position}")
    return 0
