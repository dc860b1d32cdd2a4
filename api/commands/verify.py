"""``pvetrail verify``: walk the event log's hash chain."""

from __future__ import annotations

import argparse
import sys

from eventstore import mask_url, open_store

from ..cli import run_async
from ..config import load_config
from ..progress import Progress

NAME = "verify"
HELP = "check the event log's hash chain"
DESCRIPTION = """Recompute every event's hash and check the chain from position 1 to the head.

exit codes: 0 the log is intact, 1 tampering found (the first bad position is named),
2 the log could not be checked (no database, not migrated, ...).

On a terminal a progress bar is drawn on standard error while the chain is walked.
It prints the head's position and hash: keep them elsewhere (with backups, in a ticket).
A later `--anchor POSITION:HASH` then also proves the log still holds that event unchanged,
which catches a log cut short or rewritten from there on, however consistently.

examples:
  pvetrail verify
  pvetrail verify --anchor 12345:9f86d081884c7d65...
  pvetrail --config /etc/pvetrail.toml verify
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="print only on failure")
    parser.add_argument(
        "--anchor",
        metavar="POSITION:HASH",
        type=_anchor,
        help="also require the event at POSITION to have this hash (from an earlier verify)",
    )


def _anchor(text: str) -> tuple[int, str]:
    position, sep, digest = text.partition(":")
    if not sep or not position.isdigit() or int(position) < 1 or len(digest) != 64:
        raise argparse.ArgumentTypeError("expected POSITION:HASH (a position and 64 hex digits)")
    return int(position), digest.lower()


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
        quiet = args.quiet or not sys.stderr.isatty()  # no plain lines: verify runs in cron
        progress = Progress(sys.stderr, what="verify", quiet=quiet)
        result = await store.verify(progress)
        progress.finish()
        anchored = None
        if result.ok and args.anchor is not None:
            position, digest = args.anchor
            found = await store.read_batch(position - 1, 1)
            if not found or found[0].position != position:
                anchored = f"the anchored event at position {position} is gone (log cut short)"
            elif found[0].hash != digest:
                anchored = f"the event at position {position} no longer has the anchored hash"
    finally:
        await store.close()
    if not result.ok:
        print(
            f"TAMPERED: the event log breaks at position {result.first_bad_position}: "
            f"{result.reason} ({result.checked} events before it verified)",
            file=sys.stderr,
        )
        return 1
    if anchored is not None:
        print(f"TAMPERED: {anchored}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(
            f"ok: {result.checked} events verified, head at position {result.head}"
            + (f", hash {result.head_hash}" if result.checked else "")
        )
    return 0
