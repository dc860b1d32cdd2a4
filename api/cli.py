"""The ``pvetrail`` command line. Each subcommand lives in its own module of ``api.commands``.

``--config FILE`` is accepted before or after the subcommand; ``PVETRAIL_CONFIG`` names the
file too. Exit codes: 0 success, 1 the command's own "no" (tamper found, migrations pending),
2 it could not do its work (bad configuration, database unreachable), 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol

from collectors.secrets import SecretsError
from eventstore import EventStoreError

from .config import ConfigError

# Each module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``main(args) -> int``.
COMMAND_MODULES = (
    "serve",
    "demo",
    "migrate",
    "sync",
    "rebuild",
    "verify",
    "show",
    "history",
    "changes",
    "inventory",
    "plan",
    "drift",
    "mcp",
)


class CommandModule(Protocol):
    NAME: str
    HELP: str
    DESCRIPTION: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def main(self, args: argparse.Namespace) -> int: ...


def _load_commands() -> list[CommandModule]:
    modules: list[CommandModule] = []
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"api.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"api.commands.{name}":
                continue  # not built yet
            raise
        modules.append(module)
    return modules


def build_parser() -> argparse.ArgumentParser:
    """The parser with every available subcommand."""
    config_help = "configuration file (TOML); default: $PVETRAIL_CONFIG"
    parser = argparse.ArgumentParser(
        prog="pvetrail",
        description="Event-sourced state service for Proxmox VE: what did it look like, "
        "what changed, who did it, and how to put it back.",
    )
    parser.add_argument("--config", metavar="FILE", help=config_help)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _load_commands():
        command = sub.add_parser(
            module.NAME,
            help=module.HELP,
            description=module.DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        # SUPPRESS keeps a value given before the subcommand from being reset to None.
        command.add_argument(
            "--config", metavar="FILE", default=argparse.SUPPRESS, help=config_help
        )
        module.add_arguments(command)
        command.set_defaults(_main=module.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pvetrail`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args._main(args)
    except ConfigError as exc:
        print(f"pvetrail: configuration error: {exc}", file=sys.stderr)
        return 2
    except (EventStoreError, SecretsError) as exc:
        print(f"pvetrail: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


def run_async(coro: object) -> int:
    """Run a command's coroutine to completion and return its exit code."""
    return int(asyncio.run(coro))  # type: ignore[arg-type]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
