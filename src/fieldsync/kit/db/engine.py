"""One async engine and session factory per service database."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from sqlalchemy import event, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from fieldsync.kit.errors import Unavailable


def async_url(url: str) -> URL:
    """Point a plain `postgresql://` URL at the asyncpg driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+asyncpg"):
        return parsed.set(drivername="postgresql+asyncpg")
    raise ValueError(f"expected a postgresql:// URL, got {parsed.drivername}://")


# Connections older than this are replaced at checkout: bounds what a silently dropped
# connection (a NAT or proxy timeout, which no socket event announces) can cost.
RECYCLE_SECONDS = 1800


def _discard_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Pool checkout hook: refuse a connection asyncpg already knows is closed.

    A server restart or a terminated backend closes the socket, which asyncpg sees
    without a query; `DisconnectionError` makes the pool drop it and check out another.
    """
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the database closed this pooled connection")


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Return a raw connection to its pool without asyncpg's reset query.

    asyncpg still rolls back an open transaction and drops listener callbacks; its
    reset query (unlock advisory locks, close cursors, UNLISTEN, RESET ALL) would add a
    round trip to every request. Code on the raw pool leaves no session state behind:
    session advisory locks are unlocked by their holder (`kit.db.leader`), listeners
    are removed (`kit.outbox.relay`), and nothing issues SET or DECLARE.
    """


class Database:
    """A service's database: engine, session factory and a readiness probe."""

    def __init__(self, url: str, *, name: str, pool_size: int = 10) -> None:
        self.name = name
        self.url = async_url(url)
        self.engine: AsyncEngine = create_async_engine(
            self.url,
            pool_size=pool_size,
            max_overflow=pool_size,
            # No pre-ping: it costs three round trips per checkout (the asyncpg dialect
            # wraps it in a transaction). A connection the server closed is discarded at
            # checkout instead (`_discard_closed`, no round trip); one that breaks
            # mid-request is a 503 (`connection_invalidated`) and leaves the pool.
            pool_recycle=RECYCLE_SECONDS,
            connect_args={"server_settings": {"application_name": f"fieldsync-{name}"}},
        )
        event.listen(self.engine.sync_engine, "checkout", _discard_closed)
        # expire_on_commit=False: objects stay readable after the edge commits them.
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._pool_size = pool_size
        self._raw_pool: asyncpg.Pool | None = None
        self._raw_pool_lock = asyncio.Lock()

    async def raw_pool(self) -> asyncpg.Pool:
        """A plain asyncpg pool on the same database, created on first use.

        For hot paths that stream rows or build JSON in PostgreSQL (sync pulls and
        ingestion), where the ORM's per-row work would cost most of the time.
        """
        if self._raw_pool is None:
            async with self._raw_pool_lock:
                if self._raw_pool is None:
                    dsn = self.url.set(drivername="postgresql").render_as_string(
                        hide_password=False
                    )
                    self._raw_pool = await asyncpg.create_pool(
                        dsn,
                        min_size=1,
                        max_size=self._pool_size,
                        reset=_keep_session,
                        server_settings={"application_name": f"fieldsync-{self.name}"},
                    )
        return self._raw_pool

    @contextlib.asynccontextmanager
    async def raw_connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection from the raw pool; losing the database is `Unavailable` (503)."""
        try:
            pool = await self.raw_pool()
            async with pool.acquire() as connection:
                yield connection
        except (
            OSError,
            asyncpg.PostgresConnectionError,
            asyncpg.TooManyConnectionsError,
            asyncpg.CannotConnectNowError,
            asyncpg.InterfaceError,
        ) as exc:
            raise Unavailable(f"the {self.name} database cannot be reached now") from exc

    async def ping(self) -> None:
        """Run `SELECT 1`; raises when the database cannot be reached."""
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        """Close every pooled connection."""
        if self._raw_pool is not None:
            await self._raw_pool.close()
            self._raw_pool = None
        await self.engine.dispose()


def new_session(database: Database) -> AsyncSession:
    """A fresh session outside any request (background tasks, CLI commands)."""
    return database.sessions()
