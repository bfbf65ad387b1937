"""Waiting for a condition another task makes true, bounded by a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def until(condition: Callable[[], bool], *, timeout: float = 10.0) -> None:
    """Return as soon as `condition()` holds; fail with TimeoutError after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        # Polls state owned by other tasks (they expose no event): the deadline bounds it.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def eventually(
    condition: Callable[[], Awaitable[bool]], *, timeout: float = 10.0, interval: float = 0.05
) -> None:
    """`until` for a condition that must ask a server (a pull, a query)."""
    async with asyncio.timeout(timeout):
        # The state lives in a server: there is no event to wait on, only the deadline.
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(interval)
