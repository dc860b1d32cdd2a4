"""``pvetrail history ID``: a resource's changes, oldest first."""

from __future__ import annotations

import argparse
from typing import Any

from collectors.values import is_disk_key, parse_property
from eventstore import EventStore
from projections import queries
from projections.models import HistoryEntry, HistoryPage

from ..terminal import (
    add_json,
    add_wide,
    ask,
    print_json,
    run,
    show_change,
    show_time,
    show_value,
    table,
    time_arg,
)

NAME = "history"
HELP = "list a resource's changes, oldest first, with who and when"
DESCRIPTION = """List every change of one resource, oldest first: the event, when it was
observed (and the previous observation that did not show it yet, so the change happened
between the two), who did it as far as the Proxmox task log says, and each field's old and
new value, one line per field (long values cut; --wide shows them whole, --json prints
everything). A discovery is summed up in one line: type, name, node, status, key figures.

exit codes: 0 listed, 1 no such resource was ever seen, 2 the question could not be asked.

examples:
  pvetrail history lab/qemu/100
  pvetrail history lab/qemu/100 --since 2026-11-01T00:00:00Z --until 2026-11-02T00:00:00Z
  pvetrail history lab/lxc/200 --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="resource id, e.g. lab/qemu/100")
    parser.add_argument("--since", type=time_arg, metavar="T", help="changes observed after T")
    parser.add_argument("--until", type=time_arg, metavar="T", help="changes observed up to T")
    parser.add_argument(
        "--limit", type=int, default=1000, metavar="N", help="at most N changes (1000)"
    )
    add_wide(parser)
    add_json(parser)


def main(args: argparse.Namespace) -> int:
    return run(lambda: _run(args))


async def collect(store: EventStore, args: argparse.Namespace) -> list[HistoryEntry]:
    """Every page up to ``--limit`` entries."""
    items: list[HistoryEntry] = []
    cursor: str | None = None
    while len(items) < args.limit:
        page: HistoryPage = await queries.history(
            store,
            args.id,
            since=args.since,
            until=args.until,
            limit=min(1000, args.limit - len(items)),
            cursor=cursor,
        )
        items += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    return items


async def _run(args: argparse.Namespace) -> int:
    if args.limit < 1:
        print("pvetrail: --limit must be at least 1")
        return 2
    items = await ask(args, lambda store: collect(store, args))
    if args.json:
        print_json({"items": items})
        return 0
    rows: list[list[str]] = []
    for e in items:
        first = [str(e.position), show_time(e.observed_at), show_time(e.observed_after), e.event]
        first.append(_actor(e.actor))
        lines = _change_lines(args.id, e, wide=args.wide)
        rows.append([*first, lines[0]])
        rows += [["", "", "", "", "", line] for line in lines[1:]]
    headers = ["POSITION", "OBSERVED_AT", "NOT_BEFORE", "EVENT", "ACTOR", "CHANGE"]
    print(table(headers, rows, wide=args.wide, style=_style))
    return 0


_EVENT_STYLES = {"discovered": "green", "removed": "red"}


def _style(column: int, text: str) -> str | None:
    if column == 3:
        return _EVENT_STYLES.get(text, "cyan")
    return "dim" if column in (1, 2) else None


def _change_lines(resource_id: str, entry: HistoryEntry, *, wide: bool) -> list[str]:
    """A discovery as one summary line; any other event one line per changed field."""
    if entry.event == "discovered":
        return [summary(resource_id, {c.field: c.new for c in entry.changes})]
    lines = [show_change(c.field, c.old, c.new, wide=wide) for c in entry.changes]
    return lines or ["-"]


def summary(resource_id: str, state: dict[str, Any]) -> str:
    """``qemu web on pve1, running, 2 cores, 2048 MiB, disks scsi0 32G, tags prod (40 fields)``:
    what a discovery found, in the figures an operator looks at first."""
    parts = resource_id.split("/")
    kind = parts[1] if len(parts) > 2 else "resource"
    head = kind
    if state.get("name") is not None:
        head += f" {show_value(state['name'])}"
    if state.get("node") is not None and kind != "node":
        head += f" on {show_value(state['node'])}"
    figures = [head]
    if state.get("status") is not None:
        figures.append(show_value(state["status"]))
    if state.get("config.cores") is not None:
        sockets = state.get("config.sockets")
        cores = show_value(state["config.cores"])
        figures.append(
            f"{sockets}x{cores} cores" if sockets not in (None, 1, "1") else f"{cores} cores"
        )
    if state.get("config.memory") is not None:
        figures.append(f"{show_value(state['config.memory'])} MiB")
    disks = [
        f"{field.removeprefix('config.')} {size}"
        for field, value in state.items()
        if field.startswith("config.")
        and is_disk_key(field.removeprefix("config."))
        and (size := parse_property(field.removeprefix("config."), value).get("size"))
    ]
    if disks:
        figures.append("disks " + " ".join(disks))
    tags = state.get("tags")
    if tags:
        figures.append("tags " + (";".join(tags) if isinstance(tags, list) else show_value(tags)))
    if state.get("pool") is not None:
        figures.append(f"pool {show_value(state['pool'])}")
    return ", ".join(figures) + f" ({len(state)} fields)"


def _actor(actor: Any) -> str:
    if actor is None:
        return "-"
    return str(actor.token or actor.user or "-")
