"""``pvetrail show ID [--at T]``: one resource as it was then."""

from __future__ import annotations

import argparse

from projections import queries
from projections.models import Resource

from ..terminal import (
    add_json,
    add_point,
    add_wide,
    ask,
    print_json,
    run,
    show_time,
    show_value,
    status_style,
    table,
)

NAME = "show"
HELP = "show one resource as it is now or was at a time"
DESCRIPTION = """Show one resource (guest, node, storage, snapshot, backup, ...) as pvetrail had
observed it at a time (default now): its fields and its whole config, secrets as their
fingerprints.

exit codes: 0 shown, 1 it did not exist then (first and last seen are printed when known),
2 the question could not be asked (malformed time, no database).

examples:
  pvetrail show lab/qemu/100
  pvetrail show lab/qemu/100 --at 2026-11-01T14:03:00Z
  pvetrail show lab/node/pve1 --json
"""

FIELDS = ("id", "type", "name", "node", "vmid", "status", "tags", "pool", "lock", "digest")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="resource id, e.g. lab/qemu/100")
    add_point(parser)
    add_wide(parser)
    add_json(parser)


def main(args: argparse.Namespace) -> int:
    return run(lambda: _run(args))


async def _run(args: argparse.Namespace) -> int:
    found: Resource = await ask(
        args,
        lambda store: queries.resource_at(store, args.id, at=args.at, position=args.position),
    )
    if args.json:
        print_json(found)
        return 0
    rows = [[name, show_value(getattr(found, name))] for name in FIELDS]
    rows += [
        ["observed_at", show_time(found.observed_at)],
        ["last_observed_at", show_time(found.last_observed_at)],
        ["position", str(found.position)],
    ]
    rows += [[f"config.{key}", show_value(found.config[key])] for key in sorted(found.config)]
    rows += [[f"pending.{key}", show_value(found.pending[key])] for key in sorted(found.pending)]
    print(table(["FIELD", "VALUE"], rows, wide=args.wide, style=_style))
    return 0


def _style(column: int, text: str) -> str | None:
    return status_style(text) if column == 1 else None
