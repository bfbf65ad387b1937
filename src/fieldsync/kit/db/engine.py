"""One async engine and session factory per service database."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
from sqlalchemy import make_url, text
from sqlalchemy.engine import URL
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


class Database:
    """A service's database: engine, session factory and a readiness probe."""

    def __init__(self, url: str, *, name: str, pool_size: int = 10) -> None:
        self.name = name
        self.url = async_url(url)
        self.engine: AsyncEngine = create_async_engine(
            self.url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            connect_args={"server_settings": {"application_name": f"fieldsync-{name}"}},
        )
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
