"""The drift endpoints: the report, and desired-state sets stored and listed.

Each handler parses, calls one function of :mod:`projections.drift`, renders; what a value
means (a baseline in the future, an unknown set, a field outside the contract's forms) is the
read side's to judge.
"""

from __future__ import annotations

from aiohttp import web

from projections.drift import ANONYMOUS, DesiredSetList, DriftPage, drift, parse_document

from .errors import BadParameterError
from .middleware import JSON_BODIES, YAML_BODIES
from .params import optional_text, optional_time, parse_limit
from .readers import Asked, ReadSide
from .responses import render
from .services import services_of

BODY_TYPES = (*sorted(JSON_BODIES), *sorted(YAML_BODIES))
"""The media types a desired set may be sent as (the middleware refuses others with 415)."""


async def report(side: ReadSide, asked: Asked) -> DriftPage:
    """What differs from the baseline time or the named desired set (a reader, see
    :mod:`api.readers`)."""
    query = asked.query
    return await drift(
        side.store,
        baseline=optional_time(query, "baseline"),
        desired=optional_text(query, "desired"),
        unmanaged=_flag(query.get("unmanaged"), "unmanaged"),
        sets=side.desired,
        ignore=side.drift_ignore,
        limit=parse_limit(query),
        cursor=optional_text(query, "cursor"),
    )


async def put_desired(request: web.Request) -> web.Response:
    """Store a desired-state set (JSON, or YAML as ``application/yaml``); a bad one is not
    stored and nothing changes."""
    yaml_text = request.content_type in YAML_BODIES
    services = services_of(request)
    document = parse_document(await request.read(), yaml_text=yaml_text)
    token = services.auth.identify(request.headers.get("Authorization"))
    stored = await services.desired.put(
        request.match_info["name"], document, token.name if token is not None else ANONYMOUS
    )
    return render(stored)


async def list_desired(side: ReadSide, asked: Asked) -> DesiredSetList:
    """Every desired-state set, stored or from the configuration's directory (a reader, see
    :mod:`api.readers`)."""
    return DesiredSetList(items=await side.desired.list())


async def get_desired(request: web.Request) -> web.Response:
    """One desired-state set with its document."""
    return render(await services_of(request).desired.get(request.match_info["name"]))


def _flag(text: str | None, param: str) -> bool:
    if text is None or text == "false":
        return False
    if text == "true":
        return True
    raise BadParameterError(param, f"{text[:64]!r} is not true or false")
