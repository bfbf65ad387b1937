"""At-most-once writes: a ledger of applied client mutations, kept by the owner service.

A mutation is named by (user, client, mutation id). The owner records the name with its
result in the transaction that applies it, so two deliveries of the same mutation — a
client's retry, a replayed push, a crashed caller — apply it once; the later one reads
the first one's stored result. New mutations are recorded after they are applied
(`record`); a transaction that finds some recorded already claims the names before it
applies anything (`claim`, then `settle`).
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

import orjson
from sqlalchemy import (
    ARRAY,
    BigInteger,
    BindParameter,
    Column,
    DateTime,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    TextClause,
    TextualSelect,
    Uuid,
    bindparam,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession


def mutation_ledger_table(metadata: MetaData) -> Table:
    """Declare a service's `applied_mutations` table in its metadata."""
    return Table(
        "applied_mutations",
        metadata,
        Column("user_id", Uuid, nullable=False),
        Column("client_id", Text, nullable=False),
        Column("mutation_id", BigInteger, nullable=False),
        # NULL while the claiming transaction applies it; it commits with the result.
        Column("result", JSONB),
        Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
        PrimaryKeyConstraint("user_id", "client_id", "mutation_id"),
    )


class MutationLedger:
    """Claims and results of mutations, in the caller's transaction."""

    def __init__(self, session: AsyncSession, table: Table, *, user_id: uuid.UUID, client_id: str):
        self.session = session
        self.table = table
        self.user_id = user_id
        self.client_id = client_id

    async def lock(self) -> None:
        """Hold this client's mutations until the transaction ends.

        Two deliveries of one client's request then take turns: the second finds the
        first one's results instead of applying beside it, so they cannot deadlock on
        the records they both touch (the second would lock records before the ledger).
        """
        await self.session.execute(_LOCK_STATEMENT, {"key": f"{self.user_id}/{self.client_id}"})

    async def claim(self, mutation_ids: list[int]) -> set[int]:
        """Claim mutations in one statement; the ids this transaction now owns.

        The others were applied before (their results are stored). A concurrent claim
        of the same mutation waits here until the first transaction ends: PostgreSQL
        holds the second insert on the unique key. Ids are claimed in ascending order,
        so two overlapping claims cannot deadlock.
        """
        ordered = sorted(set(mutation_ids))
        if not ordered:
            return set()
        claimed = await self.session.scalars(
            _claim_statement(self.table),
            {"user_id": self.user_id, "client_id": self.client_id, "ids": ordered},
        )
        return set(claimed)

    async def results(self, mutation_ids: list[int]) -> dict[int, dict[str, Any]]:
        """The stored results of mutations applied before."""
        if not mutation_ids:
            return {}
        rows = await self.session.execute(
            _results_statement(self.table),
            {"user_id": self.user_id, "client_id": self.client_id, "ids": mutation_ids},
        )
        return {row.mutation_id: row.result for row in rows}

    async def record(self, results: dict[int, dict[str, Any]]) -> bool:
        """Store results of mutations nobody claimed, in one statement; False (and
        nothing is wrong yet) when another transaction recorded one of them first.

        A concurrent transaction's uncommitted record of the same mutation holds this
        insert until it ends, so False means it committed: the caller undoes its own
        work and answers from the ledger.
        """
        if not results:
            return True
        inserted = await self.session.scalars(
            _record_statement(self.table), self._parameters(results)
        )
        return len(list(inserted)) == len(results)

    async def settle(self, results: dict[int, dict[str, Any]]) -> None:
        """Store the results of claimed mutations (one statement)."""
        if not results:
            return
        await self.session.execute(_settle_statement(self.table), self._parameters(results))

    def _parameters(self, results: dict[int, dict[str, Any]]) -> dict[str, Any]:
        # In ascending order, as claims are: overlapping inserts cannot deadlock.
        ordered = sorted(results)
        return {
            "user_id": self.user_id,
            "client_id": self.client_id,
            "ids": ordered,
            "results": [orjson.dumps(results[mutation_id]).decode() for mutation_id in ordered],
        }


# The two-key advisory lock space never meets the one-key locks of leaders and relays.
LEDGER_LOCK_CLASS = 0x6C656467  # "ledg"
_LOCK_STATEMENT = text(
    f"SELECT pg_advisory_xact_lock({LEDGER_LOCK_CLASS}, hashtext(:key))"
).bindparams(bindparam("key", type_=Text))


def _client_batch() -> tuple[BindParameter[Any], ...]:
    """The parameters every ledger statement takes: whose mutations, and which."""
    return (
        bindparam("user_id", type_=Uuid),
        bindparam("client_id", type_=Text),
        bindparam("ids", type_=ARRAY(BigInteger)),
    )


# Arrays keep each statement's text the same for any number of mutations: one prepared
# statement, where a multi-row VALUES (or an executemany) costs per row.
@functools.cache
def _claim_statement(table: Table) -> TextClause:
    return text(
        f"INSERT INTO {table.name} (user_id, client_id, mutation_id)"  # noqa: S608 - a table name, not input
        " SELECT :user_id, :client_id, claimed FROM unnest(:ids) AS claimed"
        " ON CONFLICT DO NOTHING RETURNING mutation_id"
    ).bindparams(*_client_batch())


# One primary-key probe per id, whatever the client's history: `OFFSET 0` keeps the
# planner from flattening the lookup into a hash join over all of the client's rows
# (a sequential scan that grew with every push: 15 ms at 40,000 rows in bench/sync.py).
@functools.cache
def _results_statement(table: Table) -> TextualSelect:
    return (
        text(
            "SELECT found.mutation_id, found.result FROM unnest(:ids) AS wanted(mutation_id)"  # noqa: S608 - a table name, not input
            f" CROSS JOIN LATERAL (SELECT mutation_id, result FROM {table.name}"
            " WHERE user_id = :user_id AND client_id = :client_id"
            " AND mutation_id = wanted.mutation_id OFFSET 0) AS found"
        )
        .bindparams(*_client_batch())
        .columns(mutation_id=BigInteger, result=JSONB)
    )


@functools.cache
def _record_statement(table: Table) -> TextClause:
    return text(
        f"INSERT INTO {table.name} (user_id, client_id, mutation_id, result)"  # noqa: S608 - a table name, not input
        " SELECT :user_id, :client_id, recorded.mutation_id, recorded.result::jsonb"
        " FROM unnest(:ids, :results) AS recorded(mutation_id, result)"
        " ON CONFLICT DO NOTHING RETURNING mutation_id"
    ).bindparams(*_client_batch(), bindparam("results", type_=ARRAY(Text)))


@functools.cache
def _settle_statement(table: Table) -> TextClause:
    return text(
        f"UPDATE {table.name} AS ledger SET result = settled.result::jsonb"  # noqa: S608 - a table name, not input
        " FROM unnest(:ids, :results) AS settled(mutation_id, result)"
        " WHERE ledger.user_id = :user_id AND ledger.client_id = :client_id"
        " AND ledger.mutation_id = settled.mutation_id"
    ).bindparams(*_client_batch(), bindparam("results", type_=ARRAY(Text)))
