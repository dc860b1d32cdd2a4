"""``serve``'s composition: migrate, fingerprint key, collectors, projections, the app, signals.

:func:`serve` is what ``pvetrail serve`` (and ``pvetrail demo``) run: it builds every part from
one :class:`~api.config.Config`, serves until SIGINT or SIGTERM, then stops in order: the HTTP
site stops taking requests, the collectors let in-flight polls finish (or roll back), the
projection runner rolls back its batch in flight, and the store closes its connections.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Mapping, Sequence

from collectors.secrets import check_key_env, load_fingerprint_key
from collectors.service import CollectorService
from eventstore import mask_url, open_store
from projections.runner import ProjectionRunner

from .app import bound_port, create_app, run_site
from .auth import check_listen, resolve_tokens
from .config import Config, ConfigError, split_listen
from .middleware import LOOPBACK_NAMES
from .migration import migrate_database
from .webhooks import resolve_secret

log = logging.getLogger("pvetrail.serve")

Listening = Callable[[str], None]
"""Called with the base URL once the API answers."""


async def serve(
    config: Config,
    environ: Mapping[str, str],
    *,
    on_listening: Listening | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Run until ``stop`` is set or SIGINT/SIGTERM arrives; the exit code (0: stopped cleanly)."""
    host, port = split_listen(config.api.listen)
    tokens = resolve_tokens(config.api.tokens, environ)
    webhook_secret = resolve_secret(config.api.webhook_secret_env, environ)
    check_listen(host, tokens)  # before touching anything: refuse early, say why
    if config.fingerprint_key_env:
        check_key_env(config.fingerprint_key_env, environ)
    for cluster in config.clusters:
        problem = cluster.unset_secret(environ)
        if problem is not None:
            raise ConfigError(problem)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, _on_signal, stop, signum)
    store = await open_store(config.database_url)
    try:
        status, _ = await migrate_database(store, config)
        if status.applied:
            log.info("applied %d migration(s)", len(status.applied))
        key = await load_fingerprint_key(store, config.fingerprint_key_env, environ)
        collectors = CollectorService(store, config.clusters, fingerprint_key=key, environ=environ)
        app = create_app(
            store,
            tokens=tokens,
            collectors=collectors,
            projections=ProjectionRunner(store),
            clusters=[c.name for c in config.clusters],
            desired_dir=config.desired_dir,
            drift_ignore=config.drift_ignore,
            hosts=answered_hosts(host, config.api.allowed_hosts) if not tokens else None,
            webhook_secret=webhook_secret,
        )
        try:
            runner = await run_site(app, host, port)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        try:
            shown = f"[{host}]" if ":" in host else host
            url = f"http://{shown}:{bound_port(runner)}"
            log.info(
                "serving %s on %s (database %s, clusters: %s)",
                "the API",
                url,
                mask_url(store.url),
                ", ".join(c.name for c in config.clusters) or "none",
                extra={"url": url},
            )
            if on_listening is not None:
                on_listening(url)
            await stop.wait()
            log.info("stopping")
        finally:
            # Stops the site, then (the app's cleanup) the collectors and the projection runner.
            await runner.cleanup()
    finally:
        await store.close()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    log.info("stopped")
    return 0


def answered_hosts(listen_host: str, allowed: Sequence[str]) -> list[str]:
    """The ``Host`` names an API without tokens answers: its listen address, the loopback
    names (no other site can own them: a rebinding page has a name of its own) and the
    configured ones."""
    return [listen_host.strip("[]"), *LOOPBACK_NAMES, *allowed]


def _on_signal(stop: asyncio.Event, signum: int) -> None:
    log.info("received %s", signal.Signals(signum).name)
    stop.set()
