"""Progress of the long commands (``rebuild``, ``verify``, a first ``sync``), on stderr.

On a terminal a bar (known total) or a ticking line (unknown length) is drawn in place and
wiped when the work ends; anything quicker than :data:`QUIET_S` draws nothing. Off a terminal
:class:`Progress` writes an occasional plain line instead (a log of a long rebuild in CI), and
:func:`ticking` writes nothing. Standard output keeps only the result, so it can be piped.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from typing import TextIO

BAR_WIDTH = 30
LINE_EVERY_S = 2.0
"""Plain progress lines (not a terminal) come at most this often."""
QUIET_S = 1.0
"""Work that ends sooner shows no progress at all."""
TICK_S = 0.2


class Progress:
    """Draws (done, total) as a bar on a terminal, or as occasional plain lines."""

    def __init__(
        self,
        out: TextIO | None = None,
        *,
        what: str = "progress",
        label: str = "events",
        quiet: bool = False,
    ) -> None:
        self.out = sys.stderr if out is None else out
        self.what = what
        self.label = label
        self.quiet = quiet
        self.tty = self.out.isatty()
        self.started = time.monotonic()
        self.last_line = 0.0
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        if self.quiet:
            return
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = done / elapsed
        share = done / total if total else 1.0
        if self.tty:
            if self.drawn and elapsed - self.last_line < TICK_S and done < total:
                return  # a callback per batch would flood the terminal
            self.last_line = elapsed
            filled = int(BAR_WIDTH * share)
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            self.out.write(
                f"\r[{bar}] {share:6.1%} {done}/{total} {self.label}, {rate:,.0f}/s\x1b[K"
            )
            self.out.flush()
            self.drawn = True
        elif elapsed - self.last_line >= LINE_EVERY_S or done >= total:
            self.last_line = elapsed
            print(
                f"{self.what}: {done}/{total} {self.label} ({share:.0%}), "
                f"{rate:,.0f} {self.label}/s",
                file=self.out,
                flush=True,
            )

    def finish(self) -> None:
        """End the bar's line, so what follows starts on a fresh one."""
        if self.tty and self.drawn:
            self.out.write("\n")
            self.out.flush()
            self.drawn = False


@contextlib.asynccontextmanager
async def ticking(what: str, out: TextIO | None = None) -> AsyncIterator[None]:
    """While the body runs longer than :data:`QUIET_S`, show ``what … 3s`` on a terminal."""
    stream = sys.stderr if out is None else out
    if not stream.isatty():
        yield
        return
    started = time.monotonic()

    async def tick() -> None:
        await asyncio.sleep(QUIET_S)
        while True:
            stream.write(f"\r{what} … {time.monotonic() - started:.0f}s\x1b[K")
            stream.flush()
            await asyncio.sleep(TICK_S)

    ticker = asyncio.create_task(tick())
    try:
        yield
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        if time.monotonic() - started >= QUIET_S:
            stream.write("\r\x1b[K")
            stream.flush()
