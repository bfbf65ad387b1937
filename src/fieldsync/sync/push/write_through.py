"""Write an owner's committed changes into the replica as the push gets them.

The owner hands back what its transaction committed (`AppliedMutations.changes`), the
same changes its relay then publishes on `CHANGES`. Writing them here, with the
ingester's own writer, makes the pusher's writes visible to pulls without waiting for
the outbox relay, the stream and the ingester. The writer takes the organization's row
lock, so versions still commit in order whoever writes; when the stream's copies
arrive, their owner versions are not newer, and they change nothing.
"""

from __future__ import annotations

import asyncpg
import nats.errors

from fieldsync.contracts.changes import Change
from fieldsync.contracts.sync import poke_subject
from fieldsync.kit.logging import get_logger
from fieldsync.kit.runtime import Runtime
from fieldsync.sync.ingest.through import written_through
from fieldsync.sync.ingest.writer import write_batch
from fieldsync.sync.push.replica import RecordKey

log = get_logger(__name__)

SERVICE_NAME = "sync"


async def write_through(runtime: Runtime, changes: list[Change]) -> dict[RecordKey, int]:
    """Write `changes` into the replica and poke; the owner version each record has now.

    A failure is logged and answered with {}: the push then waits for the ingester,
    which brings the same changes.
    """
    if not changes:
        return {}
    try:
        pool = await runtime.databases[SERVICE_NAME].raw_pool()
        async with pool.acquire() as connection:
            pokes = await write_batch(connection, changes)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        log.warning("push.write_through_failed", error=str(exc)[:200])
        return {}
    for poke in pokes:
        # The writes are committed: a lost poke only delays other clients' pulls (their
        # streams recheck), it must not fail the push.
        try:
            await runtime.bus.publish(poke_subject(poke.organization_id), poke)
        except nats.errors.Error as exc:
            log.warning("push.poke_failed", error=type(exc).__name__)
    written: dict[RecordKey, int] = {}
    for change in changes:
        key = (change.collection, change.id)
        written[key] = max(written.get(key, 0), change.version)
    written_through(runtime).wrote(written)
    return written
