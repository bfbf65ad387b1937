"""Alembic, one migration history per service, driven from code (no alembic.ini).

Each service keeps `migrations/env.py` (calling `run_env`) and `migrations/versions/`
inside its package; `fieldsync migrate [SERVICE]` and the embedded stack call
`upgrade()`.
"""

from __future__ import annotations

import asyncio

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from fieldsync.kit.db.engine import async_url


def alembic_config(script_location: str, url: str) -> Config:
    """An Alembic config for a service's migrations package and database URL."""
    config = Config()
    config.set_main_option("script_location", script_location)
    # Stored as an attribute, not an option: ConfigParser would treat '%' as syntax.
    config.attributes["database_url"] = url
    return config


def upgrade(script_location: str, url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision` (blocking; run it in a thread from async code)."""
    command.upgrade(alembic_config(script_location, url), revision)


async def upgrade_async(script_location: str, url: str, revision: str = "head") -> None:
    """`upgrade` without blocking the event loop (Alembic's env runs its own loop)."""
    await asyncio.to_thread(upgrade, script_location, url, revision)


def current_heads(script_location: str) -> tuple[str, ...]:
    """The head revision(s) of a migration history."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(script_location, "postgresql://"))
    return tuple(script.get_heads())


def run_env(target_metadata: MetaData) -> None:
    """Body of every service's `env.py`: run migrations online over asyncpg."""
    url = context.config.attributes["database_url"]

    def migrate(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            compare_type=True,
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        engine = create_async_engine(async_url(url), poolclass=pool.NullPool)
        try:
            async with engine.connect() as connection:
                await connection.run_sync(migrate)
                await connection.commit()
        finally:
            await engine.dispose()

    asyncio.run(run())
