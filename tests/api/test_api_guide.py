"""docs/guide.md's configuration reference lists every key of the code's config Structs,
with its default, and nothing else: the reference cannot go stale."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

from api.config import ApiConfig, Config, TokenConfig
from collectors.config import ClusterConfig

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide.md"
SECTIONS: dict[str, type[msgspec.Struct]] = {
    "Top level": Config,
    "`[api]`": ApiConfig,
    "`[[api.tokens]]`": TokenConfig,
    "`[[clusters]]`": ClusterConfig,
}
NESTED = {"api", "clusters", "tokens"}
"""Keys documented as tables of their own, not as rows."""
_ROW = re.compile(r"^\| `([a-z_]+)` \| ([^|]+) \|", re.MULTILINE)


def documented() -> dict[str, dict[str, str]]:
    """Each reference section's rows: key -> default as written."""
    text = GUIDE.read_text(encoding="utf-8")
    reference = text.split("\n## Configuration reference\n", 1)[1].split("\n## ", 1)[0]
    sections: dict[str, dict[str, str]] = {}
    for part in reference.split("\n### ")[1:]:
        heading, _, body = part.partition("\n")
        sections[heading.strip()] = {m[1]: m[2].strip() for m in _ROW.finditer(body)}
    return sections


def toml_default(field: msgspec.structs.FieldInfo) -> str:
    """The default as the guide writes it: TOML in backticks, ``none`` or ``required``."""
    if field.required:
        return "required"
    value: Any = (
        field.default if field.default is not msgspec.NODEFAULT else field.default_factory()
    )
    if value is None:
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, list):
        return f"`{msgspec.json.encode(value).decode()}`"
    return f"`{value}`"


def test_the_reference_has_every_section() -> None:
    assert set(documented()) == set(SECTIONS)


@pytest.mark.parametrize("heading", list(SECTIONS))
def test_every_key_is_documented_with_its_default(heading: str) -> None:
    struct = SECTIONS[heading]
    rows = documented()[heading]
    fields = {f.encode_name: f for f in msgspec.structs.fields(struct) if f.name not in NESTED}
    assert set(rows) == set(fields), f"{heading}: document exactly the keys of {struct.__name__}"
    for key, field in fields.items():
        assert rows[key] == toml_default(field), f"{heading} {key}"


def test_the_guide_links_the_other_docs() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    docs = GUIDE.parent
    for page in sorted(docs.glob("*.md")) + sorted(docs.glob("*.toml")):
        if page != GUIDE:
            assert f"]({page.name})" in text, f"docs/guide.md does not link {page.name}"
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        assert (docs / target).exists(), f"docs/guide.md links {target}, which does not exist"
