"""Drift reports: what differs from a baseline time or a desired state, since when, by whom.

Read-side logic over the read side's public queries (:mod:`projections.queries`) and the one
home of Proxmox value rules (:mod:`collectors.values`):

- :mod:`.desired`: the desired-set document, its field forms, parsing JSON and YAML;
- :mod:`.sets`: where sets come from (the database, the configuration's ``desired_dir``);
- :mod:`.compare`: field values and their comparison, ignore patterns;
- :mod:`.timeline`: when a value last changed away from the expected one, and who did it;
- :mod:`.baseline` and :mod:`.conformance`: the items against a time and against a set;
- :mod:`.report`: the paged report, :func:`drift`.
"""

from __future__ import annotations

from .desired import DesiredDocument, parse_document
from .models import DesiredSet, DesiredSetInfo, DesiredSetList, DriftItem, DriftPage
from .report import drift
from .sets import ANONYMOUS, DesiredSets

__all__ = [
    "ANONYMOUS",
    "DesiredDocument",
    "DesiredSet",
    "DesiredSetInfo",
    "DesiredSetList",
    "DesiredSets",
    "DriftItem",
    "DriftPage",
    "drift",
    "parse_document",
]
