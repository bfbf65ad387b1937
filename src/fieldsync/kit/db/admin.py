"""Create and drop whole databases (embedded start-up and test runs)."""

from __future__ import annotations

from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from fieldsync.kit.db.engine import async_url


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def ensure_database(url: str) -> bool:
    """Create the database named in `url` unless it exists; True when it was created."""
    target = make_url(url)
    name = target.database
    if not name:
        raise ValueError(f"database URL names no database: {target.render_as_string()}")
    maintenance = async_url(url).set(database="postgres")
    engine = create_async_engine(maintenance, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            exists = await connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            if exists:
                return False
            await connection.execute(text(f"CREATE DATABASE {_quote(name)}"))
            return True
    finally:
        await engine.dispose()


async def drop_database(url: str) -> None:
    """Drop the database named in `url`, disconnecting its sessions first."""
    name = make_url(url).database
    if not name:
        raise ValueError("database URL names no database")
    maintenance = async_url(url).set(database="postgres")
    engine = create_async_engine(maintenance, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(f"DROP DATABASE IF EXISTS {_quote(name)} WITH (FORCE)"))
    finally:
        await engine.dispose()
