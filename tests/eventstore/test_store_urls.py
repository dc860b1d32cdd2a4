"""Database URLs: which backend, and never a password in a message."""

from __future__ import annotations

import pytest

from eventstore import UnsupportedDatabaseURLError, dialect_of, mask_url
from eventstore.postgres import split_url


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u:secret@db:5432/x", "postgresql://u:***@db:5432/x"),
        ("postgresql://u:se@cr:et@db/x?schema=s", "postgresql://u:***@db/x?schema=s"),
        ("postgresql://u:a/b@db/x", "postgresql://u:***@db/x"),
        ("postgres://u:pw@[::1]:5432/x", "postgres://u:***@[::1]:5432/x"),
        (
            "postgresql://u@db/x?password=secret&schema=s",
            "postgresql://u@db/x?password=***&schema=s",
        ),
        ("postgresql://db/x", "postgresql://db/x"),
        ("sqlite:///data/pvetrail.db", "sqlite:///data/pvetrail.db"),
    ],
)
def test_mask_url_hides_every_password(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert "secret" not in mask_url(url)


def test_dialect_of_and_bad_urls() -> None:
    assert dialect_of("sqlite:///x.db") == "sqlite"
    assert dialect_of("postgresql://u@h/db") == "postgresql"
    assert dialect_of("postgres://u@h/db") == "postgresql"
    with pytest.raises(UnsupportedDatabaseURLError, match=r"mysql://u:\*\*\*@h/db"):
        dialect_of("mysql://u:pw@h/db")


def test_the_schema_parameter_is_ours_and_stripped() -> None:
    assert split_url("postgresql://u@h/db?schema=t_1&sslmode=disable") == (
        "postgresql://u@h/db?sslmode=disable",
        "t_1",
    )
    assert split_url("postgresql://u@h/db") == ("postgresql://u@h/db", None)
    with pytest.raises(UnsupportedDatabaseURLError, match="letters, digits"):
        split_url("postgresql://u@h/db?schema=x;drop")
