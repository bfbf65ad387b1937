"""The process's poke hub: one NATS subscription, fanned out to waiters and clients.

Every sync process listens to all organizations' pokes. Pushes wait here for their
changes to reach the replica; realtime connections get the new checkpoint when the
poke touches their scope. The poke is encoded once and written to every connection
in one pass (`Listener.deliver`), and one process-wide tick writes the heartbeats:
no timer and no task wake-up per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict

from fieldsync.contracts.sync import POKE_SUBJECTS, Poke
from fieldsync.kit.errors import Unavailable
from fieldsync.kit.runtime import Runtime
from fieldsync.sync.pull.checkpoint import Position, encode
from fieldsync.sync.realtime.listener import Frames, Listener

HUB_RESOURCE = "sync.hub"
# Heartbeats written per turn of the event loop: a poke arriving during a round of
# heartbeats to thousands of connections waits for one slice, not the whole round.
HEARTBEAT_SLICE = 250


class PokeHub:
    """Pokes of every organization, for the push waiters and listeners of this process."""

    def __init__(self, heartbeat_seconds: float) -> None:
        self._arrived: dict[uuid.UUID, asyncio.Event] = defaultdict(asyncio.Event)
        self._listeners: dict[uuid.UUID, set[Listener]] = defaultdict(set)
        self._heartbeat_seconds = heartbeat_seconds
        self._ticking: asyncio.Task[None] | None = None

    async def on_poke(self, poke: Poke) -> None:
        """Wake the waiters of the poke's organization and offer it to its listeners."""
        arrived = self._arrived.pop(poke.organization_id, None)
        if arrived is not None:
            arrived.set()
        listeners = self._listeners.get(poke.organization_id)
        if listeners:
            # Encoded once for all of them: a poke can reach thousands of connections.
            frames = Frames.of("poke", {"checkpoint": encode(Position(poke.version))})
            buildings = None if poke.buildings is None else frozenset(poke.buildings)
            now = asyncio.get_running_loop().time()
            # Nothing here awaits, so the set cannot change under the loop.
            for listener in listeners:
                listener.offer(frames, buildings, poke.users, now)

    def next_poke(self, organization_id: uuid.UUID) -> asyncio.Event:
        """An event set at the organization's next poke.

        Take it *before* looking at the replica, then wait on it: a poke that lands in
        between still sets it, so no wake-up is lost.
        """
        return self._arrived[organization_id]

    def add(self, listener: Listener) -> None:
        """Start offering pokes (and heartbeats) to a realtime connection."""
        self._listeners[listener.caller.organization_id].add(listener)
        if self._ticking is None or self._ticking.done():
            self._ticking = asyncio.create_task(self._tick(), name="sync-heartbeats")

    def remove(self, listener: Listener) -> None:
        """Stop offering pokes to a closed connection."""
        listeners = self._listeners.get(listener.caller.organization_id)
        if listeners is not None:
            listeners.discard(listener)
            if not listeners:
                del self._listeners[listener.caller.organization_id]

    async def _tick(self) -> None:
        """Heartbeats to connections idle for half a period, each half period.

        No connection therefore goes a whole period without a message. The task ends
        once no connection is left; the next one starts it again.
        """
        period = self._heartbeat_seconds / 2
        loop = asyncio.get_running_loop()
        while self._listeners:
            await asyncio.sleep(period)
            now = loop.time()
            idle_since = now - period
            written = 0
            for listeners in tuple(self._listeners.values()):
                for listener in tuple(listeners):
                    if listener.beat(idle_since, now):
                        written += 1
                        if written % HEARTBEAT_SLICE == 0:
                            await asyncio.sleep(0)

    @property
    def listener_count(self) -> int:
        """Realtime connections of this process."""
        return sum(len(listeners) for listeners in self._listeners.values())


async def start_hub(runtime: Runtime) -> None:
    """Start-up step: subscribe the process's hub to every organization's pokes."""
    hub = PokeHub(runtime.settings.sync_heartbeat_seconds)
    await runtime.bus.listen(POKE_SUBJECTS, Poke, hub.on_poke)
    runtime.resources[HUB_RESOURCE] = hub


async def wait_for_event(event: asyncio.Event, timeout: float) -> None:
    """Return when `event` is set or after `timeout` seconds, whichever is first."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)


def hub_of(runtime: Runtime) -> PokeHub:
    """The process's hub (after start-up)."""
    hub = runtime.resources.get(HUB_RESOURCE)
    if not isinstance(hub, PokeHub):
        raise Unavailable("the sync service is still starting")
    return hub
