"""``pvetrail changes --since T1 [--until T2]``: the net change of the inventory."""

from __future__ import annotations

import argparse

from eventstore import EventStore
from projections import queries
from projections.models import NetChange

from ..terminal import add_json, add_wide, ask, print_json, run, show_change, table, time_arg

NAME = "changes"
HELP = "list what changed in the whole inventory between two times"
DESCRIPTION = """List every resource whose state differs between two times: created, changed
(with the fields that differ) or removed. Changes count from when pvetrail observed them.

exit codes: 0 listed (possibly nothing), 2 the question could not be asked (a time in the
future, since after until, no database).

examples:
  pvetrail changes --since 2026-11-01T00:00:00Z
  pvetrail changes --since 2026-11-01T00:00:00Z --until 2026-11-01T12:00:00Z --type qemu
  pvetrail changes --since 2026-11-01T00:00:00Z --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since", type=time_arg, metavar="T1", required=True, help="start (exclusive)"
    )
    parser.add_argument("--until", type=time_arg, metavar="T2", help="end (default now)")
    parser.add_argument("--type", help="only resources of this type (qemu, lxc, node, ...)")
    add_wide(parser)
    add_json(parser)


def main(args: argparse.Namespace) -> int:
    return run(lambda: _run(args))


async def collect(store: EventStore, args: argparse.Namespace) -> list[NetChange]:
    """Every page."""
    items: list[NetChange] = []
    cursor: str | None = None
    while True:
        page = await queries.changes(
            store, since=args.since, until=args.until, type=args.type, limit=1000, cursor=cursor
        )
        items += page.items
        cursor = page.next_cursor
        if cursor is None:
            return items


async def _run(args: argparse.Namespace) -> int:
    items = await ask(args, lambda store: collect(store, args))
    if args.json:
        print_json({"items": items})
        return 0
    rows = [
        [
            c.id,
            c.change,
            "; ".join(
                show_change(f.field, f.old, f.new, wide=args.wide)
                for f in c.changes
                if c.change == "changed"
            ),
        ]
        for c in items
    ]
    print(table(["ID", "CHANGE", "FIELDS"], rows, wide=args.wide, style=_style))
    return 0


_CHANGE_STYLES = {"created": "green", "removed": "red", "changed": "yellow"}


def _style(column: int, text: str) -> str | None:
    return _CHANGE_STYLES.get(text) if column == 1 else None
