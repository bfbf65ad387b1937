"""Keeping cancellation intact in long-running loops.

On Python 3.11 a cancellation can be lost on its way through a driver: asyncio's
`wait_for` (used by asyncpg) swallows it when the awaited operation completes in the
same instant, and SQLAlchemy's asyncpg adapter can turn it into a DBAPI error. A
background loop would then run on after `Task.cancel()`. The task still remembers the
request (`Task.cancelling()`), so loops check it on every turn and in their handlers.
"""

from __future__ import annotations

import asyncio


def stop_if_cancelled(cause: BaseException | None = None) -> None:
    """Raise CancelledError when the running task has been asked to stop."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from cause
