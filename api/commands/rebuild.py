"""``pvetrail rebuild [NAME]``: rebuild projections from the event log, with progress."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

from eventstore import mask_url, open_store
from projections.errors import ProjectionError
from projections.fold import PROJECTIONS
from projections.runner import rebuild

from ..cli import run_async
from ..config import load_config

NAME = "rebuild"
HELP = "rebuild projections from the event log"
DESCRIPTION = f"""Fold the event log from position 0 into fresh projection tables and swap them
in within one transaction: safe while `pvetrail serve` runs (readers never see half a
rebuild; its runner continues from the rebuilt tables). Without NAME every projection is
rebuilt; NAME is one of: {", ".join(PROJECTIONS)}.

Shows a progress bar on a terminal and plain progress lines otherwise, and the rate at the end.
exit codes: 0 rebuilt, 1 an event could not be applied (its position is named), 2 no database
or not migrated.

examples:
  pvetrail rebuild
  pvetrail rebuild versions
"""

BAR_WIDTH = 30
LINE_EVERY_S = 2.0
"""Plain progress lines (not a terminal) come at most this often."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "name", nargs="?", choices=PROJECTIONS, metavar="NAME", help="one projection (default: all)"
    )
    parser.add_argument("--quiet", action="store_true", help="print only the result")


class Progress:
    """Draws (done, total) as a bar on a terminal, or as occasional plain lines."""

    def __init__(self, out: TextIO, *, quiet: bool = False) -> None:
        self.out = out
        self.quiet = quiet
        self.tty = out.isatty()
        self.started = time.monotonic()
        self.last_line = 0.0

    def __call__(self, done: int, total: int) -> None:
        if self.quiet:
            return
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = done / elapsed
        share = done / total if total else 1.0
        if self.tty:
            filled = int(BAR_WIDTH * share)
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            self.out.write(f"\r[{bar}] {share:6.1%} {done}/{total} events, {rate:,.0f}/s")
            self.out.flush()
        elif elapsed - self.last_line >= LINE_EVERY_S or done >= total:
            self.last_line = elapsed
            print(
                f"rebuild: {done}/{total} events ({share:.0%}), {rate:,.0f} events/s",
                file=self.out,
                flush=True,
            )

    def finish(self) -> None:
        if self.tty and not self.quiet:
            self.out.write("\n")


def main(args: argparse.Namespace) -> int:
    return run_async(_run(args))


async def _run(args: argparse.Namespace) -> int:
    config = load_config(getattr(args, "config", None))
    store = await open_store(config.database_url)
    progress = Progress(sys.stdout, quiet=args.quiet)
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
