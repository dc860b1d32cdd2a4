"""Waiting for a condition instead of sleeping a fixed time.

A fixed sleep either proves nothing (the condition would hold anyway, or never came about) or
fails on a loaded machine. These helpers wait for the condition itself, with a bound generous
enough for a busy machine; speed is measured in ``bench/``, not here.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

GENEROUS_S = 30.0
"""How long a test waits for something that takes milliseconds on an idle machine."""


async def until(
    condition: Callable[[], bool | Awaitable[bool]],
    timeout: float = GENEROUS_S,
    step: float = 0.05,
    what: str = "condition",
) -> None:
    """Wait until ``condition()`` (a plain check or a coroutine) holds; fail at timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        held = condition()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        if loop.time() >= deadline:
            raise AssertionError(f"{what} still false after {timeout} s")
        await asyncio.sleep(step)


def waiting_for_events(task: asyncio.Task[Any]) -> bool:
    """Whether ``task`` (running ``store.wait_for_events``) is parked in its wait for a
    signal, past its first look at the head: an append made now can only reach it through a
    wake-up (the in-process signal, NOTIFY or the periodic check), never through that look.

    Both backends wait with ``asyncio.wait_for(signal.wait(), ...)``; if that changes, this
    check never holds and the tests using it fail loudly instead of passing untested.
    """
    awaiting = task.get_coro().cr_await  # type: ignore[union-attr]
    return getattr(awaiting, "__qualname__", "") == "wait_for"


async def until_waiting_for_events(task: asyncio.Task[Any]) -> None:
    """Wait until ``task`` is parked in ``wait_for_events`` (see :func:`waiting_for_events`)."""
    await until(
        lambda: not task.done() and waiting_for_events(task),
        step=0.005,
        what="the waiter parked in wait_for_events",
    )
