"""Migration tests' helpers: a scratch database, and how its schema differs from models."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from fieldsync.kit.db.admin import drop_database, ensure_database
from fieldsync.kit.db.engine import async_url
from tests import servers


async def scratch_database(label: str) -> AsyncIterator[str]:
    """A new empty database named after `label` (the body of a fixture): its URL, then
    it is dropped."""
    await servers.require_postgres()
    url = servers.database_url_for(f"{label}_{secrets.token_hex(3)}")
    assert await ensure_database(url)
    yield url
    await drop_database(url)


async def differences_from(url: str, metadata: MetaData) -> list[Any]:
    """How the schema of the database at `url` differs from `metadata` (Alembic's
    autogenerate comparison; [] when they match)."""

    def compare(connection: Connection) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(connection), metadata))

    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(compare)
    finally:
        await engine.dispose()
