"""How far each Proxmox VE node's clock is from ours, from the ``Date`` header of its answers.

Task times (``starttime``, ``endtime``) come from the nodes' clocks; observation windows from
ours. A node's answer carries ``Date`` (whole seconds, its clock) written between the moment
we sent the request and the moment the answer arrived, so one answer bounds the offset
(node minus ours) to ``[date - received, date + 1 - sent]``: no tighter than one second plus
the round trip. The bounds of every answer are intersected; when a new answer's bounds do not
meet the intersection (the node's clock was set, or drifted out of it), that answer starts
over. Kept in O(1) per answer: this runs for every request of every poll.

On a real cluster pve-http-server writes ``Date`` in its one response routine, proxied
answers included, so every answer carries the clock of the node pvetrail talks to; answers
to ``/nodes/{node}/...`` are kept per node all the same, so a cluster reached through each
node's own address, or a proxy that says otherwise, is measured per node.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

WARN_S = 5.0
"""An offset past this many seconds is reported as a warning in ``/readyz`` and the logs."""


@dataclass(frozen=True)
class Offset:
    """A node's clock minus ours, in seconds, as an interval: ``low <= offset <= high``."""

    low: float
    high: float

    @property
    def estimate(self) -> float:
        """The middle of the interval."""
        return (self.low + self.high) / 2

    @property
    def error(self) -> float:
        """Half the interval's width: the estimate is off by no more than this."""
        return (self.high - self.low) / 2


@lru_cache(maxsize=64)  # one value a second, shared by every answer of that second
def parse_date(value: str | None) -> float | None:
    """An HTTP ``Date`` header as epoch seconds, or None when absent or unreadable."""
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


class Clocks:
    """Per node (``""`` for answers not addressed to a node), the offset of its clock."""

    def __init__(self) -> None:
        self._offsets: dict[str, Offset] = {}

    def record(self, node: str, date: float, sent: datetime, received: datetime) -> None:
        """One answer: its ``Date`` (epoch seconds) and when we sent and received it."""
        low, high = date - received.timestamp(), date + 1.0 - sent.timestamp()
        known = self._offsets.get(node)
        if known is not None and low <= known.low and high >= known.high:
            return  # says nothing new (the usual case)
        if known is not None and low <= known.high and high >= known.low:
            low, high = max(low, known.low), min(high, known.high)
        # else: disjoint, the clock was set: the older answers no longer say anything
        self._offsets[node] = Offset(low, high)

    def offset(self, node: str) -> Offset:
        """The node's offset; the API host's when the node has none; zero when nothing is known."""
        return self._offsets.get(node) or self._offsets.get("") or Offset(0.0, 0.0)

    def known(self) -> dict[str, Offset]:
        """Every node's measured offset (``""``: answers not addressed to a node)."""
        return dict(self._offsets)
