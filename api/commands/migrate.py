"""``pvetrail migrate``: apply pending migrations; ``--check`` only reports them."""

from __future__ import annotations

import argparse
import sys

from eventstore import mask_url, open_store

from ..cli import run_async
from ..config import load_config
from ..migration import describe, migrate_database

NAME = "migrate"
HELP = "apply pending database migrations"
DESCRIPTION = """Apply pending migrations to the configured database (safe while other
processes migrate too; each file is applied atomically). On PostgreSQL, then let the reader
role (database_reader_role) read the SQL views of docs/sql.md, making it if it is missing and
the database user may create roles.

examples:
  pvetrail migrate
  pvetrail migrate --check      # exit 1 if any migration is pending
  PVETRAIL_DATABASE_URL=postgresql://pvetrail@db/pvetrail pvetrail migrate
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--check", action="store_true", help="apply nothing; exit 1 if migrations are pending"
    )


def main(args: argparse.Namespace) -> int:
    return run_async(_run(args))


async def _run(args: argparse.Namespace) -> int:
    config = load_config(getattr(args, "config", None))
    store = await open_store(config.database_url)
    try:
        if args.check:
            status = await store.pending_migrations()
            if status.pending:
                print(f"{len(status.pending)} migration(s) pending on {mask_url(store.url)}:")
                for name in status.pending:
                    print(f"  {name}")
                return 1
            print(f"database {mask_url(store.url)} is up to date ({len(status.applied)} applied)")
            return 0
        status, grant = await migrate_database(store, config, log_grant=False)
        if status.applied:
            print(f"applied {len(status.applied)} migration(s) to {mask_url(store.url)}:")
            for name in status.applied:
                print(f"  {name}")
        else:
            print(f"database {mask_url(store.url)} is up to date")
        if grant is not None:
            print(describe(grant), file=sys.stdout if grant.granted else sys.stderr)
        return 0
    finally:
        await store.close()
