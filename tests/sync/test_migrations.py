"""The sync migration history builds the models' schema, carries records over, unwinds."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import orjson
import pytest
from alembic import command

from fieldsync.contracts.changes import new_change
from fieldsync.kit.db.migrations import alembic_config, current_heads, upgrade_async
from fieldsync.sync.ingest.writer import wire_change
from fieldsync.sync.models import metadata
from fieldsync.sync.service import SERVICE
from fieldsync.sync.stored import document_sql, record_sql
from tests.schema import differences_from, scratch_database

MIGRATIONS = SERVICE.migrations or ""


@pytest.fixture
async def empty_database() -> AsyncIterator[str]:
    async for url in scratch_database("sync_migrations"):
        yield url


async def migrate(url: str, direction: str, revision: str) -> None:
    config = alembic_config(MIGRATIONS, url)
    await asyncio.to_thread(getattr(command, direction), config, revision)


async def test_migrations_build_the_models_schema_and_downgrade_to_nothing(
    empty_database: str,
) -> None:
    assert current_heads(MIGRATIONS) == ("0003",)
    await upgrade_async(MIGRATIONS, empty_database)
    assert await differences_from(empty_database, metadata) == []
    await migrate(empty_database, "downgrade", "base")
    connection = await asyncpg.connect(empty_database)
    try:
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )
    finally:
        await connection.close()
    assert [row["tablename"] for row in tables] == ["alembic_version"]


def stored_change(collection: str, record_id: uuid.UUID, record: bytes | None) -> str:
    """A change as the ingester stores it, made by the ingester's own `wire_change`."""
    change = new_change(
        collection,
        record_id=record_id,
        organization_id=uuid.uuid4(),
        building_id=None,
        version=3,
        data=None if record is None else orjson.loads(record),
    )
    return wire_change(change, record)


async def test_0003_keeps_each_change_and_the_records_come_out_of_it_byte_for_byte(
    empty_database: str,
) -> None:
    await upgrade_async(MIGRATIONS, empty_database, "0002")
    organization, live, gone = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    # Keys out of jsonb's order, quotes, and keys of its own named like the marker's
    # (last, nested): the record must come out exactly as it went in.
    record = orjson.dumps(
        {
            "id": str(live),
            "name": 'Héloïse "B" ,"op":"upsert","data":',
            "version": 3,
            "op": "upsert",
            "data": {"z": 1, "op": "upsert", "data": [1, 2]},
        }
    )
    rows = [("buildings", live, record, False), ("workflows", gone, None, True)]
    connection = await asyncpg.connect(empty_database)
    try:
        for collection, record_id, data, deleted in rows:
            await connection.execute(
                "INSERT INTO sync_records (collection, record_id, organization_id, building_id,"
                " owner_version, deleted, data, change, sync_version)"
                " VALUES ($1, $2, $3, NULL, 3, $4, $5::jsonb, $6, 7)",
                collection,
                record_id,
                organization,
                deleted,
                None if data is None else data.decode(),
                stored_change(collection, record_id, data),
            )
        await upgrade_async(MIGRATIONS, empty_database)
        row = await connection.fetchrow(
            f"SELECT change, {record_sql('change')} AS record,"  # noqa: S608 - constant SQL
            f" {document_sql('change')} AS document FROM sync_records WHERE record_id = $1",
            live,
        )
        assert row["change"] == stored_change("buildings", live, record)
        assert row["record"] == record.decode()
        assert orjson.loads(row["document"]) == {**orjson.loads(record), "_deleted": False}
        assert row["document"].startswith(record.decode()[:-1])

        await migrate(empty_database, "downgrade", "0002")
        back = {
            row["record_id"]: row["data"]
            for row in await connection.fetch("SELECT record_id, data FROM sync_records")
        }
        assert orjson.loads(back[live]) == orjson.loads(record)
        assert back[gone] is None
    finally:
        await connection.close()
