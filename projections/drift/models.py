"""What drift reports and desired-set listings answer: msgspec Structs the API renders and
describes in OpenAPI (each field carries its description)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from eventstore import Actor

from .desired import DesiredDocument


def _d(text: str) -> msgspec.Meta:
    return msgspec.Meta(description=text)


DriftKind = Literal["changed", "created", "removed", "missing", "unmanaged"]


class DriftItem(msgspec.Struct, frozen=True, kw_only=True):
    """One difference from the baseline time or the desired set."""

    id: Annotated[
        str,
        _d(
            "resource id; for a spec matched by name that matches nothing, "
            "{cluster}/{type}?name={name}"
        ),
    ]
    kind: Annotated[
        DriftKind,
        _d(
            "changed: a field differs; created/removed: since the baseline; missing: in the "
            "desired set, not in Proxmox; unmanaged: a guest the set does not cover"
        ),
    ]
    field: Annotated[str | None, _d("the field that differs (changed only)")]
    expected: Annotated[Any, _d("its value at the baseline, or the desired value")]
    actual: Annotated[Any, _d("its value now")]
    since: Annotated[
        datetime | None,
        _d(
            "when it last changed away from the expected value (observed_at of that event); "
            "null when it never had that value in the log"
        ),
    ]
    actor: Annotated[Actor | None, _d("who made that change, when the Proxmox task log says")]


class DriftPage(msgspec.Struct, frozen=True, kw_only=True):
    """A page of a drift report, ordered by id, then field."""

    position: Annotated[
        int, _d("the log position 'now' is read at; every page of one report shares it")
    ]
    items: Annotated[list[DriftItem], _d("the differences")]
    next_cursor: Annotated[str | None, _d("pass back as cursor for the next page")] = None


class DesiredSetInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A desired-state set as ``GET /desired`` lists it."""

    name: Annotated[str, _d("the set's name")]
    source: Annotated[
        Literal["stored", "file"],
        _d("stored with PUT /desired/{name} (wins over a file of the same name), or a file"),
    ]
    stored_by: Annotated[
        str | None, _d("the token that stored it (anonymous without tokens); null for a file")
    ]
    stored_at: Annotated[datetime, _d("when it was stored, or the file's modification time")]
    resources: Annotated[int, _d("how many specs it holds")]
    file: Annotated[str | None, _d("the file's name in desired_dir")] = None
    error: Annotated[str | None, _d("why the file is not a valid set (it is then not used)")] = None


class DesiredSetList(msgspec.Struct, frozen=True, kw_only=True):
    """Every desired-state set, by name."""

    items: list[DesiredSetInfo]


class DesiredSet(msgspec.Struct, frozen=True, kw_only=True):
    """One desired-state set with its document."""

    name: str
    source: Literal["stored", "file"]
    stored_by: str | None
    stored_at: datetime
    document: DesiredDocument
    file: str | None = None
