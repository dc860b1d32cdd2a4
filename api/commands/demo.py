"""``pvetrail demo``: serve against a simulated Proxmox VE cluster that keeps changing."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from ..cli import run_async
from ..demo import DemoError, DemoOptions, run_demo
from ..logs import configure_logging

NAME = "demo"
HELP = "try pvetrail against a simulated Proxmox VE cluster"
DESCRIPTION = """Start a simulated Proxmox VE cluster (fakepve: 3 nodes, about 40 qemu and lxc
guests with real-looking configs, snapshots and backups) whose guests keep being changed by
different users, then run `pvetrail serve` against it on a fresh SQLite file and print the
web view's URL first, then the API's, with example queries. Ctrl-C stops everything.

Needs the demo extra: pip install 'pvetrail[demo]'.

examples:
  pvetrail demo
  pvetrail demo --port 9090 --guests 100 --churn-interval 2
  pvetrail demo --database demo.db     # keep the log after the demo stops
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8080, help="API port on 127.0.0.1 (8080)")
    parser.add_argument("--guests", type=int, default=40, help="guests to simulate, 1 to 2000 (40)")
    parser.add_argument(
        "--churn-interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="seconds between simulated changes (5)",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed of cluster and churn")
    parser.add_argument(
        "--database", metavar="FILE", help="SQLite file (default: a fresh temporary one)"
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level of the server (WARNING)",
    )


def main(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    # A poll still running when its next one is due is skipped by design; a large demo cluster
    # would print that warning every second.
    logging.getLogger("apscheduler.scheduler").setLevel(
        max(logging.ERROR, logging.getLogger().level)
    )
    options = DemoOptions(
        port=args.port,
        guests=args.guests,
        churn_interval=args.churn_interval,
        seed=args.seed,
        database=args.database,
    )
    try:
        return run_async(run_demo(options, dict(os.environ)))
    except DemoError as exc:
        print(f"pvetrail demo: {exc}", file=sys.stderr)
        return 2
