"""Clock offsets from Date headers: bounded by the round trip, narrowed, reset when set."""

from __future__ import annotations

from datetime import UTC, datetime

from collectors.clocks import Clocks, parse_date


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def test_offsets_are_bounded_by_the_round_trip_narrowed_and_reset_when_the_clock_is_set() -> None:
    clocks = Clocks()
    assert clocks.offset("pve1").estimate == 0.0  # nothing known
    clocks.record("pve1", 1300.0, _at(1000.2), _at(1000.4))  # 300 s ahead
    first = clocks.offset("pve1")
    assert (round(first.low, 6), round(first.high, 6)) == (299.6, 300.8)
    clocks.record("pve1", 1300.0, _at(1000.8), _at(1000.9))  # [299.1, 300.2]: narrows high
    clocks.record("pve1", 1301.0, _at(1000.95), _at(1001.1))  # [299.9, 301.05]: narrows low
    assert round(clocks.offset("pve1").estimate, 6) == 300.05
    assert round(clocks.offset("pve1").error, 6) == 0.15
    clocks.record("pve1", 1301.0, _at(1000.0), _at(1002.0))  # wider: changes nothing
    assert round(clocks.offset("pve1").error, 6) == 0.15
    clocks.record("pve1", 1002.0, _at(1002.0), _at(1002.1))  # set right: starts over
    assert -0.2 <= clocks.offset("pve1").estimate <= 1.0
    assert clocks.offset("pve2") == clocks.offset("pve2")  # unknown node: the API host's
    clocks.record("", 900.0, _at(1000.0), _at(1000.0))
    assert round(clocks.offset("pve2").low) == -100
    assert parse_date("Sat, 05 Dec 2026 21:50:30 GMT") == 1796507430.0
    assert parse_date("not a date") is None
