"""``pvetrail mcp [--api URL]``: the read side as Model Context Protocol tools on stdio."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ..config import load_config
from ..logs import configure_logging

if TYPE_CHECKING:
    from ..assistant.server import Source

Serve = Callable[["Source"], Awaitable[None]]

NAME = "mcp"
HELP = "offer the read-side queries to an AI assistant: an MCP server on stdio (read-only)"
DESCRIPTION = """A Model Context Protocol server on stdin/stdout for an MCP-capable assistant:
read-only tools for the inventory at a time, one resource, its history, the changes between
two times, the relation graph, rollback targets and plans (plans only: nothing is run), and
drift against a baseline or a desired set. Answers are the HTTP API's JSON.

It reads the configured database (--config, PVETRAIL_CONFIG, PVETRAIL_DATABASE_URL) and never
writes it: no migration, no projection runner, no collector; answers say how far the
projections lag the log when no `pvetrail serve` keeps them current. With --api it reads a
remote pvetrail over HTTP instead, with the reader token in PVETRAIL_TOKEN.

Needs the MCP SDK: pip install 'pvetrail[mcp]'. Logs go to stderr (stdout is the protocol).

exit codes: 0 the client closed the session, 2 it could not start (no SDK, bad configuration,
a database that does not exist or is not migrated, a malformed --api URL).

examples:
  pvetrail mcp --config /etc/pvetrail/pvetrail.toml
  PVETRAIL_TOKEN=... pvetrail mcp --api https://pvetrail.example.org
"""

PIP_LINE = "pip install 'pvetrail[mcp]'"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api",
        metavar="URL",
        help="read a remote pvetrail over HTTP (reader token in $PVETRAIL_TOKEN)",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level of the log on stderr (default WARNING)",
    )


def main(args: argparse.Namespace) -> int:
    try:
        from ..assistant.server import serve_stdio
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in ("mcp", "mcp_types"):
            raise
        print(f"pvetrail: pvetrail mcp needs the MCP SDK: {PIP_LINE}", file=sys.stderr)
        return 2
    if args.api is not None:
        return asyncio.run(_remote(args.api, args.log_level, serve_stdio))
    return asyncio.run(_local(args, serve_stdio))


async def _local(args: argparse.Namespace, serve: Serve) -> int:
    from ..assistant.local import LocalSourceError, local_source

    config = load_config(getattr(args, "config", None))
    try:
        async with local_source(config) as source:
            configure_logging(args.log_level, json_lines=True)
            await serve(source)
    except LocalSourceError as exc:
        print(f"pvetrail: {exc}", file=sys.stderr)
        return 2
    return 0


async def _remote(url: str, log_level: str, serve: Serve) -> int:
    import aiohttp

    from ..assistant.remote import TOKEN_ENV, RemoteSource, base_url

    try:
        base = base_url(url)
    except ValueError as exc:
        print(f"pvetrail: {exc}", file=sys.stderr)
        return 2
    configure_logging(log_level, json_lines=True)
    token = os.environ.get(TOKEN_ENV) or None
    if token is None:
        logging.getLogger("pvetrail.mcp").warning(
            "%s is not set: only a pvetrail without tokens will answer", TOKEN_ENV
        )
    async with aiohttp.ClientSession() as session:
        await serve(RemoteSource(base, token, session))
    return 0
