"""The workflows migration history builds exactly the models' schema, and unwinds."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from fieldsync.kit.db.admin import drop_database, ensure_database
from fieldsync.kit.db.engine import async_url
from fieldsync.kit.db.migrations import alembic_config, current_heads, upgrade_async
from fieldsync.workflows.schema import Base
from fieldsync.workflows.service import SERVICE
from tests import servers

TABLES = {
    "alembic_version",
    "applied_mutations",
    "node_leases",
    "outbox",
    "retired_buildings",
    "workflow_templates",
    "workflow_template_steps",
    "workflows",
    "workflow_steps",
}


@pytest.fixture
async def empty_database() -> AsyncIterator[str]:
    await servers.require_postgres()
    url = servers.database_url_for(f"workflows_migrations_{secrets.token_hex(3)}")
    assert await ensure_database(url)
    yield url
    await drop_database(url)


async def inspect(url: str) -> tuple[set[str], list[Any]]:
    """The tables of the database, and how its schema differs from the models."""

    def compare(connection: Connection) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))

    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as connection:
            names = await connection.scalars(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
            return set(names), await connection.run_sync(compare)
    finally:
        await engine.dispose()


async def test_migrations_build_the_models_schema_and_downgrade_to_nothing(
    empty_database: str,
) -> None:
    assert SERVICE.migrations is not None
    assert current_heads(SERVICE.migrations) == ("0002",)

    await upgrade_async(SERVICE.migrations, empty_database)
    tables, differences = await inspect(empty_database)
    assert tables == TABLES
    assert differences == []

    config = alembic_config(SERVICE.migrations, empty_database)
    await asyncio.to_thread(command.downgrade, config, "base")
    assert (await inspect(empty_database))[0] == {"alembic_version"}
