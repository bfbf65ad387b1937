"""Running an ASGI `send` from a plain function, as far as it goes without waiting.

A poke reaches thousands of connections at once. Waking a task per connection to
`await send(...)` costs more than the write itself, yet an ASGI server's send only
waits when the client's socket is backed up (uvicorn waits for its transport to
drain). So the hub starts each send by hand: most finish on the spot; the rare one
that has to wait is handed, still suspended, to its connection's task to finish.
"""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine, Generator
from typing import Any


class _Suspended:
    """The rest of a coroutine that was started by hand and yielded `waiting_on`.

    Awaiting it continues the coroutine exactly where it stopped: what it yielded (the
    future it waits for) is passed up to the awaiting task, and the task's answers
    (a wake-up, or an exception such as a cancellation) are passed back down, as
    `await` itself does for a coroutine it started.
    """

    __slots__ = ("_coroutine", "_waiting_on")

    def __init__(self, coroutine: Coroutine[Any, Any, None], waiting_on: object) -> None:
        self._coroutine = coroutine
        self._waiting_on = waiting_on

    def __await__(self) -> Generator[Any, Any, None]:
        coroutine, waiting_on = self._coroutine, self._waiting_on
        while True:
            try:
                answer = yield waiting_on
            except BaseException as exc:
                try:
                    waiting_on = coroutine.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    waiting_on = coroutine.send(answer)
                except StopIteration:
                    return

    def close(self) -> None:
        """Abandon the rest (the connection is gone)."""
        self._coroutine.close()


def start_eagerly(awaitable: Awaitable[None]) -> _Suspended | Awaitable[None] | None:
    """Run `awaitable` until it has to wait: None if it finished, else its remainder.

    The remainder must be awaited by a task (or closed). An exception raised before
    the first wait propagates here. An awaitable that is not a coroutine is returned
    as it is, not started.
    """
    if not isinstance(awaitable, Coroutine):
        return awaitable
    try:
        waiting_on = awaitable.send(None)
    except StopIteration:
        return None
    return _Suspended(awaitable, waiting_on)


def abandon(remainder: Awaitable[None]) -> None:
    """Drop a remainder from `start_eagerly` that will never be awaited."""
    if isinstance(remainder, _Suspended | Coroutine):
        remainder.close()
