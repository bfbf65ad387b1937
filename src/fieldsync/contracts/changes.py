"""The change backbone: every committed change to a syncable record, in JetStream `CHANGES`.

Owner services append a `Change` to their outbox in the transaction that makes it, the
changes of one subject that one statement appends packed into rows of up to 64 KiB;
their relay publishes them
on `changes.<organization>.<collection>`. The relay packs the rows of one subject in a
published batch into one message, a JSON array of changes (`pack_changes`): a push of 500 edits is then a message or two for the stream to store
and each consumer to fetch and ack, not 500. Consumers read both shapes
(`unpack_changes`): an array, or one change as an object. An owner applying pushed
mutations also hands the changes of that transaction back to the sync service with its
answer (`collect_changes`), so the pusher's own writes need not wait for the stream.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypedDict, Unpack

import asyncpg
import orjson
from pydantic import BaseModel
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from fieldsync.kit.ids import SnowflakeGenerator
from fieldsync.kit.messaging.jetstream import StreamSpec
from fieldsync.kit.outbox import append_packed, append_packed_raw, still_present

# Ten minutes of dedupe: a relay restarted within it republishes nothing twice.
CHANGES_STREAM = StreamSpec(
    name="CHANGES",
    subjects=["changes.>"],
    duplicate_window_seconds=600,
    # Relays publish each outbox batch as one atomic batch: a tenth of the server's work.
    atomic_batches=True,
)


class ChangeOp(StrEnum):
    """What happened to the record."""

    UPSERT = "upsert"
    DELETE = "delete"


class Change(BaseModel):
    """One committed change: the record's public fields after it (None for a delete)."""

    collection: str
    id: uuid.UUID
    organization_id: uuid.UUID
    op: ChangeOp
    data: dict[str, Any] | None
    version: int
    building_id: uuid.UUID | None
    occurred_at: datetime


def change_subject(organization_id: uuid.UUID, collection: str) -> str:
    """The CHANGES subject of a collection's changes in one organization."""
    return f"changes.{organization_id}.{collection}"


class ChangeLog:
    """Appends the changes of one transaction to an owner service's outbox."""

    def __init__(self, session: AsyncSession, outbox: Table, ids: SnowflakeGenerator) -> None:
        self.session = session
        self.outbox = outbox
        self.ids = ids

    async def record(
        self,
        collection: str,
        *,
        record_id: uuid.UUID,
        organization_id: uuid.UUID,
        building_id: uuid.UUID | None,
        version: int,
        data: dict[str, Any] | None,
        occurred_at: datetime | None = None,
    ) -> None:
        """The record after the write: its public fields, or None once it is deleted."""
        await self.record_all(
            [
                new_change(
                    collection,
                    record_id=record_id,
                    organization_id=organization_id,
                    building_id=building_id,
                    version=version,
                    data=data,
                    occurred_at=occurred_at,
                )
            ]
        )

    async def record_all(self, changes: Sequence[Change]) -> None:
        """Several changes of this transaction, in this order, in one round trip."""
        payloads = [change_bytes(change) for change in changes]
        row_ids = await append_packed(
            self.session,
            self.outbox,
            self.ids,
            [
                (change_subject(change.organization_id, change.collection), payload)
                for change, payload in zip(changes, payloads, strict=True)
            ],
            pack_changes,
        )
        collector = _collector.get()
        if collector is not None:
            collector.note(self.outbox, row_ids, changes, sum(map(len, payloads)))

    async def record_built(
        self, connection: asyncpg.Connection, built: Sequence[tuple[Change, bytes]]
    ) -> None:
        """Changes made with `built_change`, appended on the session's own asyncpg
        `connection` (inside its transaction).

        For writers of hundreds of changes a transaction: the ORM's bind processing
        of the outbox's arrays, element by element, cost more than the insert.
        """
        row_ids = await append_packed_raw(
            connection,
            self.outbox,
            self.ids,
            [
                (change_subject(change.organization_id, change.collection), payload)
                for change, payload in built
            ],
            pack_changes,
        )
        collector = _collector.get()
        if collector is not None:
            collector.note(
                self.outbox,
                row_ids,
                [change for change, _ in built],
                sum(len(payload) for _, payload in built),
            )


# Beyond this much JSON a transaction's changes are not handed back (an answer must fit
# in a NATS message, 1 MiB by default, beside the results): its pusher waits for the
# stream instead, as it would for an owner that hands nothing back.
MAX_COLLECTED_BYTES = 512 * 1024

_collector: ContextVar[CollectedChanges | None] = ContextVar("change_collector", default=None)


