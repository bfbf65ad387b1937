"""The change backbone: each committed write appends a Change to the outbox; a relay
publishes the outbox to JetStream CHANGES."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession

from fieldsync.contracts.changes import CHANGES_STREAM, ChangeLog, pack_changes
from fieldsync.kit.ids import SnowflakeGenerator
from fieldsync.kit.logging import get_logger
from fieldsync.kit.outbox import OutboxRelay
from fieldsync.kit.runtime import Runtime
from fieldsync.workflows.models import outbox
from fieldsync.workflows.state import SERVICE_NAME, WorkflowsState

log = get_logger(__name__)

RETRY_SECONDS = 2.0


def change_log(session: AsyncSession, ids: SnowflakeGenerator) -> ChangeLog:
    """Where workflows records changes to its syncable records, in the caller's transaction."""
    return ChangeLog(session, outbox, ids)


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
    relay = OutboxRelay(
        state.database,
        jetstream,
        outbox,
        name=SERVICE_NAME,
        stream=CHANGES_STREAM.name,
        pack=pack_changes,
        retention_seconds=runtime.settings.outbox_retention_hours * 3600,
    )
    await relay.run()
