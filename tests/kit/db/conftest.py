"""Throwaway databases for the database kit tests, each dropped when its test ends."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from fieldsync.kit.db.admin import drop_database, ensure_database
from tests import servers

NewDatabase = Callable[[str], Awaitable[str]]

_numbers = itertools.count()


@pytest.fixture
async def new_database() -> AsyncIterator[NewDatabase]:
    """Create empty databases on the test server (URL returned); all dropped afterwards."""
    await servers.require_postgres()
    created: list[str] = []

    async def create(label: str) -> str:
        url = servers.database_url_for(f"{label}_{next(_numbers)}")
        assert await ensure_database(url), f"database of {url} already existed"
        created.append(url)
        return url

    yield create
    for url in created:
        await drop_database(url)
