"""What a push reads from the replica: the records it touches, and which of its writes
have not arrived yet."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from fieldsync.kit.db.engine import Database
from fieldsync.sync.stored import record_sql

RecordKey = tuple[str, uuid.UUID]

LOOKUP = """
SELECT r.collection, r.record_id, r.organization_id, r.building_id, r.deleted,
       r.owner_version, {data} AS data
FROM sync_records r
JOIN unnest($1::text[], $2::uuid[]) AS k(collection, record_id)
  ON r.collection = k.collection AND r.record_id = k.record_id
"""
LOOKUP_WITH_DATA = LOOKUP.format(
    data=f"CASE WHEN r.deleted THEN NULL ELSE {record_sql('r.change')} END"
)
# What checking a push needs: its 500 records' data would be rendered and parsed unused.
LOOKUP_WITHOUT_DATA = LOOKUP.format(data="NULL::text")

NOT_ARRIVED = """
SELECT k.collection, k.record_id
FROM unnest($1::text[], $2::uuid[], $3::bigint[]) AS k(collection, record_id, v)
LEFT JOIN sync_records r
  ON r.collection = k.collection AND r.record_id = k.record_id AND r.owner_version >= k.v
WHERE r.record_id IS NULL
"""


@dataclass(frozen=True)
class KnownRecord:
    """A record as the replica holds it."""

    organization_id: uuid.UUID
    building_id: uuid.UUID | None
    deleted: bool
    owner_version: int
    data: dict[str, Any] | None


async def lookup(
    database: Database, keys: Iterable[RecordKey], *, with_data: bool = True
) -> dict[RecordKey, KnownRecord]:
    """The replica's records among `keys` (missing keys are unknown to it); without
    `with_data`, their `data` is None."""
    wanted = list(set(keys))
    if not wanted:
        return {}
    async with database.raw_connection() as connection:
        rows = await connection.fetch(
            LOOKUP_WITH_DATA if with_data else LOOKUP_WITHOUT_DATA,
            [key[0] for key in wanted],
            [key[1] for key in wanted],
        )
    return {
        (row["collection"], row["record_id"]): KnownRecord(
            organization_id=row["organization_id"],
            building_id=row["building_id"],
            deleted=row["deleted"],
            owner_version=row["owner_version"],
            data=None if row["data"] is None else orjson.loads(row["data"]),
        )
        for row in rows
    }


async def not_arrived(database: Database, versions: dict[RecordKey, int]) -> dict[RecordKey, int]:
    """The records the replica does not hold at (at least) the given owner version yet."""
    if not versions:
        return {}
    keys = list(versions)
    async with database.raw_connection() as connection:
        rows = await connection.fetch(
            NOT_ARRIVED,
            [key[0] for key in keys],
            [key[1] for key in keys],
            [versions[k] for k in keys],
        )
    return {
        (row["collection"], row["record_id"]): versions[(row["collection"], row["record_id"])]
        for row in rows
    }
