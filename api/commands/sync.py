"""``pvetrail sync``: one poll now, of every cluster or of one; prints what it appended."""

from __future__ import annotations

import argparse
import os
import sys

from collectors.client import CollectorError
from collectors.secrets import SecretsError, load_fingerprint_key
from collectors.service import CollectorService, SyncResult
from eventstore import mask_url, open_store

from ..cli import run_async
from ..config import ConfigError, load_config
from ..progress import ticking

NAME = "sync"
HELP = "poll Proxmox VE once now and append what changed"
DESCRIPTION = """Poll the configured Proxmox VE clusters once (a fast poll of /cluster/resources
and /cluster/status, or with --deep also every config, snapshot, backup, pool and task log)
and append every change to the event log. Waits for a poll the running service may be doing.

Exit status: 0 when every cluster was observed, 2 when a cluster is unknown or could not be
observed (unreachable, refused credentials), or when the database needs `pvetrail migrate`.

examples:
  pvetrail sync
  pvetrail sync --cluster lab --deep
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cluster", metavar="NAME", help="only this cluster (default: all)")
    parser.add_argument(
        "--deep", action="store_true", help="a deep poll: configs, snapshots, backups, tasks"
    )


def main(args: argparse.Namespace) -> int:
    return run_async(_run(args))


def _report(result: SyncResult) -> None:
    kind = "deep" if result.kind == "deep" else result.kind
    if not result.ok:
        print(f"{result.cluster}: could not observe the cluster ({kind} poll)", file=sys.stderr)
        for fault in result.faults:
            print(f"  {fault}", file=sys.stderr)
        return
    noun = "event" if result.events_appended == 1 else "events"
    print(
        f"{result.cluster}: {kind} poll appended {result.events_appended} {noun} "
        f"in {result.duration_s:.2f}s ({result.observed} resources observed)"
    )
    for event_type, count in sorted(result.counts.items()):
        print(f"  {event_type}: {count}")
    for fault in result.faults:
        print(f"  unobserved: {fault}", file=sys.stderr)


async def _run(args: argparse.Namespace) -> int:
    config = load_config(getattr(args, "config", None))
    clusters = config.clusters
    if args.cluster is not None:
        clusters = [config.cluster(args.cluster)]  # ConfigError names the known ones
    if not clusters:
        print("pvetrail: no [[clusters]] configured: nothing to sync", file=sys.stderr)
        return 2
    for cluster in clusters:
        problem = cluster.unset_secret(os.environ)
        if problem is not None:
            raise ConfigError(problem)
    store = await open_store(config.database_url)
    try:
        status = await store.pending_migrations()
        if status.pending:
            print(
                f"pvetrail: {len(status.pending)} migration(s) pending on "
                f"{mask_url(store.url)}; run `pvetrail migrate` first",
                file=sys.stderr,
            )
            return 2
        try:
            key = await load_fingerprint_key(store, config.fingerprint_key_env, os.environ)
        except SecretsError as exc:
            print(f"pvetrail: {exc}", file=sys.stderr)
            return 2
        service = CollectorService(store, clusters, fingerprint_key=key)
        code = 0
        try:
            for cluster in clusters:
                try:
                    # A first poll of a large cluster takes a while: say so on a terminal.
                    async with ticking(f"{cluster.name}: polling"):
                        result = await service.sync(cluster.name, deep=args.deep)
                except CollectorError as exc:
                    print(f"pvetrail: {cluster.name}: {exc}", file=sys.stderr)
                    code = 2
                    continue
                _report(result)
                if not result.ok:
                    code = 2
        finally:
            await service.stop()
        return code
    finally:
        await store.close()
