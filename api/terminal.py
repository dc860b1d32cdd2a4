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
import shutil
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

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


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Aligned columns; on a terminal, the last column is cut to the terminal's width."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(cell))
    limit = shutil.get_terminal_size((200, 24)).columns if sys.stdout.isatty() else None
    lines = []
    for row in [list(headers), *rows]:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        line = "  ".join([*cells, row[-1]]).rstrip()
        if limit is not None and len(line) > limit:
            line = line[: limit - 1] + "…"
        lines.append(line)
    return "\n".join(lines)
