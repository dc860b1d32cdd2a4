"""``pvetrail mcp`` in-process, on each backend: the MCP SDK's own client talks to the server
``pvetrail mcp`` builds (the SDK's in-memory connection), over a history the real collectors
recorded from a fakepve, beside the real HTTP API on the same database.

The process-level paths (stdio, ``--api`` against a server) are
:mod:`tests.api.test_api_mcp_stdio`'s.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from mcp import Client

from api import cli
from api.assistant.local import local_source
from api.assistant.remote import RemoteSource
from api.assistant.server import build_server
from api.assistant.tools import TOOLS
from api.config import Config
from eventstore import EventStore, open_store
from eventstore.migrations import load_migrations
from projections.runner import ProjectionRunner
from tests.api.conftest import READER_SECRET, TOKENS, ServerFactory
from tests.api.mcp_helpers import (
    bad_calls,
    compare,
    every_row,
    good_calls,
    points,
    projections_meta,
)
from tests.api.recorded import fill
from tests.collectors.conftest import operator, pve_pki, served  # noqa: F401 - fixtures
from tests.pve import ServedPve


async def test_every_tool_answers_as_the_api_and_changes_nothing(
    database_url: str,
    store: EventStore,
    serve_app: ServerFactory,
    served: ServedPve,  # noqa: F811 - the imported fixture
    operator: Any,  # noqa: F811 - the imported fixture
) -> None:
    # the projections lag the log by one poll: nobody runs the projection runner
    await fill(database_url, served, operator, lagging=True)
    head = await store.head()
    checkpoint = await ProjectionRunner(store).checkpoint()
    assert checkpoint < head
    server = await serve_app()
    p = await points(server, None, checkpoint)
    before = await every_row(store)

    async with (
        local_source(Config(database_url=database_url)) as source,
        Client(build_server(source)) as client,
    ):
        listed = await client.list_tools()
        assert [t.name for t in listed.tools] == [t.name for t in TOOLS]
        for tool in listed.tools:
            assert tool.annotations is not None
            assert tool.annotations.read_only_hint
        good = await compare(client, server, good_calls(p), good=True)
        await compare(client, server, bad_calls(p, head), good=False)

    assert await every_row(store) == before
    assert len(good) > len(good_calls(p))  # pages after the first were compared too
    for result in good:
        assert projections_meta(result) == {
            "checkpoint": checkpoint,
            "head": head,
            "behind": head - checkpoint,
            "lag_seconds": projections_meta(result)["lag_seconds"],
        }
        note = result.content[-1].text  # type: ignore[union-attr]
        assert f"up to position {checkpoint}; the log's head is {head}" in note, note


async def test_a_current_answer_carries_its_position_and_pages_without_writing(
    database_url: str,
    store: EventStore,
    served: ServedPve,  # noqa: F811 - the imported fixture
    operator: Any,  # noqa: F811 - the imported fixture
) -> None:
    await fill(database_url, served, operator)
    head = await store.head()
    # no list was ever asked of this database: it has no cursor key yet, and paging must not
    # store one (the API's first list answer does)
    before = await every_row(store)
    async with (
        local_source(Config(database_url=database_url)) as source,
        Client(build_server(source)) as client,
    ):
        first = await client.call_tool("inventory", {"limit": 2})
        cursor = first.structured_content["next_cursor"]  # type: ignore[index]
        second = await client.call_tool("inventory", {"cursor": cursor})
    assert await every_row(store) == before
    assert not first.is_error
    assert not second.is_error
    assert len(first.content) == 1  # no lag note
    meta = projections_meta(first)
    assert (meta["checkpoint"], meta["head"], meta["behind"]) == (head, head, 0)
    pages = [first.structured_content, second.structured_content]
    assert [page["position"] for page in pages] == [head, head]  # type: ignore[index]
    ids = [item["id"] for page in pages for item in page["items"]]  # type: ignore[index]
    assert ids == sorted(set(ids))  # the second page continues the first
    assert len(pages[0]["items"]) == 2  # type: ignore[index]
    assert len(ids) > 2


async def test_remote_refusals_say_what_to_do_and_never_show_the_token(
    database_url: str,
    serve_app: ServerFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = await serve_app(tokens=TOKENS)
    wrong = "wrong-token-0123456789"
    async with aiohttp.ClientSession() as session:
        for token, expected in [
            (None, "PVETRAIL_TOKEN is not set"),
            (wrong, "the token in PVETRAIL_TOKEN is not one it knows"),
            (READER_SECRET, None),
        ]:
            source = RemoteSource(server.url, token, session)
            async with Client(build_server(source)) as client:
                result = await client.call_tool("relations", {})
                bad = await client.call_tool("inventory", {"limit": 0})
            if expected is None:
                assert not result.is_error, result.content
                assert result.structured_content["edges"] == []  # type: ignore[index]
                assert bad.is_error
                assert bad.content[0].text == "limit: 0 is outside 1..1000"  # type: ignore[union-attr]
                continue
            assert result.is_error
            text = result.content[0].text  # type: ignore[union-attr]
            assert text.startswith(f"the pvetrail at {server.url} refused the request (401"), text
            assert f"{expected}; set PVETRAIL_TOKEN to a reader token" in text, text
            assert READER_SECRET not in text
            assert wrong not in text
        # nothing listens on a port just closed: unreachable is a tool error, not a crash
        with socket.create_server(("127.0.0.1", 0)) as sock:
            closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
        async with Client(build_server(RemoteSource(closed, READER_SECRET, session))) as client:
            result = await client.call_tool("inventory", {})
        assert result.is_error
        text = result.content[0].text  # type: ignore[union-attr]
        assert text.startswith(f"cannot reach the pvetrail at {closed}: "), text
    logged = caplog.text
    assert READER_SECRET not in logged
    assert wrong not in logged


async def test_mcp_refuses_a_database_it_would_have_to_create_or_migrate(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # the database_url fixture's database is not migrated (nor, on SQLite, created)
    if database_url.startswith("sqlite"):
        path = Path(database_url.removeprefix("sqlite:///"))
        monkeypatch.setenv("PVETRAIL_DATABASE_URL", database_url)
        assert await _mcp_main() == 2
        assert "does not exist" in capsys.readouterr().err
        assert not await asyncio.to_thread(path.exists)  # nothing created
        await asyncio.to_thread(path.touch)
    monkeypatch.setenv("PVETRAIL_DATABASE_URL", database_url)
    assert await _mcp_main() == 2
    err = capsys.readouterr().err
    pending = len(load_migrations("sqlite" if database_url.startswith("sqlite") else "postgresql"))
    assert f"is not migrated ({pending} migration(s) pending): run `pvetrail migrate`" in err, err
    store = await open_store(database_url)
    try:
        assert (await store.pending_migrations()).applied == []  # nothing migrated
    finally:
        await store.close()


async def _mcp_main() -> int:
    # cli.main runs its own event loop: off this test's loop, in a thread
    return await asyncio.to_thread(cli.main, ["mcp"])


def test_without_the_sdk_mcp_exits_2_with_the_pip_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [n for n in sys.modules if n == "mcp" or n.startswith(("mcp.", "api.assistant."))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mcp", None)  # import mcp: ModuleNotFoundError
    assert cli.main(["mcp"]) == 2
    assert "pip install 'pvetrail[mcp]'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("ftp://pvetrail:8080", "is not an http(s) URL such as http://pvetrail:8080"),
        ("https://reader:secret@pvetrail", "give the server's URL alone"),
    ],
)
def test_a_malformed_api_url_exits_2_naming_it(
    url: str, detail: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["mcp", "--api", url]) == 2
    err = capsys.readouterr().err
    assert f"--api {url.replace(':secret@', ':***@')!r}" in err
    assert detail in err
