"""``pvetrail rebuild [NAME]`` through the real CLI on a real SQLite file."""

from __future__ import annotations

import asyncio
import io
import random
from pathlib import Path

import pytest

from api.cli import main
from api.commands.rebuild import Progress
from eventstore import NewEvent, open_store
from projections.runner import ProjectionRunner
from tests.projections.projection_helpers import random_events, table_rows


def _prepare(url: str, events: list[NewEvent]) -> dict[str, list[tuple[object, ...]]]:
    async def run() -> dict[str, list[tuple[object, ...]]]:
        store = await open_store(url)
        try:
            await store.migrate()
            await store.append(events)
            await ProjectionRunner(store).catch_up()
            return await table_rows(store)
        finally:
            await store.close()

    return asyncio.run(run())


def _rows(url: str) -> dict[str, list[tuple[object, ...]]]:
    async def run() -> dict[str, list[tuple[object, ...]]]:
        store = await open_store(url)
        try:
            return await table_rows(store)
        finally:
            await store.close()

    return asyncio.run(run())


def test_rebuild_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("PVETRAIL_DATABASE_URL", url)
    monkeypatch.delenv("PVETRAIL_CONFIG", raising=False)
    before = _prepare(url, random_events(random.Random(5), 200))
    assert main(["rebuild"]) == 0
    out, err = capsys.readouterr()
    assert "rebuild: " in err  # plain progress lines on stderr: it is not a terminal
    assert "rebuild: " not in out  # stdout keeps only the result
    assert "rebuilt resources, versions, relations:" in out
    assert "events/s)" in out
    assert _rows(url) == before
    assert main(["rebuild", "relations", "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("rebuilt relations: ")
    with pytest.raises(SystemExit):
        main(["rebuild", "nope"])


def test_rebuild_command_names_the_bad_position(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("PVETRAIL_DATABASE_URL", url)
    monkeypatch.delenv("PVETRAIL_CONFIG", raising=False)
    good = random_events(random.Random(6), 5)
    bad = NewEvent(
        stream_id="lab/qemu/1", type="mystery", data=b"{}", observed_at=good[-1].observed_at
    )

    async def append_bad() -> None:
        store = await open_store(url)
        await store.migrate()
        await store.append([*good, bad])
        await store.close()

    asyncio.run(append_bad())
    assert main(["rebuild"]) == 1
    assert f"position {len(good) + 1}" in capsys.readouterr().err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_a_bar_on_a_terminal() -> None:
    out = _Terminal()
    progress = Progress(out)
    progress(50, 100)
    progress(100, 100)
    progress.finish()
    text = out.getvalue()
    assert text.startswith("\r[###############---------------]  50.0% 50/100 events")
    assert "100.0% 100/100" in text
    assert text.endswith("\n")
