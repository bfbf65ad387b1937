"""What pushes of this process write through to the replica, as the ingester sees it.

A push writes the changes its owner committed straight into the replica
(`push/write_through.py`), and the owner's relay publishes the same changes on
CHANGES, often before the push has written them: the ingester then found them missing
and wrote them too, and the two writers queued on the organization's row lock. Here
the ingester waits, briefly, for pushes in flight on the records it is about to
write, and drops the copies of what they wrote without asking the replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterable, Iterator

from fieldsync.contracts.collections import COLLECTIONS
from fieldsync.kit.runtime import Runtime

RecordKey = tuple[str, uuid.UUID]
RecordVersion = tuple[str, uuid.UUID, int]  # (collection, record id, owner version)

RESOURCE = "sync.written_through"
# Records whose written version is remembered (about 200 bytes each): copies arrive
# within a second or so of their push, a few hundred thousand records a minute at most.
REMEMBERED = 50_000
# The longest the ingester waits for pushes in flight during one fetch, every other
# organization's changes waiting behind it (well inside the consumer's ack wait). A
# push's write-through follows its owner's commit by milliseconds; past this the
# ingester writes the copies itself, which is harmless.
MAX_WAIT_SECONDS = 0.5


class WrittenThrough:
    """Pushes in flight, by record, and the versions they wrote, newest records kept."""

    def __init__(self, remembered: int = REMEMBERED) -> None:
        self._remembered = remembered
        self._in_flight: dict[RecordKey, set[asyncio.Event]] = {}
        self._written: dict[RecordKey, int] = {}  # insertion order: oldest first

    @contextlib.contextmanager
    def pushing(self, keys: Iterable[RecordKey]) -> Iterator[None]:
        """Mark the records of one owner request until its changes are written through."""
        done = asyncio.Event()
        marked = list(set(keys))
        for key in marked:
            self._in_flight.setdefault(key, set()).add(done)
        try:
            yield
        finally:
            done.set()
            for key in marked:
                waiting = self._in_flight.get(key)
                if waiting is not None:
                    waiting.discard(done)
                    if not waiting:
                        del self._in_flight[key]

    def wrote(self, versions: dict[RecordKey, int]) -> None:
        """Note versions the replica holds now (a write-through committed them)."""
        for key, version in versions.items():
            if key[0] not in COLLECTIONS:
                continue  # assignments: the ingester never drops those from memory
            self._written.pop(key, None)  # moves the record to the newest end
            self._written[key] = version
        while len(self._written) > self._remembered:
            del self._written[next(iter(self._written))]

    def holds(self, key: RecordVersion) -> bool:
        """True when a write-through put this record in the replica at this version or later."""
        collection, record_id, version = key
        return self._written.get((collection, record_id), 0) >= version

    async def settle(self, keys: Iterable[RecordVersion], deadline: float) -> None:
        """Return once no push is writing any of these records the replica does not hold
        yet, or at `deadline` (a `time.monotonic()` reading)."""
        pending = {
            done
            for key in keys
            if not self.holds(key)
            for done in self._in_flight.get((key[0], key[1]), ())
        }
        for done in pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), remaining)


def written_through(runtime: Runtime) -> WrittenThrough:
    """The process's record of write-throughs (made on first use)."""
    found = runtime.resources.get(RESOURCE)
    if isinstance(found, WrittenThrough):
        return found
    made = WrittenThrough()
    runtime.resources[RESOURCE] = made
    return made
