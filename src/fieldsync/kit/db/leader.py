"""One active worker among replicas: leadership held as a PostgreSQL advisory lock.

The lock is session-level, on a connection kept for as long as the leader works:
if the process dies, PostgreSQL drops the connection and the lock, and a standby
replica takes over on its next attempt.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable

import asyncpg

from fieldsync.kit.cancellation import stop_if_cancelled
from fieldsync.kit.db.engine import Database
from fieldsync.kit.logging import get_logger

log = get_logger(__name__)


def lock_key(name: str) -> int:
    """A stable 63-bit advisory-lock key for a role name."""
    return int.from_bytes(hashlib.sha256(f"leader:{name}".encode()).digest()[:8], "big") >> 1


async def lead_when_elected(
    database: Database,
    name: str,
    work: Callable[[], Awaitable[None]],
    *,
    standby_seconds: float = 1.0,
) -> None:
    """Run `work` while this process holds `name`'s lock; stand by otherwise. Until cancelled.

    `work` returning or failing gives the lock up; the loop then tries again.
    """
    key = lock_key(name)
    pool = await database.raw_pool()
    while True:
        stop_if_cancelled()
        try:
            async with pool.acquire() as connection:
                if await connection.fetchval("SELECT pg_try_advisory_lock($1)", key):
                    log.info("leading", role=name)
                    try:
                        await work()
                    finally:
                        await asyncio.shield(_unlock(connection, key))
        except Exception as exc:  # database or broker trouble: step down, try again
            stop_if_cancelled(exc)
            log.warning("leader work failed; retrying", role=name, error=str(exc))
        await asyncio.sleep(standby_seconds)


async def _unlock(connection: asyncpg.Connection, key: int) -> None:
    try:
        await connection.execute("SELECT pg_advisory_unlock($1)", key)
    except Exception:  # a broken connection: PostgreSQL releases the lock with it
        connection.terminate()