@dataclass
class CollectedChanges:
    """The changes `ChangeLog`s appended within a `collect_changes` block, with their rows."""

    appended: list[tuple[Table, int, Change]] = field(default_factory=list)
    size: int = 0

    def note(
        self, outbox: Table, row_ids: Sequence[int], changes: Sequence[Change], size: int
    ) -> None:
        """Remember changes just appended to `outbox` as rows `row_ids`."""
        self.appended.extend(
            (outbox, row_id, change) for row_id, change in zip(row_ids, changes, strict=True)
        )
        self.size += size

    async def kept(self, session: AsyncSession) -> list[Change]:
        """Those still in the transaction, in the order they were made.

        A savepoint rolled back (a mutation refused after it wrote) took its outbox rows
        with it, so the rows are asked for. [] when there are too many to hand back.
        """
        if not self.appended or self.size > MAX_COLLECTED_BYTES:
            return []
        present: set[int] = set()
        for outbox in {table for table, _, _ in self.appended}:
            wanted = [row_id for table, row_id, _ in self.appended if table is outbox]
            present |= await still_present(session, outbox, wanted)
        return [change for _, row_id, change in self.appended if row_id in present]


@contextlib.contextmanager
def collect_changes() -> Iterator[CollectedChanges]:
    """Within the block, every `ChangeLog.record_all` of this task notes what it appended."""
    collected = CollectedChanges()
    token = _collector.set(collected)
    try:
        yield collected
    finally:
        _collector.reset(token)


def new_change(
    collection: str,
    *,
    record_id: uuid.UUID,
    organization_id: uuid.UUID,
    building_id: uuid.UUID | None,
    version: int,
    data: dict[str, Any] | None,
    occurred_at: datetime | None = None,
) -> Change:
    """The change of a record after a write: its public fields, or None once deleted."""
    return Change(
        collection=collection,
        id=record_id,
        organization_id=organization_id,
        op=ChangeOp.UPSERT if data is not None else ChangeOp.DELETE,
        data=data,
        version=version,
        building_id=building_id,
        occurred_at=occurred_at or datetime.now(UTC),
    )


def change_bytes(change: Change) -> bytes:
    """A change as the outbox stores and the relay publishes it (JSON)."""
    return change.model_dump_json().encode()


class BuiltChangeFields(TypedDict):
    """A change's values for `change_json` and `built_change`, already valid."""

    record_id: uuid.UUID
    organization_id: uuid.UUID
    building_id: uuid.UUID | None
    version: int
    data: dict[str, Any] | None
    occurred_at: datetime


def change_json(collection: str, **fields: Unpack[BuiltChangeFields]) -> bytes:
    """`change_bytes(new_change(...))` of values already valid, without building models.

    For bulk writers (a burst of default workflows appends six changes a building):
    pydantic's validation and dump were most of their CPU. `data` may hold UUIDs
    (asyncpg's subclass too), dates and datetimes, which encode as pydantic encodes
    them (tests/contracts compares the bytes).
    """
    return _dumps(_model_fields(collection, fields))


def built_change(collection: str, **fields: Unpack[BuiltChangeFields]) -> tuple[Change, bytes]:
    """`new_change(...)` and its `change_json`, for values already valid (read back
    from the owner's own table): the model is built without validation."""
    values = _model_fields(collection, fields)
    return Change.model_construct(**values), _dumps(values)


def _model_fields(collection: str, fields: BuiltChangeFields) -> dict[str, Any]:
    """The `Change` fields, in the model's order (the JSON's key order)."""
    data = fields["data"]
    return {
        "collection": collection,
        "id": fields["record_id"],
        "organization_id": fields["organization_id"],
        "op": ChangeOp.DELETE if data is None else ChangeOp.UPSERT,
        "data": data,
        "version": fields["version"],
        "building_id": fields["building_id"],
        "occurred_at": fields["occurred_at"],
    }


def _dumps(fields: dict[str, Any]) -> bytes:
    return orjson.dumps(fields, option=orjson.OPT_UTC_Z, default=_uuid_subclass)


def _uuid_subclass(value: object) -> str:
    """orjson encodes exactly `uuid.UUID`; asyncpg hands out a subclass of its own."""
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def pack_changes(payloads: Sequence[bytes]) -> bytes:
    """One message holding several changes, in order: a JSON array.

    Each payload is one change (`change_bytes`) or a pack of them (an outbox row holds
    a transaction's changes of one subject): packs are spliced in, never nested.
    """
    return b"[" + b",".join(p[1:-1] if p[:1] == b"[" else p for p in payloads) + b"]"


def unpack_changes(data: bytes) -> list[Any]:
    """The decoded, not yet validated, changes a CHANGES message holds, in order.

    A packed message is an array; one change alone is an object (what relays published
    before packing, and what a hand-written message may be). Raises ValueError when the
    message is not JSON.
    """
    decoded = orjson.loads(data)
    if not isinstance(decoded, list):
        return [decoded]
    if any(isinstance(item, list) for item in decoded):
        # A relay from before outbox rows were packed nests a packed row (an array)
        # inside its message: its changes are taken as they are, in order.
        return [
            change for item in decoded for change in (item if isinstance(item, list) else [item])
        ]
    return decoded
