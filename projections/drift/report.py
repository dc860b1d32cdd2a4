"""A drift report, paged like every list: against a baseline time or a desired set.

The whole report is computed at one log position (the projections' checkpoint when the first
page is asked), which every later page keeps through its cursor; items are ordered by id,
field and kind, and a cursor carries the question and the last item's key. A cursor with
different parameters beside it is a 400 naming ``cursor``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from eventstore import EventStore, format_time, parse_time, utcnow

from .. import queries
from ..cursors import make_cursor, read_cursor
from ..errors import InvalidParameterError, UnprocessableError
from .baseline import baseline_differences
from .compare import Ignore
from .conformance import desired_differences
from .models import DriftPage
from .sets import DesiredSets
from .timeline import Timelines

MAX_LIMIT = 1000
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
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidParameterError(f"limit must be 1-{MAX_LIMIT}, not {limit}", param="limit")
    position: int | None = None
    after: tuple[str, str, str] | None = None
    if cursor is not None:
        mode, arg, flag, position, *last = read_cursor(
            cursor, _KIND, (str, str, int, int, str, str, str)
        )
        given = _question(baseline, desired, unmanaged)
        if (given[0] and given[:2] != (mode, arg)) or (unmanaged and not flag):
            raise InvalidParameterError(
                "cursor belongs to another question than these parameters", param="cursor"
            )
        baseline, desired, unmanaged = _from_question(mode, arg, flag)
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
        mode, arg, flag = _question(baseline, desired, unmanaged)
        next_cursor = make_cursor(_KIND, mode, arg, flag, now.position, *found[limit - 1].key)
    return DriftPage(position=now.position, items=page, next_cursor=next_cursor)


def _question(
    baseline: datetime | None, desired: str | None, unmanaged: bool
) -> tuple[str, str, int]:
    if baseline is not None:
        return ("baseline", format_time(baseline), int(unmanaged))
    if desired is not None:
        return ("desired", desired, int(unmanaged))
    return ("", "", int(unmanaged))


def _from_question(mode: str, arg: str, flag: int) -> tuple[datetime | None, str | None, bool]:
    if mode == "baseline":
        try:
            return parse_time(arg), None, bool(flag)
        except ValueError as exc:
            raise InvalidParameterError("cursor is malformed", param="cursor") from exc
    if mode == "desired":
        return None, arg, bool(flag)
    raise InvalidParameterError("cursor is malformed", param="cursor")


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
