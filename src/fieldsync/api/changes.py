"""The api's side of the change backbone: outbox entries for its syncable records."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from fieldsync.api.models import outbox
from fieldsync.contracts.changes import CHANGES_STREAM, Change, ChangeOp, change_subject
from fieldsync.kit.ids import SnowflakeGenerator
from fieldsync.kit.outbox import OutboxRelay, append
from fieldsync.kit.runtime import Runtime


async def record_change(
    session: AsyncSession,
    ids: SnowflakeGenerator,
    *,
    collection: str,
    record_id: uuid.UUID,
    organization_id: uuid.UUID,
    op: ChangeOp,
    data: dict[str, Any] | None,
    version: int,
    building_id: uuid.UUID | None,
) -> None:
    """Append a change to the outbox in the caller's transaction."""
    change = Change(
        collection=collection,
        id=record_id,
        organization_id=organization_id,
        op=op,
        data=data,
        version=version,
        building_id=building_id,
        occurred_at=datetime.now(UTC),
    )
    await append(
        session,
        outbox,
        ids,
        subject=change_subject(organization_id, collection),
        payload=change.model_dump_json().encode(),
    )


async def relay_outbox(runtime: Runtime) -> None:
    """Background task: publish the api's outbox to CHANGES (one leader among replicas)."""
    await runtime.bus.jetstream.ensure_stream(CHANGES_STREAM)
    relay = OutboxRelay(runtime.databases["api"], runtime.bus.jetstream, outbox, name="api")
    await relay.run()
