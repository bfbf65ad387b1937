"""One realtime connection as the hub sees it: what it may see, and how to write to it.

The hub writes pokes and heartbeats straight to the connection (`deliver`), with no
task woken. The connection's own task (`attend`) sleeps until there is something
only a task can do: reload a technician's buildings, finish a write the client is
slow to take (it is dropped after `FIELDSYNC_SYNC_SLOW_CLIENT_SECONDS`), or leave.
While a write waits, only the newest message is kept behind it, so a slow client
costs a fixed amount of memory.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson

from fieldsync.contracts.identity import Caller, Role
from fieldsync.kit.logging import get_logger
from fieldsync.sync.realtime.eager import abandon, start_eagerly

log = get_logger(__name__)

LoadScope = Callable[[], Awaitable[frozenset[uuid.UUID]]]


@dataclass(frozen=True, slots=True)
class Frames:
    """One message, encoded once for every connection it goes to."""

    json: bytes  # the message
    sse: bytes  # the message as a whole Server-Sent Event
    ws: str  # the message as WebSocket text

    @classmethod
    def of(cls, event: str, data: object) -> Frames:
        """The message `data` (JSON) as SSE event `event` and as WebSocket text."""
        encoded = orjson.dumps(data)
        sse = b"event: " + event.encode() + b"\ndata: " + encoded + b"\n\n"
        return cls(encoded, sse, encoded.decode())


HEARTBEAT = Frames.of("heartbeat", {"heartbeat": True})

Write = Callable[[Frames], Awaitable[None]]


class Listener:
    """A realtime connection: its caller's scope, its writes, and its task's wake-up."""

    __slots__ = (
        "_buildings",
        "_load_scope",
        "_scope_stale",
        "_stalled",
        "_stalled_at",
        "_technician",
        "_waiter",
        "_woken",
        "_write",
        "caller",
        "closed",
        "last_write",
        "pending",
    )

    def __init__(self, caller: Caller, load_scope: LoadScope, write: Write) -> None:
        self.caller = caller
        self._load_scope = load_scope
        self._write = write
        # A technician's buildings; None: not known yet, every poke is passed on.
        self._buildings: frozenset[uuid.UUID] | None = None
        self._technician = caller.role == Role.TECHNICIAN
        self._scope_stale = self._technician
        # The rest of a write the client has not taken yet, and when it began.
        self._stalled: Awaitable[None] | None = None
        self._stalled_at = 0.0
        # The newest message behind a stalled write (it replaces any older one).
        self.pending: Frames | None = None
        self.last_write = asyncio.get_running_loop().time()
        self.closed = False
        # The task's wake-up: a flag and, while it sleeps, a future (an asyncio.Event
        # would hold a deque per connection, for a single waiter).
        self._woken = self._scope_stale
        self._waiter: asyncio.Future[None] | None = None

    @property
    def buildings(self) -> frozenset[uuid.UUID] | None:
        """A technician's buildings as last loaded; None while not known (all pass)."""
        return self._buildings

    # --- called by the hub, for every connection at once: no awaiting here ----------

    def offer(
        self,
        frames: Frames,
        buildings: frozenset[uuid.UUID] | None,
        users: list[uuid.UUID],
        now: float,
    ) -> None:
        """Write a poke (touching `buildings`, None: any) if it concerns this caller."""
        if self._technician:
            if self.caller.user_id in users:
                # Their assignments changed: pass everything on until reloaded.
                self._buildings = None
                self._scope_stale = True
                self._wake()
            elif (
                buildings is not None
                and self._buildings is not None
                and self._buildings.isdisjoint(buildings)
            ):
                return
        self.deliver(frames, now)

    def beat(self, idle_since: float, now: float) -> bool:
        """Write a heartbeat if nothing was written since `idle_since`; True if written."""
        if self.last_write > idle_since or self._stalled is not None or self.closed:
            return False
        self.deliver(HEARTBEAT, now)
        return True

    def deliver(self, frames: Frames, now: float) -> None:
        """Write `frames` now, or keep it as the newest behind a write still waiting."""
        if self.closed:
            return
        if self._stalled is not None:
            self.pending = frames
            return
        self.last_write = now
        try:
            remainder = start_eagerly(self._write(frames))
        except Exception as exc:  # the connection broke under the write
            log.info("realtime write failed", error=repr(exc))
            self.close()
            return
        if remainder is not None:
            self._stalled = remainder
            self._stalled_at = now
            self._wake()

    def close(self) -> None:
        """The connection is gone: write nothing more, let its task end."""
        self.closed = True
        self.pending = None
        if self._stalled is not None:
            abandon(self._stalled)
            self._stalled = None
        self._wake()

    # --- called by the connection's task -------------------------------------------

    async def attend(self, slow_client_seconds: float) -> None:
        """Do what only a task can, each time woken, until the connection ends.

        Returns when the connection closed, or once a write waited for the client
        longer than `slow_client_seconds` (the client is too slow: it is dropped).
        """
        while True:
            await self._sleep()
            if self.closed:
                return
            if self._scope_stale:
                await self._refresh_scope()
            if not await self._finish_stalled(slow_client_seconds):
                log.info("slow realtime client dropped", user_id=str(self.caller.user_id))
                self.close()
                return

    def _wake(self) -> None:
        self._woken = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _sleep(self) -> None:
        """Until woken (at once if woken since the last sleep)."""
        while not self._woken:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self._woken = False

    async def _refresh_scope(self) -> None:
        while self._scope_stale:
            self._scope_stale = False
            buildings = await self._load_scope()
            if not self._scope_stale:  # else changed again meanwhile: load once more
                self._buildings = buildings

    async def _finish_stalled(self, slow_client_seconds: float) -> bool:
        """Finish the waiting write, then the newest message behind it; False if too slow."""
        loop = asyncio.get_running_loop()
        while (remainder := self._stalled) is not None:
            try:
                async with asyncio.timeout_at(self._stalled_at + slow_client_seconds):
                    await remainder
            except TimeoutError:
                return False
            except Exception as exc:  # the connection broke under the write
                log.info("realtime write failed", error=repr(exc))
                self._stalled = None
                self.close()
                return True
            self._stalled = None
            pending, self.pending = self.pending, None
            if pending is not None:
                self.deliver(pending, loop.time())
        return True
