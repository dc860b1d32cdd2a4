"""``pvetrail verify``: walk the event log's hash chain."""

from __future__ import annotations

import argparse
import sys

from eventstore import mask_url, open_store

from ..cli import run_async
from ..config import load_config

NAME = "verify"
HELP = "check the event log's hash chain"
DESCRIPTION = """Recompute every event's hash and check the chain from position 1 to the head.

exit codes: 0 the log is intact, 1 tampering found (the first bad position is named),
2 the log could not be checked (no database, not migrated, ...).

examples:
  pvetrail verify
  pvetrail --config /etc/pvetrail.toml verify
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="print only on failure")


def main(args: argparse.Namespace) -> int:
    return run_async(_run(args))


async def _run(args: argparse.Namespace) -> int:
    config = load_config(getattr(args, "config", None))
    store = await open_store(config.database_url)
    try:
        status = await store.pending_migrations()
        if status.pending and not status.applied:
            print(
                f"pvetrail: {mask_url(store.url)} holds no event log (run `pvetrail migrate`)",
                file=sys.stderr,
            )
            return 2
        result = await store.verify()
    finally:
        await store.close()
    if not result.ok:
        print(
            f"TAMPERED: the event log breaks at position {result.first_bad_position}: "
            f"{result.reason} ({result.checked} events before it verified)",
            file=sys.stderr,
        )
        return 1
    if not args.quiet:
        print(f"ok: {result.checked} events verified, head at position {result.head}")
    return 0
