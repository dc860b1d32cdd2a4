"""``pvetrail serve``: migrate, then collect, project and serve the API until stopped."""

from __future__ import annotations

import argparse
import os

from ..cli import run_async
from ..config import load_config
from ..logs import configure_logging
from ..server import serve

NAME = "serve"
HELP = "run the collectors, the projections and the HTTP API"
DESCRIPTION = """Apply pending migrations, then poll every configured cluster on its schedule,
keep the projections current and serve the HTTP API until SIGINT or SIGTERM, which stop
everything cleanly (in-flight polls finish or roll back, connections close).

With no [[api.tokens]] configured the API serves anyone, so it may then listen only on a
loopback address; serve refuses anything else and says why.

Logs go to stderr: one JSON object per line, or readable lines on a terminal.

examples:
  pvetrail serve --config /etc/pvetrail.toml
  PVETRAIL_LISTEN=127.0.0.1:9090 pvetrail serve
  PVETRAIL_DATABASE_URL=postgresql://pvetrail@db/pvetrail pvetrail serve
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen", metavar="HOST:PORT", help="address to listen on (default: api.listen)"
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level (default INFO)",
    )


def main(args: argparse.Namespace) -> int:
    environ = dict(os.environ)
    if args.listen:
        environ["PVETRAIL_LISTEN"] = args.listen
    config = load_config(getattr(args, "config", None), environ)
    configure_logging(args.log_level)
    return run_async(serve(config, environ, on_listening=_announce))


def _announce(url: str) -> None:
    print(f"pvetrail: serving on {url}", flush=True)
