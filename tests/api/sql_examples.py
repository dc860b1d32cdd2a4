"""docs/sql.md's SQL, as written there: the examples (each marked ``<!-- example: NAME
BACKEND -->`` before its block), the reader role's manual lines and each view's documented
columns; and the examples' parameters bound as the store's connections take them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SQL_DOC = Path(__file__).resolve().parents[2] / "docs" / "sql.md"

_EXAMPLE = re.compile(r"<!-- example: ([a-z-]+) (sqlite|postgresql) -->\n```sql\n(.*?)```", re.S)
_READER_ROLE = re.compile(r"<!-- reader-role -->\n```sql\n(.*?)```", re.S)
_PARAMETER = {"sqlite": re.compile(r":(\w+)"), "postgresql": re.compile(r":'(\w+)'")}
"""How each backend's examples name a parameter: sqlite3's ``:t``, psql's ``:'t'``."""
_COLUMN_ROW = re.compile(r"^\| ((?:`\w+`(?:, )?)+) \|", re.M)


def examples() -> dict[tuple[str, str], str]:
    """(name, backend) -> the example's SQL."""
    text = SQL_DOC.read_text(encoding="utf-8")
    return {(m[1], m[2]): m[3] for m in _EXAMPLE.finditer(text)}


def reader_role_lines() -> str:
    """The CREATE ROLE and GRANT lines for an administrator to run."""
    found = _READER_ROLE.search(SQL_DOC.read_text(encoding="utf-8"))
    assert found is not None, "docs/sql.md lost its reader-role block"
    return found[1]


def documented_columns() -> dict[str, list[str]]:
    """Each view's columns as its section of docs/sql.md lists them, in order."""
    text = SQL_DOC.read_text(encoding="utf-8")
    views: dict[str, list[str]] = {}
    for part in text.split("\n### `")[1:]:
        name, _, body = part.partition("`")
        if name.startswith("pvetrail_"):
            views[name] = [
                column
                for row in _COLUMN_ROW.findall(body.split("\n## ")[0])
                for column in re.findall(r"`(\w+)`", row)
            ]
    return views


def bind(sql: str, backend: str, values: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """The example with its parameters as ``?`` placeholders (as :class:`eventstore.Connection`
    takes them) and their values in order; one statement, without its semicolon."""
    args: list[Any] = []

    def placeholder(match: re.Match[str]) -> str:
        args.append(values[match[1]])
        return "?"

    statement = _PARAMETER[backend].sub(placeholder, sql).strip()
    return statement.removesuffix(";"), args
