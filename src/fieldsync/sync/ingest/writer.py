"""Writes one batch of changes into the replica, in one transaction.

Each organization's part of the batch gets that organization's next version; the
organization row is locked for the transaction, so versions commit in order. A change
whose owner version is not newer than the replica's (a redelivery, or an older change
overtaken by a newer one) is a no-op, and a batch of no-ops bumps no version.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from fieldsync.contracts.changes import Change, ChangeOp
from fieldsync.contracts.collections import ASSIGNMENTS_COLLECTION, COLLECTIONS
from fieldsync.contracts.sync import MAX_POKE_BUILDINGS, Poke
from fieldsync.sync.stored import UPSERT_MARKER

UPSERT_RECORDS = """
INSERT INTO sync_records AS r
    (collection, record_id, organization_id, building_id, owner_version, deleted,
     change, sync_version, changed_at)
SELECT c, i, $1, b, v, d, w, $2, now()
FROM unnest(
    $3::text[], $4::uuid[], $5::uuid[], $6::bigint[], $7::bool[], $8::text[]
) AS t(c, i, b, v, d, w)
ON CONFLICT (collection, record_id) DO UPDATE SET
    building_id = EXCLUDED.building_id,
    owner_version = EXCLUDED.owner_version,
    deleted = EXCLUDED.deleted,
    change = EXCLUDED.change,
    sync_version = EXCLUDED.sync_version,
    changed_at = EXCLUDED.changed_at
WHERE r.owner_version < EXCLUDED.owner_version AND r.organization_id = EXCLUDED.organization_id
RETURNING building_id
"""

UPSERT_ASSIGNMENTS = """
INSERT INTO sync_assignments AS a
    (assignment_id, organization_id, building_id, user_id, owner_version, deleted,
     sync_version, changed_at)
SELECT i, $1, b, u, v, d, $2, now()
FROM unnest($3::uuid[], $4::uuid[], $5::uuid[], $6::bigint[], $7::bool[]) AS t(i, b, u, v, d)
ON CONFLICT (assignment_id) DO UPDATE SET
    owner_version = EXCLUDED.owner_version,
    deleted = EXCLUDED.deleted,
    sync_version = EXCLUDED.sync_version,
    changed_at = EXCLUDED.changed_at
WHERE a.owner_version < EXCLUDED.owner_version AND a.organization_id = EXCLUDED.organization_id
RETURNING building_id, user_id
"""

# Which (collection, id, version) changes are newer than the replica, read without a
# lock: owner versions only grow, so a change found not newer stays a no-op whatever
# commits meanwhile.
NEWER_THAN_REPLICA = """
SELECT t.c AS collection, t.i AS record_id, t.v AS version
FROM unnest($1::text[], $2::uuid[], $3::bigint[]) AS t(c, i, v)
LEFT JOIN sync_records r ON r.collection = t.c AND r.record_id = t.i
WHERE r.owner_version IS NULL OR r.owner_version < t.v
"""

RecordVersion = tuple[str, uuid.UUID, int]  # (collection, record id, owner version)


async def newer_than_replica(
    connection: asyncpg.Connection, keys: list[RecordVersion]
) -> set[RecordVersion]:
    """Those of `keys` the replica does not hold at (at least) that version."""
    rows = await connection.fetch(
        NEWER_THAN_REPLICA,
        [collection for collection, _, _ in keys],
        [record_id for _, record_id, _ in keys],
        [version for _, _, version in keys],
    )
    return {(row["collection"], row["record_id"], row["version"]) for row in rows}


LOCK_ORGANIZATION = """
INSERT INTO sync_organizations AS o (organization_id) VALUES ($1)
ON CONFLICT (organization_id) DO UPDATE SET version = o.version
RETURNING version
"""


@dataclass
class OrganizationBatch:
    """One organization's changes of a batch, newest per record."""

    records: dict[tuple[str, uuid.UUID], Change] = field(default_factory=dict)
    assignments: dict[uuid.UUID, Change] = field(default_factory=dict)
    # An assignment's delete carries no data: the building and user of its upsert.
    assignment_users: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)

    def add(self, change: Change) -> None:
        """Keep the newest change of each record (owner versions only grow)."""
        if change.collection == ASSIGNMENTS_COLLECTION:
            kept = self.assignments.get(change.id)
            if kept is None or kept.version <= change.version:
                self.assignments[change.id] = change
            if change.data is not None and "user_id" in change.data:
                self.assignment_users[change.id] = uuid.UUID(str(change.data["user_id"]))
            return
        key = (change.collection, change.id)
        kept = self.records.get(key)
        if kept is None or kept.version <= change.version:
            self.records[key] = change


