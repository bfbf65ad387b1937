"""The client's local copy: what the server confirmed, and the edits not yet pushed.

What the app sees is the confirmed records with the pending mutations laid over them,
in order. A rejected mutation is simply dropped: the view falls back to the server's
record with nothing to undo.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

RecordKey = tuple[str, str]


@dataclass
class PendingMutation:
    """An offline edit waiting to be pushed; `sent` once a push carried it."""

    mutation_id: int
    collection: str
    id: str
    op: str  # "upsert" | "delete"
    data: dict[str, Any] | None
    base_version: int | None
    sent: bool = False

    def to_wire(self) -> dict[str, Any]:
        """The mutation as the push endpoint takes it."""
        return {
            "mutation_id": self.mutation_id,
            "collection": self.collection,
            "id": self.id,
            "op": self.op,
            "data": self.data,
            "base_version": self.base_version,
        }


@dataclass
class LocalStore:
    """Everything a client keeps between syncs (in memory; persist it as you like)."""

    client_id: str = field(default_factory=lambda: f"py-{uuid.uuid4().hex}")
    checkpoint: str | None = None
    confirmed: dict[RecordKey, dict[str, Any]] = field(default_factory=dict)
    pending: list[PendingMutation] = field(default_factory=list)
    last_mutation_id: int = 0

    def view(self, collection: str) -> dict[str, dict[str, Any]]:
        """The records of a collection as the app sees them, by id."""
        records = {
            key[1]: dict(record) for key, record in self.confirmed.items() if key[0] == collection
        }
        for mutation in self.pending:
            if mutation.collection != collection:
                continue
            if mutation.op == "delete":
                records.pop(mutation.id, None)
            else:
                merged = records.setdefault(mutation.id, {"id": mutation.id})
                merged.update(mutation.data or {})
        return records

    def record(self, collection: str, record_id: str) -> dict[str, Any] | None:
        """One record as the app sees it."""
        return self.view(collection).get(record_id)

    def edit(self, collection: str, record_id: str, op: str, data: dict[str, Any] | None) -> None:
        """Queue an edit, folding it into an unsent edit of the same record."""
        key = (collection, record_id)
        unsent = next(
            (
                mutation
                for mutation in reversed(self.pending)
                if (mutation.collection, mutation.id) == key
            ),
            None,
        )
        if unsent is not None and not unsent.sent:
            if op == "delete":
                if unsent.base_version is None and key not in self.confirmed:
                    self.pending.remove(unsent)  # created and deleted offline: nothing to say
                    return
                unsent.op, unsent.data = "delete", None
            else:
                unsent.op = "upsert"
                unsent.data = {**(unsent.data or {}), **(data or {})}
            return
        confirmed = self.confirmed.get(key)
        self.last_mutation_id += 1
        self.pending.append(
            PendingMutation(
                mutation_id=self.last_mutation_id,
                collection=collection,
                id=record_id,
                op=op,
                data=dict(data) if data is not None else None,
                base_version=None if confirmed is None else int(confirmed["version"]),
            )
        )

    def next_batch(self, limit: int) -> list[PendingMutation]:
        """Mutations to push now: the oldest per record (a record's next edit needs the
        version its previous one produced), at most `limit`."""
        batch: list[PendingMutation] = []
        seen: set[RecordKey] = set()
        for mutation in self.pending:
            key = (mutation.collection, mutation.id)
            if key in seen:
                continue
            seen.add(key)
            batch.append(mutation)
            if len(batch) == limit:
                break
        return batch

    def rebase(self, collection: str, record_id: str) -> None:
        """After a record's mutation settled, its next one is based on the new version."""
        key = (collection, record_id)
        confirmed = self.confirmed.get(key)
        for mutation in self.pending:
            if (mutation.collection, mutation.id) == key:
                mutation.base_version = None if confirmed is None else int(confirmed["version"])
                return

    def apply_change(self, change: dict[str, Any]) -> None:
        """A pulled change: the server's record, or its deletion."""
        key = (change["collection"], change["id"])
        if change["op"] == "delete":
            self.confirmed.pop(key, None)
        else:
            self.confirmed[key] = change["data"]
