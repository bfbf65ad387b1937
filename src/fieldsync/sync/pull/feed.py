"""The change feed queries: one snapshot, each row the change as the client receives it.

The ingester stores every change already rendered (`change`); a page is those texts
joined, so it goes out without anyone touching its fields. Only a technician's
move-out (a live record leaving their scope) is rendered here, as a delete.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from fieldsync.sync.pull.checkpoint import Position

ORGANIZATION_FEED = """
SELECT r.sync_version AS version, r.record_id, r.collection, r.change
FROM sync_records r
WHERE r.organization_id = $1
  AND (r.sync_version, r.record_id, r.collection) > ($2, $3, $4)
  AND ($5 OR NOT r.deleted)
ORDER BY r.sync_version, r.record_id, r.collection
LIMIT $6
"""

# A technician's feed: the records of the buildings ever assigned to them. A record
# enters the feed at the later of its own version and its assignment's: a building
# assigned at version V arrives whole at V (move-in), and when the assignment is
# removed at V every record of the building arrives as a delete at V (move-out).
TECHNICIAN_FEED = """
SELECT f.version, f.record_id, f.collection,
       CASE WHEN f.moved_out THEN
           json_build_object('collection', f.collection, 'id', f.record_id, 'op', 'delete',
                             'data', NULL)::text
       ELSE f.change
       END AS change
FROM (
    SELECT GREATEST(r.sync_version, a.sync_version) AS version, r.record_id, r.collection,
           r.change, a.deleted AND NOT r.deleted AS moved_out,
           (r.deleted OR a.deleted) AS gone
    FROM sync_assignments a
    JOIN sync_records r
      ON r.building_id = a.building_id AND r.organization_id = a.organization_id
    WHERE a.user_id = $1 AND a.organization_id = $2
) f
WHERE (f.version, f.record_id, f.collection) > ($3, $4, $5)
  AND ($6 OR NOT f.gone)
ORDER BY f.version, f.record_id, f.collection
LIMIT $7
"""

ORGANIZATION_STATE = """
SELECT version, purged_through FROM sync_organizations WHERE organization_id = $1
"""


@dataclass(frozen=True)
class FeedPage:
    """Changes after a position, and where the organization's replica stands."""

    changes: list[asyncpg.Record]
    version: int
    purged_through: int


async def read_page(
    connection: asyncpg.Connection,
    *,
    organization_id: uuid.UUID,
    technician_id: uuid.UUID | None,
    after: Position,
    include_deletes: bool,
    limit: int,
) -> FeedPage:
    """Up to `limit` changes after `after`, read in one snapshot with the org's version."""
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        state = await connection.fetchrow(ORGANIZATION_STATE, organization_id)
        if technician_id is None:
            rows = await connection.fetch(
                ORGANIZATION_FEED,
                organization_id,
                after.version,
                after.record_id,
                after.collection,
                include_deletes,
                limit,
            )
        else:
            rows = await connection.fetch(
                TECHNICIAN_FEED,
                technician_id,
                organization_id,
                after.version,
                after.record_id,
                after.collection,
                include_deletes,
                limit,
            )
    version, purged = (0, 0) if state is None else (state["version"], state["purged_through"])
    return FeedPage(changes=list(rows), version=int(version), purged_through=int(purged))
