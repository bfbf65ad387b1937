"""Buildings the consumer has seen holding their default workflow."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

# About 100 bytes an entry: some 10 MB at most.
DEFAULT_CAPACITY = 100_000


class BuildingsWithDefaults:
    """The newest `capacity` buildings found with their default workflow, by id.

    Most building changes are edits of buildings that have their default workflow; the
    consumer asked the database about each of them again, a query a batch for nothing.
    A default workflow's key stays in use for good (deleting a workflow keeps its row),
    so a building found once needs no asking again; one forgotten is asked again.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        # Insertion-ordered: the first entry is the oldest, dropped first.
        self._held: dict[int, None] = {}

    def __contains__(self, building_id: uuid.UUID) -> bool:
        return building_id.int in self._held

    def __len__(self) -> int:
        return len(self._held)

    def add(self, building_ids: Iterable[uuid.UUID]) -> None:
        """Remember these buildings, forgetting the oldest beyond the capacity."""
        for building_id in building_ids:
            self._held[building_id.int] = None
        while len(self._held) > self._capacity:
            del self._held[next(iter(self._held))]

    def discard(self, building_id: uuid.UUID) -> None:
        """Forget a building (it was deleted: its changes go the one-by-one way)."""
        self._held.pop(building_id.int, None)
