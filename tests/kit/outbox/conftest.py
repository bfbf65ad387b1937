"""The outbox tests' table, in a database of their own."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import MetaData, Table

from fieldsync.kit.db.admin import drop_database, ensure_database
from fieldsync.kit.db.engine import Database
from fieldsync.kit.outbox import outbox_table
from tests import servers

metadata = MetaData()
OUTBOX: Table = outbox_table(metadata)


@pytest.fixture
async def database() -> AsyncIterator[Database]:
    await servers.require_postgres()
    url = servers.database_url_for(f"outbox_{secrets.token_hex(3)}")
    await ensure_database(url)
    db = Database(url, name="outbox-test", pool_size=4)
    async with db.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield db
    await db.dispose()
    await drop_database(url)
