"""``pvetrail mcp`` end to end, on each backend: the MCP SDK's own stdio client launches
``python -m api mcp`` as its own process, over a database the real collectors filled from a
fakepve, and every tool's answer is compared with the real HTTP API's body for the same query.

Two processes per backend (the suite's time): one reading the database (local), one reading a
running server with ``--api`` and a reader token. Refused tokens and unreachable servers are
:mod:`tests.api.test_api_mcp`'s (in-process).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from api.assistant.tools import TOOLS
from eventstore import EventStore
from projections.runner import ProjectionRunner
from tests.api.conftest import READER_SECRET, TOKENS, Server, ServerFactory
from tests.api.mcp_helpers import bad_calls, compare, every_row, good_calls, points
from tests.api.recorded import fill
from tests.collectors.conftest import operator, pve_pki, served  # noqa: F401 - fixtures
from tests.pve import ServedPve

REPO = Path(__file__).resolve().parents[2]


async def _session(server: Server, p: dict[str, Any], env: dict[str, str], *args: str) -> str:
    """One ``pvetrail mcp`` process: list the tools, ask every question of it and of the API;
    returns what the process wrote to stderr."""
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "api", "mcp", *args], env=env, cwd=REPO
    )
    with tempfile.TemporaryFile("w+") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            listed = await client.list_tools()
            assert [(t.name, t.input_schema) for t in listed.tools] == [
                (t.name, t.input_schema()) for t in TOOLS
            ]
            assert all(t.description for t in listed.tools)
            await compare(client, server, good_calls(p), good=True, token=READER_SECRET)
            bad = bad_calls(p, await server.store.head())
            await compare(client, server, bad, good=False, token=READER_SECRET)
        errlog.seek(0)
        return errlog.read()


async def test_pvetrail_mcp_over_stdio_answers_as_the_api_locally_and_remotely(
    database_url: str,
    store: EventStore,
    serve_app: ServerFactory,
    served: ServedPve,  # noqa: F811 - the imported fixture
    operator: Any,  # noqa: F811 - the imported fixture
) -> None:
    await fill(database_url, served, operator)
    server = await serve_app(tokens=TOKENS)
    # the API's first list answer stores the database's cursor key: before the rows are read
    p = await points(server, READER_SECRET, await ProjectionRunner(store).checkpoint())
    before = await every_row(store)

    await _session(server, p, {"PVETRAIL_DATABASE_URL": database_url})
    assert await every_row(store) == before

    err = await _session(server, p, {"PVETRAIL_TOKEN": READER_SECRET}, "--api", server.url)
    assert READER_SECRET not in err
    assert await every_row(store) == before
