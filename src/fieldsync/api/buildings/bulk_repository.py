"""SQL of the set-based push path (`bulk.py`): one statement per kind of mutation.

Each statement writes only the rows whose outcome is plain — a free id, a live record
at the expected version with a real change — and returns them; the caller leaves
every other row to the per-mutation path. Organization scope is in each statement:
a gone organization writes nothing.

The updates find each row by its public id only: `organization_id + 0` is checked on
the row found, never used to find rows. Without statistics (a table autovacuum has not
analyzed yet) the planner takes an organization for a handful of rows, and its cached
plan then walked all of them for every row of the batch: seconds a batch at 40,000
buildings.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import asyncpg

# The client-writable columns, in the order the statements take them.
COLUMNS = ("name", "address", "city", "country", "latitude", "longitude", "floors", "notes")

INSERT_BUILDINGS = """
INSERT INTO buildings AS b
    (id, uuid, organization_id, name, address, city, country, latitude, longitude, floors,
     notes, version)
SELECT t.id, t.uuid, o.id, t.name, t.address, t.city, t.country, t.latitude, t.longitude,
       t.floors, t.notes, 1
FROM organizations o,
     unnest($2::bigint[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::numeric[], $9::numeric[], $10::int[], $11::text[])
       AS t(id, uuid, name, address, city, country, latitude, longitude, floors, notes)
WHERE o.uuid = $1 AND o.deleted_at IS NULL
ON CONFLICT (uuid) DO NOTHING
RETURNING b.uuid, b.name, b.address, b.city, b.country, b.latitude, b.longitude, b.floors,
          b.notes, b.created_at, b.updated_at, b.version
"""

# `sent` has bit 2**i set when the mutation sends COLUMNS[i]. A mutation that changes
# nothing is not written (the version stays, no change is published), as on HTTP.
UPDATE_BUILDINGS = """
UPDATE buildings AS b SET
    name = CASE WHEN t.sent & 1 <> 0 THEN t.name ELSE b.name END,
    address = CASE WHEN t.sent & 2 <> 0 THEN t.address ELSE b.address END,
    city = CASE WHEN t.sent & 4 <> 0 THEN t.city ELSE b.city END,
    country = CASE WHEN t.sent & 8 <> 0 THEN t.country ELSE b.country END,
    latitude = CASE WHEN t.sent & 16 <> 0 THEN t.latitude ELSE b.latitude END,
    longitude = CASE WHEN t.sent & 32 <> 0 THEN t.longitude ELSE b.longitude END,
    floors = CASE WHEN t.sent & 64 <> 0 THEN t.floors ELSE b.floors END,
    notes = CASE WHEN t.sent & 128 <> 0 THEN t.notes ELSE b.notes END,
    version = b.version + 1,
    updated_at = now()
FROM unnest($2::uuid[], $3::int[], $4::int[], $5::text[], $6::text[], $7::text[], $8::text[],
            $9::numeric[], $10::numeric[], $11::int[], $12::text[])
       AS t(uuid, base_version, sent, name, address, city, country, latitude, longitude,
            floors, notes)
WHERE b.uuid = t.uuid
  AND b.organization_id + 0 = (SELECT id FROM organizations WHERE uuid = $1 AND deleted_at IS NULL)
  AND b.deleted_at IS NULL AND b.version = t.base_version
  AND (   (t.sent & 1 <> 0 AND b.name IS DISTINCT FROM t.name)
       OR (t.sent & 2 <> 0 AND b.address IS DISTINCT FROM t.address)
       OR (t.sent & 4 <> 0 AND b.city IS DISTINCT FROM t.city)
       OR (t.sent & 8 <> 0 AND b.country IS DISTINCT FROM t.country)
       OR (t.sent & 16 <> 0 AND b.latitude IS DISTINCT FROM t.latitude)
       OR (t.sent & 32 <> 0 AND b.longitude IS DISTINCT FROM t.longitude)
       OR (t.sent & 64 <> 0 AND b.floors IS DISTINCT FROM t.floors)
       OR (t.sent & 128 <> 0 AND b.notes IS DISTINCT FROM t.notes))
RETURNING b.uuid, b.name, b.address, b.city, b.country, b.latitude, b.longitude, b.floors,
          b.notes, b.created_at, b.updated_at, b.version
"""

DELETE_BUILDINGS = """
UPDATE buildings AS b SET deleted_at = now(), updated_at = now(), version = b.version + 1
FROM unnest($2::uuid[], $3::int[]) AS t(uuid, base_version)
WHERE b.uuid = t.uuid
  AND b.organization_id + 0 = (SELECT id FROM organizations WHERE uuid = $1 AND deleted_at IS NULL)
  AND b.deleted_at IS NULL AND (t.base_version IS NULL OR b.version = t.base_version)
RETURNING b.uuid, b.name, b.address, b.city, b.country, b.latitude, b.longitude, b.floors,
          b.notes, b.created_at, b.updated_at, b.version
"""


async def insert_buildings(
    connection: asyncpg.Connection,
    organization_id: uuid.UUID,
    rows: Sequence[tuple[int, uuid.UUID, dict[str, Any]]],
) -> dict[uuid.UUID, asyncpg.Record]:
    """Insert (snowflake id, public id, fields) rows whose public id is free; by public id."""
    inserted = await connection.fetch(
        INSERT_BUILDINGS,
        organization_id,
        [row_id for row_id, _, _ in rows],
        [public_id for _, public_id, _ in rows],
        *([fields[column] for _, _, fields in rows] for column in COLUMNS),
    )
    return {row["uuid"]: row for row in inserted}


async def update_buildings(
    connection: asyncpg.Connection,
    organization_id: uuid.UUID,
    rows: Sequence[tuple[uuid.UUID, int, dict[str, Any]]],
) -> dict[uuid.UUID, asyncpg.Record]:
    """Apply (public id, base version, sent fields) where live, at that version, and changed."""
    sent = [
        sum(1 << i for i, column in enumerate(COLUMNS) if column in fields) for _, _, fields in rows
    ]
    updated = await connection.fetch(
        UPDATE_BUILDINGS,
        organization_id,
        [public_id for public_id, _, _ in rows],
        [base_version for _, base_version, _ in rows],
        sent,
        *([fields.get(column) for _, _, fields in rows] for column in COLUMNS),
    )
    return {row["uuid"]: row for row in updated}


async def delete_buildings(
    connection: asyncpg.Connection,
    organization_id: uuid.UUID,
    rows: Sequence[tuple[uuid.UUID, int | None]],
) -> dict[uuid.UUID, asyncpg.Record]:
    """Soft-delete (public id, base version or None) where live and at that version."""
    deleted = await connection.fetch(
        DELETE_BUILDINGS,
        organization_id,
        [public_id for public_id, _ in rows],
        [base_version for _, base_version in rows],
    )
    return {row["uuid"]: row for row in deleted}


def building_data(row: asyncpg.Record) -> dict[str, Any]:
    """A building row as its change carries it: `BuildingOut` but `created_at`, in order.

    Read off the row without a model: the row comes from the table, whose types and
    checks are the schema's, and validating 500 rows a batch was a fifth of the api's
    push CPU. UUIDs and times stay objects; `change_json` encodes them as pydantic does.
    """
    return {
        "id": row["uuid"],
        "name": row["name"],
        "address": row["address"],
        "city": row["city"],
        "country": row["country"],
        "latitude": _float(row["latitude"]),
        "longitude": _float(row["longitude"]),
        "floors": row["floors"],
        "notes": row["notes"],
        "updated_at": row["updated_at"],
        "version": row["version"],
    }


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)
