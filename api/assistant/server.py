"""The MCP server on stdio: the tools of :mod:`.tools`, answered by a local or remote source.

The only module that imports the ``mcp`` SDK (an optional extra); ``pvetrail mcp`` imports it
only when it runs. stdout carries the protocol alone: logs go to stderr.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import mcp.types as types
import msgspec
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from ..app import package_version
from ..errors import BadParameterError
from ..middleware import refusal
from ..readers import Asked
from .tools import BY_NAME, TOOLS, Answer, Refused, ToolSpec, question

log = logging.getLogger("pvetrail.mcp")

INSTRUCTIONS = (
    "pvetrail records every observed change of a Proxmox VE cluster in an append-only log. "
    "These tools only read it; none changes anything, in pvetrail or in Proxmox. Times are "
    "RFC 3339 with an offset (2026-11-01T14:03:00Z); resource ids are {cluster}/{pve-id} "
    "(lab/qemu/100, lab/node/pve1); a change observed at T happened between its "
    "observed_after and T. Lists are paged: pass next_cursor back as cursor."
)

READ_ONLY = types.ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)


class Source(Protocol):
    """What answers the tools: :class:`.local.LocalSource` or :class:`.remote.RemoteSource`."""

    async def answer(self, tool: ToolSpec, asked: Asked) -> Answer: ...


def listing() -> list[types.Tool]:
    """Every tool with its description and input schema, marked read-only."""
    return [
        types.Tool(
            name=tool.name,
            description=tool.description,
            input_schema=tool.input_schema(),
            annotations=READ_ONLY,
        )
        for tool in TOOLS
    ]


async def call(source: Source, name: str, arguments: dict[str, Any] | None) -> types.CallToolResult:
    """One tool call: the API's JSON as text (and structured), or a tool error saying why."""
    tool = BY_NAME.get(name)
    if tool is None:
        return _error(f"no tool named {name!r} (known: {', '.join(BY_NAME)})")
    try:
        answer = await source.answer(tool, _question(tool, arguments))
    except Refused as exc:
        return _error(exc.detail, exc.problem)
    except Exception:
        log.exception("tool %s failed", name)
        return _error(f"{name} failed unexpectedly; pvetrail mcp's log (stderr) has the details")
    content: list[types.ContentBlock] = [types.TextContent(text=answer.body.decode())]
    content += [types.TextContent(text=note) for note in answer.notes]
    return types.CallToolResult(
        content=content,
        structured_content=msgspec.json.decode(answer.body),
        _meta=answer.meta or None,
    )


def _question(tool: ToolSpec, arguments: dict[str, Any] | None) -> Asked:
    try:
        return question(tool, arguments)
    except BadParameterError as exc:
        problem = refusal(exc)
        assert problem is not None
        raise Refused(exc.detail, msgspec.to_builtins(problem)) from None


def _error(detail: str, problem: dict[str, Any] | None = None) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(text=detail)], structured_content=problem, is_error=True
    )


def build_server(source: Source) -> Server[Any]:
    """The MCP server answering every tool with ``source``."""

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=listing())

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        return await call(source, params.name, params.arguments)

    return Server(
        "pvetrail",
        version=package_version(),
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


async def serve_stdio(source: Source) -> None:
    """Serve ``source``'s tools on stdin/stdout until the client closes them."""
    server = build_server(source)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())
