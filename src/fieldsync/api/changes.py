"""The api's side of the change backbone: its outbox and the relay that publishes it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from fieldsync.api.models import outbox
from fieldsync.contracts.changes import CHANGES_STREAM, ChangeLog, pack_changes
from fieldsync.kit.ids import SnowflakeGenerator
from fieldsync.kit.outbox import OutboxRelay
from fieldsync.kit.runtime import Runtime


def change_log(session: AsyncSession, ids: SnowflakeGenerator) -> ChangeLog:
    """Where the api records changes to its syncable records, in the caller's transaction."""
    return ChangeLog(session, outbox, ids)


async def relay_outbox(runtime: Runtime) -> None:
    """Background task: publish the api's outbox to CHANGES (one leader among replicas)."""
    await runtime.bus.jetstream.ensure_stream(CHANGES_STREAM)
    relay = OutboxRelay(
        runtime.databases["api"],
        runtime.bus.jetstream,
        outbox,
        name="api",
        stream=CHANGES_STREAM.name,
        pack=pack_changes,
        retention_seconds=runtime.settings.outbox_retention_hours * 3600,
    )
    await relay.run()
