"""The change backbone: each committed write appends a Change to the outbox; a relay
publishes the outbox to JetStream CHANGES."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from fieldsync.contracts.changes import CHANGES_STREAM, Change, ChangeOp, change_subject
from fieldsync.kit.ids import SnowflakeGenerator
from fieldsync.kit.logging import get_logger
from fieldsync.kit.outbox import OutboxRelay, append
from fieldsync.kit.runtime import Runtime
from fieldsync.workflows.models import outbox
from fieldsync.workflows.state import SERVICE_NAME, WorkflowsState

log = get_logger(__name__)

RETRY_SECONDS = 2.0


class ChangeLog:
    """Appends the changes of one transaction to the workflows outbox."""

    def __init__(self, session: AsyncSession, ids: SnowflakeGenerator) -> None:
        self.session = session
        self.ids = ids

    async def upsert(
        self,
        collection: str,
        *,
        organization_id: uuid.UUID,
        building_id: uuid.UUID,
        record: BaseModel,
        record_id: uuid.UUID,
        version: int,
        occurred_at: datetime,
    ) -> None:
        """The record as it is after the write (its public fields)."""
        await self._append(
            Change(
                collection=collection,
                id=record_id,
                organization_id=organization_id,
                op=ChangeOp.UPSERT,
                data=record.model_dump(mode="json"),
                version=version,
                building_id=building_id,
                occurred_at=occurred_at,
            )
        )

    async def delete(
        self,
        collection: str,
        *,
        organization_id: uuid.UUID,
        building_id: uuid.UUID,
        record_id: uuid.UUID,
        version: int,
        occurred_at: datetime,
    ) -> None:
        """The record is gone (soft-deleted)."""
        await self._append(
            Change(
                collection=collection,
                id=record_id,
                organization_id=organization_id,
                op=ChangeOp.DELETE,
                data=None,
                version=version,
                building_id=building_id,
                occurred_at=occurred_at,
            )
        )

    async def _append(self, change: Change) -> None:
        await append(
            self.session,
            outbox,
            self.ids,
            subject=change_subject(change.organization_id, change.collection),
            payload=change.model_dump_json().encode(),
        )


async def relay_outbox(runtime: Runtime) -> None:
    """Background task: publish the workflows outbox to CHANGES (one leader per database)."""
    state = WorkflowsState.of(runtime)
    jetstream = runtime.bus.jetstream
    while True:
        try:
            await jetstream.ensure_stream(CHANGES_STREAM)
            break
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("cannot declare the CHANGES stream; retrying", error=str(exc))
            await asyncio.sleep(RETRY_SECONDS)
    relay = OutboxRelay(state.database, jetstream, outbox, name=SERVICE_NAME)
    await relay.run()
