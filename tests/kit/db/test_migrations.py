"""Alembic driven from code, and the `fieldsync migrate` command, on fresh databases."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from fieldsync.api.models import Base
from fieldsync.kit.db.engine import async_url
from fieldsync.kit.db.migrations import current_heads, upgrade_async
from tests.schema import differences_from

# The `new_database` fixture (tests/kit/db/conftest.py): label -> URL of a new empty database.
NewDatabase = Callable[[str], Awaitable[str]]
API_MIGRATIONS = "fieldsync.api:migrations"
FIELDSYNC = Path(sys.executable).parent / "fieldsync"


async def query(url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    engine = create_async_engine(async_url(url))
    try:
        async with engine.begin() as connection:
            result = await connection.execute(text(sql), params)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        await engine.dispose()


API_TABLES = {
    "alembic_version",
    "node_leases",
    "organizations",
    "users",
    "auth_sessions",
    "refresh_tokens",
    "audit_events",
    "outbox",
    "buildings",
    "building_assignments",
    "applied_mutations",
}


async def tables(url: str) -> set[str]:
    rows = await query(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {name for (name,) in rows}


async def stamped(url: str) -> set[str]:
    return {version for (version,) in await query(url, "SELECT version_num FROM alembic_version")}


async def differences_from_models(url: str) -> list[Any]:
    return await differences_from(url, Base.metadata)


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        str(FIELDSYNC),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def environment_without_fieldsync(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("FIELDSYNC_")}
    env.update(extra)
    return env


def test_the_api_history_has_one_head() -> None:
    assert current_heads(API_MIGRATIONS) == ("0004",)


async def test_upgrade_creates_node_leases_and_stamps_the_head(new_database: NewDatabase) -> None:
    url = await new_database("migrate")
    assert await tables(url) == set()

    await upgrade_async(API_MIGRATIONS, url)

    assert await tables(url) == API_TABLES
    assert await stamped(url) == set(current_heads(API_MIGRATIONS))
    columns = await query(
        url,
        """
        SELECT column_name, data_type, is_nullable FROM information_schema.columns
        WHERE table_name = 'node_leases' ORDER BY ordinal_position
        """,
    )
    assert columns == [
        ("node_id", "smallint", "NO"),
        ("holder", "text", "NO"),
        ("expires_at", "timestamp with time zone", "NO"),
    ]
    assert await query(
        url,
        "SELECT conname FROM pg_constraint WHERE conrelid = 'node_leases'::regclass AND contype = 'p'",
    ) == [("pk_node_leases",)]
    # The migrated schema is exactly what the models declare.
    assert await differences_from_models(url) == []


async def test_upgrading_twice_changes_nothing(new_database: NewDatabase) -> None:
    url = await new_database("migrate_twice")
    await upgrade_async(API_MIGRATIONS, url)
    await query(
        url,
        "INSERT INTO node_leases (node_id, holder, expires_at) VALUES (3, 'kept', now())",
    )

    await upgrade_async(API_MIGRATIONS, url)

    assert await stamped(url) == set(current_heads(API_MIGRATIONS))
    assert await tables(url) == API_TABLES
    assert await query(url, "SELECT node_id, holder FROM node_leases") == [(3, "kept")]


async def test_cli_migrate_api_migrates_the_configured_database(new_database: NewDatabase) -> None:
    url = await new_database("migrate_cli")
    code, stdout, stderr = await run_cli(
        "migrate", "api", env=environment_without_fieldsync(FIELDSYNC_API_DATABASE_URL=url)
    )
    assert code == 0, stderr
    assert "migrated: api" in stdout
    assert "Traceback" not in stderr
    assert await tables(url) == API_TABLES
    assert await stamped(url) == set(current_heads(API_MIGRATIONS))


async def test_cli_migrate_api_without_a_url_says_which_variable() -> None:
    code, stdout, stderr = await run_cli("migrate", "api", env=environment_without_fieldsync())
    assert code == 2
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "FIELDSYNC_API_DATABASE_URL" in lines[0]
    assert "migrated" not in stdout
