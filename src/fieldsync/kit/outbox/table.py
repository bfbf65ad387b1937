"""The `outbox` table and appending to it inside a transaction."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import asyncpg
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    Table,
    Text,
    TextClause,
    bindparam,
    func,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession

from fieldsync.kit.ids import SnowflakeGenerator
from fieldsync.kit.outbox.packing import Pack, pack_rows


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
    (message_id,) = await append_all(session, table, ids, [(subject, payload)])
    return message_id


async def append_all(
    session: AsyncSession,
    table: Table,
    ids: SnowflakeGenerator,
    messages: Sequence[tuple[str, bytes]],
) -> list[int]:
    """Queue `(subject, payload)` messages in id order, in one round trip; their row ids.

    One statement inserts every row and NOTIFYs the table's channel: delivered at
    commit (and folded into one per transaction by PostgreSQL), it wakes the relay,
    wherever it runs, without a polling delay. The INSERT is a data-modifying CTE,
    which PostgreSQL runs to completion even though the SELECT does not read it.
    """
    if not messages:
        return []
    message_ids = [ids.next_id() for _ in messages]
    await session.execute(
        _append_statement(table),
        {
            "ids": message_ids,
            "subjects": [subject for subject, _ in messages],
            "payloads": [payload for _, payload in messages],
            "channel": notify_channel(table),
        },
    )
    return message_ids


@functools.cache
def _append_statement(table: Table) -> TextClause:
    # Arrays keep the statement text the same for any number of rows: one prepared
    # statement, where a multi-row VALUES would be a new one for every row count.
    return text(
        f"WITH appended AS (INSERT INTO {table.name} (id, subject, payload)"  # noqa: S608 - a table name, not input
        " SELECT * FROM unnest(:ids, :subjects, :payloads))"
        " SELECT pg_notify(:channel, '')"
    ).bindparams(
        bindparam("ids", type_=ARRAY(BigInteger)),
        bindparam("subjects", type_=ARRAY(Text)),
        bindparam("payloads", type_=ARRAY(LargeBinary)),
        bindparam("channel", type_=Text),
    )


async def still_present(session: AsyncSession, table: Table, row_ids: Sequence[int]) -> set[int]:
    """Which of `row_ids` the caller's transaction still holds (a rolled-back savepoint
    removes the rows appended inside it)."""
    if not row_ids:
        return set()
    rows = await session.execute(_present_statement(table), {"ids": list(row_ids)})
    return set(rows.scalars())


@functools.cache
def _present_statement(table: Table) -> TextClause:
    # `= ANY(array)`: one prepared statement for any number of ids.
    return text(
        f"SELECT id FROM {table.name} WHERE id = ANY(:ids)"  # noqa: S608 - a table name, not input
    ).bindparams(bindparam("ids", type_=ARRAY(BigInteger)))


async def append_all_raw(
    connection: asyncpg.Connection,
    table: Table,
    ids: SnowflakeGenerator,
    messages: Sequence[tuple[str, bytes]],
) -> list[int]:
    """`append_all` on a raw asyncpg connection, inside the caller's transaction there.

    For hot paths that write without the ORM (`Database.raw_connection`): the same one
    statement, the same rows and the same NOTIFY.
    """
    if not messages:
        return []
    message_ids = [ids.next_id() for _ in messages]
    await connection.execute(
        _raw_append_statement(table.name),
        message_ids,
        [subject for subject, _ in messages],
        [payload for _, payload in messages],
        notify_channel(table),
    )
    return message_ids


async def append_packed(
    session: AsyncSession,
    table: Table,
    ids: SnowflakeGenerator,
    messages: Sequence[tuple[str, bytes]],
    pack: Pack,
) -> list[int]:
    """`append_all`, one row per subject (`packing.pack_rows`); each message's row id.

    A transaction of hundreds of messages wrote as many rows, and PostgreSQL then
    indexed, read and marked each: packed, it writes a handful.
    """
    packed = pack_rows(messages, pack)
    row_ids = await append_all(session, table, ids, packed.rows)
    return [row_ids[row] for row in packed.row_of]


async def append_packed_raw(
    connection: asyncpg.Connection,
    table: Table,
    ids: SnowflakeGenerator,
    messages: Sequence[tuple[str, bytes]],
    pack: Pack,
) -> list[int]:
    """`append_packed` on a raw asyncpg connection (see `append_all_raw`)."""
    packed = pack_rows(messages, pack)
    row_ids = await append_all_raw(connection, table, ids, packed.rows)
    return [row_ids[row] for row in packed.row_of]


@functools.cache
def _raw_append_statement(table_name: str) -> str:
    return (
        f"WITH appended AS (INSERT INTO {table_name} (id, subject, payload)"  # noqa: S608 - a table name, not input
        " SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[]))"
        " SELECT pg_notify($4, '')"
    )


def notify_channel(table: Table) -> str:
    """The LISTEN/NOTIFY channel announcing new rows of an outbox table."""
    return f"fieldsync_{table.name}"
