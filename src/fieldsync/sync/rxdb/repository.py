"""SQL of the RxDB pull: one collection's documents in the caller's scope, after a
checkpoint, each rendered by PostgreSQL as the document RxDB receives.

The scope rules are the native feed's (`fieldsync.sync.pull.feed`): a technician sees
the records of the buildings assigned to them, a record enters at the later of its
own version and its assignment's, and a move-out arrives as a delete at the version
the assignment ended. Deleted documents carry only `id`, `version` and `_deleted`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from fieldsync.sync.pull.feed import ORGANIZATION_STATE
from fieldsync.sync.stored import document_sql

ORGANIZATION_DOCUMENTS = """
SELECT r.sync_version AS lwt, r.record_id AS id,
       CASE WHEN r.deleted
           THEN json_build_object('id', r.record_id, 'version', r.owner_version, '_deleted', true)::text
           ELSE {document}
       END AS document
FROM sync_records r
WHERE r.organization_id = $1 AND r.collection = $2
  AND (r.sync_version, r.record_id) > ($3, $4)
ORDER BY r.sync_version, r.record_id
LIMIT $5
""".replace("{document}", document_sql("r.change"))

TECHNICIAN_DOCUMENTS = """
SELECT GREATEST(r.sync_version, a.sync_version) AS lwt, r.record_id AS id,
       CASE WHEN r.deleted OR a.deleted
           THEN json_build_object('id', r.record_id, 'version', r.owner_version, '_deleted', true)::text
           ELSE {document}
       END AS document
FROM sync_assignments a
JOIN sync_records r
  ON r.building_id = a.building_id AND r.organization_id = a.organization_id
WHERE a.user_id = $1 AND a.organization_id = $2 AND r.collection = $3
  AND (GREATEST(r.sync_version, a.sync_version), r.record_id) > ($4, $5)
ORDER BY 1, 2
LIMIT $6
""".replace("{document}", document_sql("r.change"))


@dataclass(frozen=True)
class DocumentPage:
    """Documents after a checkpoint, and where the organization's replica stands."""

    rows: list[asyncpg.Record]
    version: int
    purged_through: int


async def read_documents(
    connection: asyncpg.Connection,
    *,
    organization_id: uuid.UUID,
    technician_id: uuid.UUID | None,
    collection: str,
    after: tuple[int, uuid.UUID],
    limit: int,
) -> DocumentPage:
    """Up to `limit` documents (columns lwt, id, document) after `after`, in one snapshot."""
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        state = await connection.fetchrow(ORGANIZATION_STATE, organization_id)
        if technician_id is None:
            rows = await connection.fetch(
                ORGANIZATION_DOCUMENTS, organization_id, collection, after[0], after[1], limit
            )
        else:
            rows = await connection.fetch(
                TECHNICIAN_DOCUMENTS,
                technician_id,
                organization_id,
                collection,
                after[0],
                after[1],
                limit,
            )
    version, purged = (0, 0) if state is None else (state["version"], state["purged_through"])
    return DocumentPage(rows=list(rows), version=int(version), purged_through=int(purged))


async def organization_version(connection: asyncpg.Connection, organization_id: uuid.UUID) -> int:
    """The organization's replica version: every change up to it is in the replica."""
    state = await connection.fetchrow(ORGANIZATION_STATE, organization_id)
    return 0 if state is None else int(state["version"])
