"""Desired-state sets: the document, its field forms, and parsing that refuses a bad one whole.

CONTRACT.md "Desired sets": ``{"resources": [{"match": {"id": ID} | {"cluster", "type",
"name"}, "fields": {FIELD: VALUE}, "ignore": [PATTERN]}]}``, as JSON or YAML (PyYAML's
``safe_load`` only: no tags that build objects). ``FIELD`` is a resource field, ``config.KEY``,
or ``config.KEY.SUBKEY`` for one item of a property string. A document that cannot be parsed
is a 400 naming the line; one that parses but is not of this shape, or names a field outside
these forms, is a 422 naming the place. Nothing is stored or changed before it is whole.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Annotated, Any

import msgspec
import yaml

from collectors.values import property_format

from ..errors import InvalidParameterError, UnprocessableError

RESOURCE_FIELDS = ("name", "node", "status", "tags", "pool")
"""The resource fields a desired set may name (CONTRACT.md "Desired sets")."""

_KEY = r"[a-z][a-z0-9_-]*"
FIELD_PATTERN = rf"^(?:{'|'.join(RESOURCE_FIELDS)}|config\.{_KEY}(?:\.{_KEY})?)$"
"""Every field name of the contract's forms (a ``config.KEY.SUBKEY`` also needs KEY to be a
property string: :func:`check_field`)."""
_FIELD = re.compile(FIELD_PATTERN)
_SET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SET_NAME_PATTERN = _SET_NAME.pattern

MAX_VALUES = 500_000
"""The most values (keys, objects, lists, scalars, counted each time they are reached) a
document may expand to. A YAML alias repeats a node without repeating its text, so a 1 MiB body
could otherwise stand for gigabytes ("billion laughs"). Without aliases a 1 MiB body holds
fewer (``{"a":1,"b":1}`` is 6 bytes for 4 values: about 350,000 at most)."""
MAX_TEXT = 4 * 1024 * 1024
"""The most characters of keys and strings a document may expand to (same reason)."""

Value = str | int | float | bool | None | list[str]
"""A desired value: a scalar as Proxmox writes it (``4096`` = ``"4096"``), null for "absent",
or a list of tags."""


def _d(text: str) -> msgspec.Meta:
    return msgspec.Meta(description=text)


class Match(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """How a spec finds its resource: by ``id``, or by ``cluster``, ``type`` and ``name``."""

    id: Annotated[str | None, _d("resource id, e.g. lab/qemu/100")] = None
    cluster: Annotated[str | None, _d("cluster name (with type and name)")] = None
    type: Annotated[str | None, _d("qemu, lxc, node, storage, ... (with cluster and name)")] = None
    name: Annotated[str | None, _d("the resource's name (with cluster and type)")] = None


FieldName = Annotated[str, msgspec.Meta(pattern=FIELD_PATTERN)]


class DesiredResource(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One spec: a resource and the values some of its fields should have."""

    match: Match
    fields: Annotated[
        dict[FieldName, Value],
        _d(
            "field -> value: name, node, status, tags, pool, config.KEY, or config.KEY.SUBKEY "
            "for one item of a property string (config.net0.bridge, config.scsi0.size)"
        ),
    ] = {}
    ignore: Annotated[
        list[str], _d("glob patterns over field names never reported (config.net*.macaddr)")
    ] = []


class DesiredDocument(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A desired-state set (JSON, or YAML with ``Content-Type: application/yaml``)."""

    resources: Annotated[list[DesiredResource], _d("the specs; only the fields named compare")]


def check_set_name(name: str, param: str = "name") -> str:
    """A set's name: letters, digits, ``.``, ``_``, ``-``, 1-128 characters (a file's stem);
    else a 400 naming ``param``."""
    if not _SET_NAME.fullmatch(name):
        raise InvalidParameterError(
            f"{name[:64]!r} is not a desired-set name (letters, digits, '.', '_', '-'; "
            "at most 128 characters, not starting with a punctuation mark)",
            param=param,
        )
    return name


def check_field(field: str, where: str) -> None:
    """422 naming ``field`` unless it is of one of the contract's forms."""
    if not _FIELD.fullmatch(field):
        raise UnprocessableError(
            f"{where}: {field[:128]!r} is not a field a desired set can name (name, node, "
            "status, tags, pool, config.KEY or config.KEY.SUBKEY)",
            param=field[:128],
        )
    parts = field.split(".")
    if len(parts) == 3 and property_format(parts[1]) is None:
        raise UnprocessableError(
            f"{where}: {field!r} names an item of config.{parts[1]}, which is not a property "
            "string (name the whole key instead)",
            param=field,
        )


