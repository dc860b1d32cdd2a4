"""``pvetrail rebuild [NAME]``: rebuild projections from the event log, with progress."""

from __future__ import annotations

import argparse
import sys

from eventstore import mask_url, open_store
from projections.errors import ProjectionError
from projections.fold import PROJECTIONS
from projections.runner import rebuild

from ..cli import run_async
from ..config import load_config
from ..progress import Progress

NAME = "rebuild"
HELP = "rebuild projections from the event log"
DESCRIPTION = f"""Fold the event log from position 0 into fresh projection tables and swap them
in within one transaction: safe while `pvetrail serve` runs (readers never see half a
rebuild; its runner continues from the rebuilt tables). Without NAME every projection is
rebuilt; NAME is one of: {", ".join(PROJECTIONS)}.

Shows progress on standard error (a bar on a terminal, plain lines otherwise) and the
rate at the end on standard output.
exit codes: 0 rebuilt, 1 an event could not be applied (its position is named), 2 no database
or not migrated.

examples:
  pvetrail rebuild
  pvetrail rebuild versions
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "name", nargs="?", choices=PROJECTIONS, metavar="NAME", help="one projection (default: all)"
    )
    parser.add_argument("--quiet", action="store_true", help="print only the result")


def main(args: argparse.Namespace) -> int:
    return run_async(_run(args))


async def _run(args: argparse.Namespace) -> int:
    config = load_config(getattr(args, "config", None))
    store = await open_store(config.database_url)
    progress = Progress(sys.stderr, what="rebuild", quiet=args.quiet)
    try:
        status = await store.pending_migrations()
        if status.pending:
            print(
                f"pvetrail: {mask_url(store.url)} has pending migrations (run `pvetrail migrate`)",
                file=sys.stderr,
            )
            return 2
        try:
            result = await rebuild(store, [args.name] if args.name else None, progress)
        except ProjectionError as exc:
            progress.finish()
            print(f"pvetrail: rebuild failed: {exc}", file=sys.stderr)
            return 1
    finally:
        await store.close()
    progress.finish()
    print(
        f"rebuilt {', '.join(result.projections)}: {result.events} events in "
        f"{result.seconds:.2f}s ({result.rate:,.0f} events/s)"
    )
    return 0
