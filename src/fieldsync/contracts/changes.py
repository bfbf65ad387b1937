"""The change backbone: every committed change to a syncable record, in JetStream `CHANGES`.

Owner services append a `Change` to their outbox in the transaction that makes it;
their relay publishes it on `changes.<organization>.<collection>` with the outbox
row id as `Nats-Msg-Id`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from fieldsync.kit.messaging.jetstream import StreamSpec

# Ten minutes of dedupe: a relay restarted within it republishes nothing twice.
CHANGES_STREAM = StreamSpec(name="CHANGES", subjects=["changes.>"], duplicate_window_seconds=600)


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
