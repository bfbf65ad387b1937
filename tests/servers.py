"""The real servers a test run talks to, and what to say when one is missing."""

from __future__ import annotations

import asyncio
import os
import secrets

import pytest
from redis.asyncio import Redis
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from fieldsync.kit.db.engine import async_url

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"

# One tag per test run (and per xdist worker) so parallel runs never share databases.
RUN_TAG = f"fs_test_{os.getpid()}_{secrets.token_hex(3)}"

HOW_TO_START_POSTGRES = (
    "start PostgreSQL (e.g. `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`) "
    "or point FIELDSYNC_TEST_DATABASE_URL at a server where the user may create databases"
)
HOW_TO_START_REDIS = (
    "start Redis (e.g. `redis-server --daemonize yes --port 6379 --save '' --appendonly no`) "
    "or point FIELDSYNC_TEST_REDIS_URL at one"
)


def admin_database_url() -> str:
    """The maintenance database URL tests create their databases through."""
    return os.environ.get("FIELDSYNC_TEST_DATABASE_URL", DEFAULT_DATABASE_URL)


def redis_url() -> str:
    """The Redis URL tests use (their keys carry the run tag)."""
    return os.environ.get("FIELDSYNC_TEST_REDIS_URL", DEFAULT_REDIS_URL)


def database_url_for(name: str) -> str:
    """URL of this run's database `name` on the test server."""
    return (
        make_url(admin_database_url())
        .set(database=f"{RUN_TAG}_{name}")
        .render_as_string(hide_password=False)
    )


async def require_postgres() -> None:
    """Fail the run (never skip) with instructions when PostgreSQL is unreachable."""
    engine = create_async_engine(async_url(admin_database_url()))
    try:
        async with asyncio.timeout(5), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {admin_database_url()} ({exc}): {HOW_TO_START_POSTGRES}",
            pytrace=False,
        )
    finally:
        await engine.dispose()


async def require_redis() -> None:
    """Fail the run (never skip) with instructions when Redis is unreachable."""
    client = Redis.from_url(redis_url())
    try:
        async with asyncio.timeout(5):
            await client.ping()
    except Exception as exc:
        pytest.fail(
            f"Redis is not reachable at {redis_url()} ({exc}): {HOW_TO_START_REDIS}", pytrace=False
        )
    finally:
        await client.aclose()
