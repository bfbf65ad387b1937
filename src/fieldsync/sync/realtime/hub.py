"""The process's poke hub: one NATS subscription, fanned out to waiters and clients.

Every sync process listens to all organizations' pokes. Pushes wait here for their
changes to reach the replica; realtime connections get the new checkpoint when the
poke touches their scope. A connection holds at most one pending checkpoint (the
newest replaces the older), so a slow client costs a fixed amount of memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable

import orjson

from fieldsync.contracts.identity import Caller, Role
from fieldsync.contracts.sync import POKE_SUBJECTS, Poke
from fieldsync.kit.errors import Unavailable
from fieldsync.kit.runtime import Runtime
from fieldsync.sync.pull.checkpoint import Position, encode

HUB_RESOURCE = "sync.hub"

LoadScope = Callable[[], Awaitable[frozenset[uuid.UUID]]]


class Listener:
    """One realtime connection's view of the pokes: the newest checkpoint to send."""

    def __init__(self, caller: Caller, load_scope: LoadScope) -> None:
        self.caller = caller
        self._load_scope = load_scope
        self._buildings: frozenset[uuid.UUID] | None = None
        self._scope_stale = caller.role == Role.TECHNICIAN
        # The newest poke's message (JSON), shared by every listener it was offered to.
        self.pending: bytes | None = None
        self.woken = asyncio.Event()

    @property
    def scope_stale(self) -> bool:
        """True when a technician's buildings must be read again before the next offer."""
        return self._scope_stale

    async def refresh_scope(self) -> None:
        """Reload a technician's buildings when an assignment of theirs changed."""
        if self._scope_stale:
            self._scope_stale = False
            self._buildings = await self._load_scope()

    def offer(self, poke: Poke, message: bytes) -> None:
        """Keep the poke's message if it concerns this caller."""
        if self.caller.role == Role.TECHNICIAN:
            if self.caller.user_id in poke.users:
                self._scope_stale = True
            elif (
                poke.buildings is not None
                and self._buildings is not None
                and self._buildings.isdisjoint(poke.buildings)
            ):
                return
        self.pending = message
        self.woken.set()

    def take(self) -> bytes | None:
        """The poke message to send now, if any."""
        pending, self.pending = self.pending, None
        self.woken.clear()
        return pending


class PokeHub:
    """Pokes of every organization, for the push waiters and listeners of this process."""

    def __init__(self) -> None:
        self._arrived: dict[uuid.UUID, asyncio.Event] = defaultdict(asyncio.Event)
        self._listeners: dict[uuid.UUID, set[Listener]] = defaultdict(set)

    async def on_poke(self, poke: Poke) -> None:
        """Wake the waiters of the poke's organization and offer it to its listeners."""
        arrived = self._arrived.pop(poke.organization_id, None)
        if arrived is not None:
            arrived.set()
        listeners = self._listeners.get(poke.organization_id)
        if listeners:
            # Encoded once for all of them: a poke can reach thousands of connections.
            message = orjson.dumps({"checkpoint": encode(Position(poke.version))})
            for listener in listeners:
                listener.offer(poke, message)

    def next_poke(self, organization_id: uuid.UUID) -> asyncio.Event:
        """An event set at the organization's next poke.

        Take it *before* looking at the replica, then wait on it: a poke that lands in
        between still sets it, so no wake-up is lost.
        """
        return self._arrived[organization_id]

    def add(self, listener: Listener) -> None:
        """Start offering pokes to a realtime connection."""
        self._listeners[listener.caller.organization_id].add(listener)

    def remove(self, listener: Listener) -> None:
        """Stop offering pokes to a closed connection."""
        listeners = self._listeners.get(listener.caller.organization_id)
        if listeners is not None:
            listeners.discard(listener)
            if not listeners:
                del self._listeners[listener.caller.organization_id]

    @property
    def listener_count(self) -> int:
        """Realtime connections of this process."""
        return sum(len(listeners) for listeners in self._listeners.values())


async def start_hub(runtime: Runtime) -> None:
    """Start-up step: subscribe the process's hub to every organization's pokes."""
    hub = PokeHub()
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