def wire_record(change: Change) -> dict[str, Any] | None:
    """The record as clients see it: the collection's fields, its id and version."""
    if change.op is ChangeOp.DELETE or change.data is None:
        return None
    record = COLLECTIONS[change.collection].public(change.data)
    record["id"] = str(change.id)
    record["version"] = change.version
    if record.get("updated_at") is None:
        # Steps carry no updated_at of their own: the change's time is when they were.
        record["updated_at"] = change.occurred_at.isoformat()
    return record


_UPSERT_MARKER = UPSERT_MARKER.encode()


def wire_change(change: Change, record: bytes | None) -> str:
    """The change as a pull sends it and the replica stores it (`fieldsync.sync.stored`).

    `record` is the record's JSON (`wire_record`, encoded), spliced in as it is.
    """
    head = orjson.dumps({"collection": change.collection, "id": str(change.id)})[:-1]
    if record is None:
        return (head + b',"op":"delete","data":null}').decode()
    return (head + _UPSERT_MARKER + record + b"}").decode()


def _encoded(record: dict[str, Any] | None) -> bytes | None:
    return None if record is None else orjson.dumps(record)


def group(changes: list[Change]) -> dict[uuid.UUID, OrganizationBatch]:
    """Split a batch by organization, ignoring collections sync does not know."""
    batches: dict[uuid.UUID, OrganizationBatch] = defaultdict(OrganizationBatch)
    for change in changes:
        if change.collection in COLLECTIONS or change.collection == ASSIGNMENTS_COLLECTION:
            batches[change.organization_id].add(change)
    return batches


async def write_batch(connection: asyncpg.Connection, changes: list[Change]) -> list[Poke]:
    """Apply `changes` (in stream order) in one transaction; the pokes to send after commit."""
    pokes: list[Poke] = []
    async with connection.transaction():
        # Organizations in a fixed order: two ingesters (during a failover) cannot deadlock.
        for organization_id, batch in sorted(group(changes).items()):
            poke = await _write_organization(connection, organization_id, batch)
            if poke is not None:
                pokes.append(poke)
    return pokes


async def _write_organization(
    connection: asyncpg.Connection, organization_id: uuid.UUID, batch: OrganizationBatch
) -> Poke | None:
    current = await connection.fetchval(LOCK_ORGANIZATION, organization_id)
    version = int(current) + 1
    buildings: set[uuid.UUID] = set()
    users: set[uuid.UUID] = set()
    changed = False
    if batch.records:
        rows = list(batch.records.values())
        data = [_encoded(wire_record(change)) for change in rows]
        written = await connection.fetch(
            UPSERT_RECORDS,
            organization_id,
            version,
            [change.collection for change in rows],
            [change.id for change in rows],
            [change.building_id for change in rows],
            [change.version for change in rows],
            [record is None for record in data],
            [wire_change(change, record) for change, record in zip(rows, data, strict=True)],
        )
        changed = changed or bool(written)
        buildings.update(row["building_id"] for row in written if row["building_id"])
    if batch.assignments:
        written = await _write_assignments(
            connection, organization_id, version, list(batch.assignments.values()), batch
        )
        changed = changed or bool(written)
        for row in written:
            buildings.add(row["building_id"])
            users.add(row["user_id"])
    if not changed:
        return None
    await connection.execute(
        "UPDATE sync_organizations SET version = $2 WHERE organization_id = $1",
        organization_id,
        version,
    )
    named = sorted(buildings) if len(buildings) <= MAX_POKE_BUILDINGS else None
    return Poke(
        organization_id=organization_id, version=version, buildings=named, users=sorted(users)
    )


async def _write_assignments(
    connection: asyncpg.Connection,
    organization_id: uuid.UUID,
    version: int,
    changes: list[Change],
    batch: OrganizationBatch,
) -> list[asyncpg.Record]:
    # A delete of an assignment this batch did not see created: its user is in the
    # replica already (the row exists), so the insert half is never used for it.
    known = {
        row["assignment_id"]: row["user_id"]
        for row in await connection.fetch(
            "SELECT assignment_id, user_id FROM sync_assignments WHERE assignment_id = ANY($1)",
            [change.id for change in changes],
        )
    }
    usable = [
        change
        for change in changes
        if change.building_id is not None
        and (change.id in batch.assignment_users or change.id in known)
    ]
    if not usable:
        return []
    return list(
        await connection.fetch(
            UPSERT_ASSIGNMENTS,
            organization_id,
            version,
            [change.id for change in usable],
            [change.building_id for change in usable],
            [batch.assignment_users.get(change.id) or known[change.id] for change in usable],
            [change.version for change in usable],
            [change.op is ChangeOp.DELETE for change in usable],
        )
    )
