"""The workflows migration history builds exactly the models' schema, and unwinds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from fieldsync.kit.db.engine import async_url
from fieldsync.kit.db.migrations import alembic_config, current_heads, upgrade_async
from fieldsync.workflows.schema import Base
from fieldsync.workflows.service import SERVICE
from tests.schema import differences_from, scratch_database

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
    async for url in scratch_database("workflows_migrations"):
        yield url


async def inspect(url: str) -> tuple[set[str], list[Any]]:
    """The tables of the database, and how its schema differs from the models."""
    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as connection:
            names = await connection.scalars(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
            tables = set(names)
    finally:
        await engine.dispose()
    return tables, await differences_from(url, Base.metadata)


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
