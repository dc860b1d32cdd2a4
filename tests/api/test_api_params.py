"""Parsing of raw request strings: what is malformed is a 400 naming the parameter."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from api.errors import BadParameterError
from api.params import parse_int, parse_time, split_resource_path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01T14:03:00Z", datetime(2026, 11, 1, 14, 3, tzinfo=UTC)),
        ("2026-11-01t14:03:00z", datetime(2026, 11, 1, 14, 3, tzinfo=UTC)),
        ("2026-11-01T16:03:00+02:00", datetime(2026, 11, 1, 14, 3, tzinfo=UTC)),
        ("2026-11-01 14:03:00.5Z", datetime(2026, 11, 1, 14, 3, 0, 500000, tzinfo=UTC)),
        ("2026-11-01T14:03:00.123456789Z", datetime(2026, 11, 1, 14, 3, 0, 123456, tzinfo=UTC)),
    ],
)
def test_rfc3339_times_parse_to_utc(text: str, expected: datetime) -> None:
    assert parse_time("at", text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "2026-11-01",
        "2026-11-01T14:03:00",  # no offset
        "2026-13-01T14:03:00Z",
        "2026-02-30T14:03:00Z",
        "2026-11-01T24:00:00Z",
        "2026-11-01T14:03:60Z",
        "2026-11-01T14:03:00+24:00",
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "2026-W44-1T00:00:00Z",
        "2026-11-01T14:03:00Z\n",
        "x" * 10000,
    ],
)
def test_malformed_times_name_the_parameter(text: str) -> None:
    with pytest.raises(BadParameterError) as caught:
        parse_time("since", text)
    assert caught.value.param == "since"
    assert caught.value.status == 400
    assert len(caught.value.detail) < 200  # a huge value is not echoed whole


@pytest.mark.parametrize("text", ["", "-1", "1.5", "1e3", "0x10", " 1", "99999999999999999999"])
def test_malformed_integers(text: str) -> None:
    with pytest.raises(BadParameterError) as caught:
        parse_int("position", text)
    assert caught.value.param == "position"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("lab/qemu/100", ("lab/qemu/100", None)),
        ("lab%2Fqemu%2F100", ("lab/qemu/100", None)),
        ("lab%2fqemu%2f100", ("lab/qemu/100", None)),
        ("lab/qemu/100/history", ("lab/qemu/100", "history")),
        ("lab%2Fqemu%2F100/history", ("lab/qemu/100", "history")),
        ("lab/qemu/100/rollback-targets", ("lab/qemu/100", "rollback-targets")),
        ("lab/cluster", ("lab/cluster", None)),
        ("lab/storage/pve1/local-lvm", ("lab/storage/pve1/local-lvm", None)),
        # An id ending in a sub-resource word is reached encoded.
        ("lab%2Fnode%2Fhistory", ("lab/node/history", None)),
        ("lab%2Fnode%2Fhistory/history", ("lab/node/history", "history")),
        (
            "lab/backup/local/backup%2Fvzdump-qemu-100.vma.zst",
            ("lab/backup/local/backup/vzdump-qemu-100.vma.zst", None),
        ),
        ("lab/snapshot/qemu/100/before%20upgrade", ("lab/snapshot/qemu/100/before upgrade", None)),
    ],
)
def test_resource_paths(raw: str, expected: tuple[str, str | None]) -> None:
    assert split_resource_path(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["lab", "history", "lab//100", "lab/qemu/", "LAB/qemu/100", "lab%2F", "lab/%FF", "lab/a%00b"],
)
def test_malformed_resource_ids(raw: str) -> None:
    with pytest.raises(BadParameterError) as caught:
        split_resource_path(raw)
    assert caught.value.param == "id"
