"""What a WatermelonDB push reads from the replica: records with the version at which
each last changed, and where the organization's feed stands."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from fieldsync.kit.db.engine import Database
from fieldsync.sync.push.replica import KnownRecord, RecordKey
from fieldsync.sync.stored import record_sql

LOOKUP = f"""
SELECT r.collection, r.record_id, r.organization_id, r.building_id, r.deleted,
       r.owner_version, r.sync_version,
       CASE WHEN r.deleted THEN NULL ELSE {record_sql("r.change")} END AS data
FROM sync_records r
JOIN unnest($1::text[], $2::uuid[]) AS k(collection, record_id)
  ON r.collection = k.collection AND r.record_id = k.record_id
"""  # noqa: S608 - a constant SQL fragment, not input

ORGANIZATION_STATE = """
SELECT version, purged_through FROM sync_organizations WHERE organization_id = $1
"""


@dataclass(frozen=True)
class ReplicaRecord:
    """A record as the replica holds it, and the feed version of its last change."""

    known: KnownRecord
    sync_version: int


@dataclass(frozen=True)
class FeedState:
    """The organization's replica version, and up to which version deletes were purged."""

    version: int
    purged_through: int


async def lookup(database: Database, keys: Iterable[RecordKey]) -> dict[RecordKey, ReplicaRecord]:
    """The replica's records among `keys` (missing keys are unknown to it)."""
    wanted = list(set(keys))
    if not wanted:
        return {}
    async with database.raw_connection() as connection:
        rows = await connection.fetch(
            LOOKUP, [key[0] for key in wanted], [key[1] for key in wanted]
        )
    return {
        (row["collection"], row["record_id"]): ReplicaRecord(
            known=KnownRecord(
                organization_id=row["organization_id"],
                building_id=row["building_id"],
                deleted=row["deleted"],
                owner_version=row["owner_version"],
                data=None if row["data"] is None else orjson.loads(row["data"]),
            ),
            sync_version=int(row["sync_version"]),
        )
        for row in rows
    }


async def feed_state(database: Database, organization_id: uuid.UUID) -> FeedState:
    """Where the organization's change feed stands (zeros before its first change)."""
    async with database.raw_connection() as connection:
        row = await connection.fetchrow(ORGANIZATION_STATE, organization_id)
    if row is None:
        return FeedState(version=0, purged_through=0)
    return FeedState(version=int(row["version"]), purged_through=int(row["purged_through"]))
