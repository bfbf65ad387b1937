"""Tombstones are kept for the configured horizon, then purged.

Purging a delete at version V means a client still before V can no longer learn of
it, so the organization's `purged_through` moves to V and older checkpoints get 410
Gone (the client starts over from a null checkpoint).
"""

from __future__ import annotations

import asyncio

from fieldsync.kit.cancellation import stop_if_cancelled
from fieldsync.kit.db.engine import Database
from fieldsync.kit.logging import get_logger
from fieldsync.kit.runtime import Runtime

log = get_logger(__name__)

# Writers lock an organization's row before its records (`ingest/writer.py`); the
# purge takes the same locks in the same order, or a writer upserting a record the
# purge is deleting, while the purge waits for that writer's organization row, is a
# deadlock.
LOCK_PURGED_ORGANIZATIONS = """
SELECT organization_id FROM sync_organizations
WHERE organization_id IN (
    SELECT organization_id FROM sync_records
    WHERE deleted AND changed_at < now() - make_interval(secs => $1)
    UNION
    SELECT organization_id FROM sync_assignments
    WHERE deleted AND changed_at < now() - make_interval(secs => $1)
)
ORDER BY organization_id
FOR UPDATE
"""

PURGE = """
WITH gone_records AS (
    DELETE FROM sync_records
    WHERE deleted AND changed_at < now() - make_interval(secs => $1)
      AND organization_id = ANY($2::uuid[])
    RETURNING organization_id, sync_version
), gone_assignments AS (
    DELETE FROM sync_assignments
    WHERE deleted AND changed_at < now() - make_interval(secs => $1)
      AND organization_id = ANY($2::uuid[])
    RETURNING organization_id, sync_version
), purged AS (
    SELECT organization_id, max(sync_version) AS through, count(*) AS removed
    FROM (SELECT * FROM gone_records UNION ALL SELECT * FROM gone_assignments) AS gone
    GROUP BY organization_id
), moved AS (
    UPDATE sync_organizations o SET purged_through = GREATEST(o.purged_through, p.through)
    FROM purged p WHERE o.organization_id = p.organization_id
    RETURNING p.removed
)
SELECT coalesce(sum(removed), 0) FROM moved
"""

# At most hourly, and often enough for short horizons (tests, demos).
MAX_INTERVAL_SECONDS = 3600.0


async def purge_once(database: Database, horizon_seconds: float) -> int:
    """Remove tombstones older than the horizon; how many went."""
    pool = await database.raw_pool()
    async with pool.acquire() as connection, connection.transaction():
        locked = await connection.fetch(LOCK_PURGED_ORGANIZATIONS, horizon_seconds)
        if not locked:
            return 0
        organizations = [row["organization_id"] for row in locked]
        return int(await connection.fetchval(PURGE, horizon_seconds, organizations))


async def purge_tombstones(runtime: Runtime) -> None:
    """Background task: purge old tombstones periodically, until cancelled."""
    database = runtime.databases["sync"]
    horizon = runtime.settings.sync_tombstone_days * 86_400
    interval = min(MAX_INTERVAL_SECONDS, max(horizon / 10, 1.0))
    while True:
        stop_if_cancelled()
        try:
            removed = await purge_once(database, horizon)
            if removed:
                log.info("tombstones purged", removed=removed)
        except Exception as exc:
            stop_if_cancelled(exc)
            log.warning("tombstone purge failed; retrying later", error=str(exc))
        await asyncio.sleep(interval)