def parse_document(body: bytes, *, yaml_text: bool) -> DesiredDocument:
    """The document in ``body`` (JSON, or YAML when ``yaml_text``), checked whole.

    400 (:class:`InvalidParameterError`, ``param="body"``) naming the line when it does not
    parse; 422 (:class:`UnprocessableError`) naming the place when it is not a desired set.
    """
    raw = _load(body, yaml_text=yaml_text)
    _check_expansion(raw)
    return check_document(raw)


def check_document(raw: Any) -> DesiredDocument:
    """A parsed document (plain JSON values) checked against the contract's forms."""
    if not isinstance(raw, dict) or "resources" not in raw:
        raise UnprocessableError(
            'a desired set is an object {"resources": [...]}', param="resources"
        )
    specs = raw["resources"]
    if isinstance(specs, list):
        for index, spec in enumerate(specs):
            fields = spec.get("fields") if isinstance(spec, dict) else None
            if isinstance(fields, dict):
                for field, value in fields.items():
                    check_field(str(field), f"resources[{index}].fields")
                    _check_value(str(field), value, f"resources[{index}].fields")
    try:
        document = msgspec.convert(raw, DesiredDocument)
    except msgspec.ValidationError as exc:
        # msgspec names the place as a path: "... - at `$.resources[0].match.id`".
        raise UnprocessableError(f"not a desired set: {exc}", param=_path_of(exc)) from None
    for index, spec in enumerate(document.resources):
        _check_spec(index, spec)
    return document


def _check_value(field: str, value: Any, where: str) -> None:
    if isinstance(value, str | int | float | bool) or value is None:
        return
    if field == "tags" and isinstance(value, list) and all(isinstance(t, str) for t in value):
        return
    wanted = (
        "a list of tags or a string" if field == "tags" else "a string, number, boolean or null"
    )
    raise UnprocessableError(
        f"{where}: {field!r} takes {wanted}, not {type(value).__name__}", param=field
    )


def _check_spec(index: int, spec: DesiredResource) -> None:
    where = f"resources[{index}]"
    match = spec.match
    by_name = (match.cluster, match.type, match.name)
    if match.id is not None:
        parts = match.id.split("/")
        if any(v is not None for v in by_name) or len(parts) < 2 or not all(parts):
            raise UnprocessableError(
                f"{where}.match: give an id such as lab/qemu/100, or cluster, type and name",
                param=f"{where}.match",
            )
    elif any(not v for v in by_name):
        raise UnprocessableError(
            f"{where}.match: give an id, or all of cluster, type and name", param=f"{where}.match"
        )
    for pattern in spec.ignore:
        if not pattern:
            raise UnprocessableError(f"{where}.ignore: an empty pattern", param=f"{where}.ignore")


def _load(body: bytes, *, yaml_text: bool) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body[: exc.start].count(b"\n") + 1
        raise InvalidParameterError(f"line {line}: the body is not UTF-8", param="body") from None
    if yaml_text:
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            where = f"line {mark.line + 1}: " if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise InvalidParameterError(f"{where}not valid YAML: {problem}", param="body") from None
        except RecursionError:
            raise InvalidParameterError("line 1: nested too deeply", param="body") from None
    try:
        # The standard library's parser: its errors carry the line (msgspec's give a byte).
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidParameterError(
            f"line {exc.lineno}: not valid JSON: {exc.msg} (column {exc.colno})", param="body"
        ) from None
    except RecursionError:
        raise InvalidParameterError(
            "line 1: not valid JSON: nested too deeply", param="body"
        ) from None


def _check_expansion(raw: Any) -> None:
    text = 0
    for values, value in enumerate(_walk(raw), 1):
        if isinstance(value, str):
            text += len(value)
        if values > MAX_VALUES or text > MAX_TEXT:
            raise UnprocessableError(
                f"the document expands to more than {MAX_VALUES} values or {MAX_TEXT} "
                "characters (YAML aliases repeat what they name)",
                param="body",
            )


def _walk(value: Any) -> Iterator[Any]:
    stack = [value]
    while stack:
        item = stack.pop()
        yield item
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


_AT = re.compile(r"at `\$(.*)`$")


def _path_of(exc: msgspec.ValidationError) -> str | None:
    found = _AT.search(str(exc))
    return found.group(1).lstrip(".") or None if found is not None else None
