"""The set-based update statements find each row by its public id, whatever the statistics.

A table autovacuum has not analyzed yet gives the planner no idea how many buildings
an organization holds; the statements must still look rows up by id rather than walk
the organization's rows for every row of a batch (seconds a batch at 40,000 buildings).
"""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from fieldsync.api.buildings.bulk_repository import DELETE_BUILDINGS, UPDATE_BUILDINGS

STATEMENTS = {
    "update": (
        UPDATE_BUILDINGS,
        "uuid, uuid[], int[], int[], text[], text[], text[], text[], numeric[], numeric[],"
        " int[], text[]",
    ),
    "delete": (DELETE_BUILDINGS, "uuid, uuid[], int[]"),
}


@pytest.mark.parametrize("kind", sorted(STATEMENTS))
async def test_a_cached_plan_looks_buildings_up_by_id(api_database_url: str, kind: str) -> None:
    statement, types = STATEMENTS[kind]
    connection = await asyncpg.connect(api_database_url)
    transaction = connection.transaction()
    await transaction.start()
    try:
        organization = await connection.fetchval(
            "INSERT INTO organizations (id, uuid, name, version)"
            " VALUES (9100000000000000001, $1, 'plan probe', 1) RETURNING id",
            uuid.uuid4(),
        )
        await connection.execute(
            "INSERT INTO buildings (id, uuid, organization_id, name, version)"
            " SELECT 9100000000000000001 + g, gen_random_uuid(), $1, 'b' || g, 1"
            " FROM generate_series(1, 20000) AS g",
            organization,
        )
        # What a connection's statement cache settles on after a few executions.
        await connection.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await connection.execute(f"PREPARE probe ({types}) AS {statement}")
        nulls = ", ".join(["NULL"] * (types.count(",") + 1))
        plan = "\n".join(
            row[0] for row in await connection.fetch(f"EXPLAIN EXECUTE probe ({nulls})")
        )
    finally:
        await transaction.rollback()  # nothing of the probe stays
        await connection.close()

    assert "Index Scan using uq_buildings_uuid on buildings" in plan, plan
    assert "ix_buildings_organization" not in plan, plan
