"""Fixtures of the rollback tests: the collector tests' fakepve (served over HTTPS, driven
through proxmoxer) and collectors on a real store, on each backend."""

from __future__ import annotations

from tests.collectors.conftest import (  # noqa: F401 - re-exported fixtures
    make_collector,
    operator,
    pve_pki,
    served,
)
