"""The change backbone: every committed change to a syncable record, in JetStream `CHANGES`.

Owner services append a `Change` to their outbox in the transaction that makes it;
their relay publishes it on `changes.<organization>.<collection>` with the outbox
row id as `Nats-Msg-Id`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from fieldsync.kit.ids import SnowflakeGenerator
from fieldsync.kit.messaging.jetstream import StreamSpec
from fieldsync.kit.outbox import append_all

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
        await append_all(
            self.session,
            self.outbox,
            self.ids,
            [
                (change_subject(change.organization_id, change.collection), change_bytes(change))
                for change in changes
            ],
        )


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
