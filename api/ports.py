"""What the app needs of the services it runs: the collectors and the projection runner.

The app depends on these protocols, not on ``collectors`` or ``projections.runner``, so that a
test can run it with a collector of its own and ``serve`` wires in the real ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class CollectorsPort(Protocol):
    """What the app needs of ``collectors.service.CollectorService``."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def sync(
        self, cluster: str, *, deep: bool = False, node: str | None = None, vmid: int | None = None
    ) -> Any: ...

    def health(self) -> Mapping[str, Any]: ...


class ProjectionsPort(Protocol):
    """What the app needs of ``projections.runner.ProjectionRunner``."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def lag(self) -> Any: ...

    def problem(self) -> str | None:
        """Why the projections are not following the log (None while they are)."""
        ...
