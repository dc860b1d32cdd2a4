"""Fixtures of the collector tests: a seeded fakepve over HTTPS and collectors on a real store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from proxmoxer import ProxmoxAPI

from collectors.service import CollectorService
from eventstore import EventStore
from tests.collectors.pve_proxy import PveProxy
from tests.pve import HOST, ServedPve, make_pki, seed_mixed


@pytest.fixture(scope="session")
def pve_pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """One certificate (cert file, key file) for every fake of the session."""
    return make_pki(Path(tmp_path_factory.mktemp("pve-pki")))


@pytest.fixture
def served(pve_pki: tuple[str, str]) -> Iterator[ServedPve]:
    """A fresh fakepve seeded with :func:`tests.pve.seed_mixed`, served for one test."""
    from fakepve import FakePve

    pve = FakePve(host=HOST, port=0)
    seed_mixed(pve)
    serving = ServedPve(pve, *pve_pki)
    try:
        yield serving
    finally:
        serving.stop()


@pytest.fixture
def operator(served: ServedPve) -> Iterator[Any]:
    """A proxmoxer client logged in as root@pam: the 'other person' who changes the cluster."""
    api = ProxmoxAPI(
        HOST,
        port=served.pve.port,
        user="root@pam",
        password="secret",
        verify_ssl=served.cafile,
        timeout=10,
    )
    yield api
    api._store["session"].close()


CollectorFactory = Callable[..., CollectorService]


@pytest.fixture
async def make_collector(store: EventStore, served: ServedPve) -> AsyncIterator[CollectorFactory]:
    """Build collectors on the test's store for the served fake; all stopped at the end."""
    made: list[CollectorService] = []

    def build(
        target: EventStore | None = None, key: bytes = b"test-key", **overrides: Any
    ) -> CollectorService:
        service = CollectorService(
            target or store,
            [served.cluster_config("lab", **overrides)],
            fingerprint_key=key,
            environ=served.environ,
        )
        made.append(service)
        return service

    yield build
    for service in made:
        await service.stop()


@pytest.fixture
def proxy(served: ServedPve, pve_pki: tuple[str, str]) -> Iterator[PveProxy]:
    """A rewriting proxy in front of the served fake (see :mod:`tests.collectors.pve_proxy`)."""
    serving = PveProxy(served, *pve_pki)
    try:
        yield serving
    finally:
        serving.stop()
