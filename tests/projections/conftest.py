"""Fixtures of the projection tests: the collector tests' fakepve and collectors, reused for
the end-to-end test (served over HTTPS, driven through proxmoxer as in production)."""

from __future__ import annotations

from tests.collectors.conftest import (  # noqa: F401 - re-exported fixtures
    make_collector,
    operator,
    pve_pki,
    served,
)
