"""Progress of the long commands: on a terminal only, on stderr, wiped when the work ends."""

from __future__ import annotations

import asyncio
import io

from api.progress import QUIET_S, Progress, ticking


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_ticking_shows_elapsed_time_only_past_a_second_and_wipes_it() -> None:
    quick = _Terminal()
    async with ticking("lab: polling", quick):
        await asyncio.sleep(0.05)
    assert quick.getvalue() == ""  # quicker than a second: nothing drawn
    slow = _Terminal()
    async with ticking("lab: polling", slow):
        await asyncio.sleep(QUIET_S + 0.3)
    text = slow.getvalue()
    assert "\rlab: polling … 1s" in text
    assert text.endswith("\r\x1b[K")  # the line is wiped: the result prints on a clean line
    piped = io.StringIO()
    async with ticking("lab: polling", piped):
        await asyncio.sleep(QUIET_S + 0.1)
    assert piped.getvalue() == ""  # not a terminal: nothing at all


def test_plain_progress_lines_off_a_terminal_name_the_command() -> None:
    out = io.StringIO()
    progress = Progress(out, what="verify")
    progress(10, 10)
    progress.finish()
    assert out.getvalue().startswith("verify: 10/10 events (100%), ")
