"""Waiting for a condition another task makes true, bounded by a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(condition: Callable[[], bool], *, timeout: float = 10.0) -> None:
    """Return as soon as `condition()` holds; fail with TimeoutError after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        # Polls state owned by other tasks (they expose no event): the deadline bounds it.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
