"""Snowflake ids: 41-bit milliseconds since a custom epoch, 10-bit node, 12-bit sequence.

The generator never goes backwards. When the wall clock steps back (NTP correction,
VM migration) it keeps counting from the last millisecond it used instead of waiting
or failing, and when a millisecond's 4,096 sequence numbers run out it moves on to
the next millisecond. Ids therefore stay unique and strictly increasing per node for
as long as the node id is held exclusively (see `kit.ids.lease`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from fieldsync.kit.errors import Unavailable

# 2024-01-01T00:00:00Z: 41 bits of milliseconds from here last until 2093.
EPOCH_MS = 1_704_067_200_000
NODE_BITS = 10
SEQUENCE_BITS = 12
MAX_NODE = (1 << NODE_BITS) - 1
MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1
MAX_TIMESTAMP = (1 << 41) - 1


def wall_clock_ms() -> int:
    """Milliseconds since the Unix epoch, from the wall clock."""
    return time.time_ns() // 1_000_000


class SnowflakeParts(NamedTuple):
    """The three fields packed into a snowflake id."""

    timestamp_ms: int
    node_id: int
    sequence: int


def decompose(snowflake: int) -> SnowflakeParts:
    """Split an id into Unix milliseconds, node id and sequence."""
    return SnowflakeParts(
        timestamp_ms=(snowflake >> (NODE_BITS + SEQUENCE_BITS)) + EPOCH_MS,
        node_id=(snowflake >> SEQUENCE_BITS) & MAX_NODE,
        sequence=snowflake & MAX_SEQUENCE,
    )


class SnowflakeGenerator:
    """Thread-safe generator of unique, increasing 63-bit ids for one node id.

    `is_valid` is consulted on every id: a generator whose node lease has lapsed
    must stop issuing ids, because another process may now hold the same node id.
    """

    def __init__(
        self,
        node_id: int,
        *,
        clock_ms: Callable[[], int] = wall_clock_ms,
        is_valid: Callable[[], bool] = lambda: True,
    ) -> None:
        if not 0 <= node_id <= MAX_NODE:
            raise ValueError(f"node id must be within 0..{MAX_NODE}, got {node_id}")
        self.node_id = node_id
        self._clock_ms = clock_ms
        self._is_valid = is_valid
        self._last_ms = -1
        self._last_reading = -1
        self._sequence = 0
        self._lock = threading.Lock()
        # How many times a clock reading was earlier than the reading before it.
        self.clock_steps_back = 0

    def next_id(self) -> int:
        """The next id; raises `Unavailable` when the node lease is no longer held."""
        if not self._is_valid():
            raise Unavailable("this process no longer holds its id node lease")
        with self._lock:
            reading = self._clock_ms()
            if reading < self._last_reading:
                self.clock_steps_back += 1
            self._last_reading = reading
            now = reading - EPOCH_MS
            if now > self._last_ms:
                self._last_ms = now
                self._sequence = 0
            else:
                # The clock is at or behind the last millisecond used (same millisecond, a
                # step back, or a burst that ran ahead): keep counting on the logical clock
                # rather than reusing timestamps.
                self._sequence += 1
                if self._sequence > MAX_SEQUENCE:
                    self._last_ms += 1
                    self._sequence = 0
            if self._last_ms > MAX_TIMESTAMP:
                raise Unavailable("snowflake timestamp space exhausted")
            return (
                (self._last_ms << (NODE_BITS + SEQUENCE_BITS))
                | (self.node_id << SEQUENCE_BITS)
                | self._sequence
            )
