"""The `outbox` table and appending to it inside a transaction."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    Table,
    Text,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession

from fieldsync.kit.ids import SnowflakeGenerator


def outbox_table(metadata: MetaData) -> Table:
    """Declare a service's `outbox` table in its metadata."""
    return Table(
        "outbox",
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=False),
        Column("subject", Text, nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
        Column("published_at", DateTime(timezone=True)),
        # The relay reads only what is left to publish: keep that index small.
        Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
    )


async def append(
    session: AsyncSession, table: Table, ids: SnowflakeGenerator, *, subject: str, payload: bytes
) -> int:
    """Queue a message in the caller's transaction; it is published only if that commits."""
    message_id = ids.next_id()
    await session.execute(insert(table).values(id=message_id, subject=subject, payload=payload))
    # Delivered at commit (and folded into one per transaction by PostgreSQL): wakes
    # the relay, wherever it runs, without a polling delay.
    await session.execute(select(func.pg_notify(notify_channel(table), "")))
    return message_id


def notify_channel(table: Table) -> str:
    """The LISTEN/NOTIFY channel announcing new rows of an outbox table."""
    return f"fieldsync_{table.name}"
