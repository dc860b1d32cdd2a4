"""A drift report, paged like every list: against a baseline time or a desired set.

The whole report is computed at one log position (the projections' checkpoint when the first
page is asked), which every later page keeps through its cursor; items are ordered by id,
field and kind, and a cursor (signed: :mod:`projections.cursors`) carries the question and
the last item's key. A parameter beside it that differs from the cursor's is a 400 naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from eventstore import EventStore, format_time, parse_time, utcnow

from .. import queries
from ..cursors import check_limit, cursor_key, make_cursor, read_cursor
from ..errors import InvalidParameterError, UnprocessableError
from .baseline import baseline_differences
from .compare import Ignore
from .conformance import desired_differences
from .models import DriftPage
from .sets import DesiredSets
from .timeline import Timelines

_KIND = "drift"


async def drift(
    store: EventStore,
    *,
    baseline: datetime | None = None,
    desired: str | None = None,
    unmanaged: bool = False,
    sets: DesiredSets | None = None,
    ignore: Sequence[str] = (),
    limit: int = 100,
    cursor: str | None = None,
) -> DriftPage:
    """What differs now from the baseline time or from the named desired set.

    ``ignore`` holds the configuration's ``drift_ignore`` patterns; ``unmanaged`` (desired
    sets only) adds each guest no spec covers; ``sets`` is where desired sets are found.
    """
    check_limit(limit)
    key = await cursor_key(store)
    query: dict[str, str | int | bool | None] = {
        "baseline": format_time(baseline) if baseline is not None else None,
        "desired": desired,
        "unmanaged": unmanaged or None,
    }
    position: int | None = None
    after: tuple[str, str, str] | None = None
    if cursor is not None:
        query, (position, *last) = read_cursor(key, cursor, _KIND, query, (int, str, str, str))
        baseline, desired, unmanaged = _from_query(query)
        after = (last[0], last[1], last[2])
    _check_question(baseline, desired, unmanaged)
    now = await queries.inventory(store, position=position, limit=None)
    rules = Ignore(ignore)
    if baseline is not None:
        then = await queries.inventory(store, at=baseline, limit=None)
        found = baseline_differences(then.items, now.items, rules)
    else:
        assert desired is not None
        wanted = await (sets or DesiredSets(store)).get(desired, param="desired")
        found = desired_differences(wanted.document, now.items, rules, unmanaged=unmanaged)
    if after is not None:
        found = [difference for difference in found if difference.key > after]
    # The log is read only for the page: when and by whom each of its items departed.
    timelines = Timelines(store, now.position)
    page = [await timelines.item(difference) for difference in found[:limit]]
    next_cursor = None
    if len(found) > limit:
        next_cursor = make_cursor(key, _KIND, query, now.position, *found[limit - 1].key)
    return DriftPage(position=now.position, items=page, next_cursor=next_cursor)


def _from_query(query: dict[str, Any]) -> tuple[datetime | None, str | None, bool]:
    """The question a cursor carries."""
    baseline, desired = query.get("baseline"), query.get("desired")
    try:
        when = parse_time(baseline) if isinstance(baseline, str) else None
    except ValueError as exc:  # signed, so only an older format of ours
        raise InvalidParameterError("cursor is malformed", param="cursor") from exc
    return when, desired if isinstance(desired, str) else None, bool(query.get("unmanaged"))


def _check_question(baseline: datetime | None, desired: str | None, unmanaged: bool) -> None:
    if (baseline is None) == (desired is None):
        raise InvalidParameterError("give baseline or desired (one of them)", param="baseline")
    if baseline is not None:
        if baseline.tzinfo is None:
            raise InvalidParameterError("baseline needs a UTC offset", param="baseline")
        if baseline > utcnow():
            raise UnprocessableError(
                f"baseline {format_time(baseline)} is in the future", param="baseline"
            )
        if unmanaged:
            raise InvalidParameterError(
                "unmanaged applies to a desired set, not to a baseline", param="unmanaged"
            )
