"""What the query commands (``show``, ``history``, ``changes``, ``inventory``) share.

They call the same read-side functions as the API, not the HTTP API: open the configured
store, bring the projections up to the log's head (a short write that waits its turn, a no-op
while ``serve`` keeps them current), ask, and print a table or, with ``--json``, the very
JSON the API would answer.

Exit codes: 0 an answer, 1 not found (the resource did not exist then), 2 the question could
not be asked (a malformed or impossible parameter, bad configuration, no database).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TextIO, TypeVar

import msgspec

from eventstore import EventStore, format_time, mask_url, open_store
from projections.errors import NotFoundError, QueryError
from projections.runner import ProjectionRunner

from .config import load_config
from .errors import BadParameterError
from .params import parse_time

T = TypeVar("T")


def time_arg(text: str) -> datetime:
    """An argparse ``type``: an RFC 3339 time (``2026-11-01T14:03:00Z``)."""
    try:
        return parse_time("time", text)
    except BadParameterError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an RFC 3339 time such as 2026-11-01T14:03:00Z"
        ) from None


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON (as the API answers)")


def add_wide(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wide", action="store_true", help="show every column and value in full (no …)"
    )


def add_point(parser: argparse.ArgumentParser) -> None:
    """``--at`` or ``--position``."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--at", type=time_arg, metavar="T", help="as of this time (RFC 3339)")
    group.add_argument(
        "--position", type=int, metavar="N", help="as of this event position of the log"
    )


async def ask(args: argparse.Namespace, question: Callable[[EventStore], Awaitable[T]]) -> T:
    """Open the store, catch the projections up, ask; the store is closed again after."""
    config = load_config(getattr(args, "config", None))
    store = await open_store(config.database_url)
    try:
        status = await store.pending_migrations()
        if status.pending:
            raise CommandError(
                f"the database {mask_url(store.url)} is not migrated "
                "(run `pvetrail migrate` or `pvetrail serve`)"
            )
        await ProjectionRunner(store).catch_up()
        return await question(store)
    finally:
        await store.close()


class CommandError(Exception):
    """The question could not be asked; the message says why (exit 2)."""


def run(coro_factory: Callable[[], Awaitable[int]]) -> int:
    """Run a query command, turning the read side's refusals into messages and exit codes."""
    import asyncio

    try:
        return asyncio.run(_guarded(coro_factory))
    except CommandError as exc:
        print(f"pvetrail: {exc}", file=sys.stderr)
        return 2


async def _guarded(coro_factory: Callable[[], Awaitable[int]]) -> int:
    try:
        return await coro_factory()
    except NotFoundError as exc:
        print(f"pvetrail: {exc.detail}", file=sys.stderr)
        if exc.first_seen is not None:
            last = format_time(exc.last_seen) if exc.last_seen else "still exists"
            print(f"  first seen {format_time(exc.first_seen)}, last seen {last}", file=sys.stderr)
        return 1
    except QueryError as exc:
        where = f"--{exc.param.replace('_', '-')}: " if exc.param else ""
        print(f"pvetrail: {where}{exc.detail}", file=sys.stderr)
        return 2


def print_json(value: Any) -> None:
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(value)).decode() + "\n")


def show_time(value: datetime | None) -> str:
    """A time for a table: second precision, UTC, ``Z``."""
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value is not None else "-"


def show_value(value: Any) -> str:
    """A field value for a table: strings as they are, the rest as JSON."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode()


TABLE_WIDTH = 120
"""The width a table is fitted to when stdout is no terminal and ``COLUMNS`` is unset."""
MIN_CELL = 8
"""No column is cut narrower than this (or its header), whatever the terminal's width."""
VALUE_WIDTH = 40
"""Old and new values in a change line are cut to this many characters (``--wide``: never)."""

_STYLES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}
Styler = Callable[[int, str], str | None]
"""Which style (a key of ``_STYLES``) a cell gets, from its column index and its text."""


def colour_on(stream: TextIO | None = None) -> bool:
    """Colour only on a terminal, and never when ``NO_COLOR`` is set (https://no-color.org)."""
    stream = sys.stdout if stream is None else stream
    return stream.isatty() and not os.environ.get("NO_COLOR")


def paint(text: str, style: str | None, *, on: bool) -> str:
    """``text`` in ``style`` when colour is ``on``; as it is otherwise."""
    if not on or style is None or not text:
        return text
    return f"\x1b[{_STYLES[style]}m{text}\x1b[0m"


def table_width() -> int:
    """The width to fit: the terminal's, else ``COLUMNS``, else :data:`TABLE_WIDTH`."""
    return max(40, shutil.get_terminal_size((TABLE_WIDTH, 24)).columns)


def cut(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, the cut marked with ``…``."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def fit(widths: Sequence[int], minimums: Sequence[int], limit: int) -> list[int]:
    """Column widths whose sum (with two spaces between columns) is at most ``limit``: the
    widest column gives up a character at a time, none below its minimum."""
    widths = list(widths)
    excess = sum(widths) + 2 * (len(widths) - 1) - limit
    while excess > 0:
        shrinkable = [i for i, w in enumerate(widths) if w > minimums[i]]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda i: widths[i])
        widths[widest] -= 1
        excess -= 1
    return widths


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    wide: bool = False,
    style: Styler | None = None,
) -> str:
    """Aligned columns fitted to :func:`table_width` (cells cut with ``…``), or in full with
    ``wide``; headers bold and cells styled by ``style`` on a colour terminal."""
    natural = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            natural[i] = max(natural[i], len(cell))
    minimums = [min(n, max(len(h), MIN_CELL)) for n, h in zip(natural, headers, strict=True)]
    widths = natural if wide else fit(natural, minimums, table_width())
    on = colour_on()
    lines = []
    for index, row in enumerate([list(headers), *rows]):
        cells = []
        for i, cell in enumerate(row):
            text = cut(cell, widths[i])
            padded = text if i == len(row) - 1 else text.ljust(widths[i])
            if index == 0:
                chosen: str | None = "bold"
            else:
                chosen = style(i, cell) if style is not None else None
            cells.append(paint(padded, chosen, on=on) if text else padded)
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def show_change(field: str, old: Any, new: Any, *, wide: bool = False) -> str:
    """One field's change, ``field: old → new``, long values cut unless ``wide``."""
    before, after = show_value(old), show_value(new)
    if not wide:
        before, after = cut(before, VALUE_WIDTH), cut(after, VALUE_WIDTH)
    return f"{field}: {before} → {after}"


_GOOD = frozenset({"running", "online", "available", "active", "created"})
_BAD = frozenset({"stopped", "offline", "unknown", "removed", "error", "missing"})


def status_style(text: str) -> str | None:
    """Green for the healthy states, red for the stopped, gone or unknown ones."""
    if text in _GOOD:
        return "green"
    if text in _BAD:
        return "red"
    return None


_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[Any, ...]:
    """Sorts ``lab/qemu/99`` before ``lab/qemu/100``."""
    return tuple(int(part) if part.isdigit() else part for part in _DIGITS.split(text))
