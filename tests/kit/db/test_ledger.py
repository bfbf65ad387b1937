"""The mutation ledger on a real PostgreSQL: records, claims, and lookups that stay
primary-key probes however long a client's history grows."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import MetaData, text
from sqlalchemy.dialects import postgresql

from fieldsync.kit.db.engine import Database, new_session
from fieldsync.kit.db.ledger import MutationLedger, _results_statement, mutation_ledger_table
from tests.kit.db.conftest import NewDatabase

METADATA = MetaData()
LEDGER = mutation_ledger_table(METADATA)


@pytest.fixture
async def database(new_database: NewDatabase) -> AsyncIterator[Database]:
    database = Database(await new_database("ledger"), name="ledger", pool_size=2)
    async with database.engine.begin() as connection:
        await connection.run_sync(METADATA.create_all)
    yield database
    await database.dispose()


def ledger_of(session: object, user: uuid.UUID, client: str = "phone") -> MutationLedger:
    return MutationLedger(session, LEDGER, user_id=user, client_id=client)  # type: ignore[arg-type]


async def test_recorded_results_are_found_and_a_second_record_is_refused(
    database: Database,
) -> None:
    user = uuid.uuid4()
    async with new_session(database) as session:
        assert await ledger_of(session, user).record({1: {"status": "applied"}, 2: {"n": 2}})
        await session.commit()
    async with new_session(database) as session:
        ledger = ledger_of(session, user)
        assert await ledger.results([2, 1, 3]) == {1: {"status": "applied"}, 2: {"n": 2}}
        # Another client's mutation 1 is another mutation.
        assert await ledger_of(session, user, "tablet").results([1]) == {}
        # One of these was recorded before: the record says so (the caller undoes).
        assert not await ledger.record({3: {"n": 3}, 1: {"again": True}})


async def test_claims_then_settles_what_was_not_recorded(database: Database) -> None:
    user = uuid.uuid4()
    async with new_session(database) as session:
        assert await ledger_of(session, user).record({1: {"n": 1}})
        await session.commit()
    async with new_session(database) as session:
        ledger = ledger_of(session, user)
        assert await ledger.claim([2, 1, 3]) == {2, 3}
        await ledger.settle({2: {"n": 2}, 3: {"n": 3}})
        await session.commit()
    async with new_session(database) as session:
        assert await ledger_of(session, user).results([1, 2, 3]) == {
            1: {"n": 1},
            2: {"n": 2},
            3: {"n": 3},
        }


async def test_looking_up_a_batch_probes_the_primary_key_however_long_the_history(
    database: Database,
) -> None:
    user = uuid.uuid4()
    async with database.engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO applied_mutations (user_id, client_id, mutation_id, result)"
                " SELECT :user, 'phone', n, '{}'::jsonb FROM generate_series(1, 40000) AS n"
            ),
            {"user": user},
        )
        await connection.execute(text("ANALYZE applied_mutations"))
    compiled = _results_statement(LEDGER).compile(dialect=postgresql.asyncpg.dialect())
    values = {"user_id": user, "client_id": "phone", "ids": list(range(40_001, 40_501))}
    assert compiled.positiontup is not None
    arguments = [values[name] for name in compiled.positiontup]
    async with database.raw_connection() as raw:
        plans = []
        # Both plans PostgreSQL may pick for a prepared statement.
        for mode in ("force_custom_plan", "force_generic_plan"):
            await raw.execute(f"SET plan_cache_mode = {mode}")
            plans.append(await raw.fetchval(f"EXPLAIN (FORMAT JSON) {compiled.string}", *arguments))
        await raw.execute("RESET plan_cache_mode")
    for plan in plans:
        # A hash join or a sequential scan would read all 40,000 of the client's rows.
        assert "Index Scan" in plan or "Index Only Scan" in plan, plan
        assert "Seq Scan" not in plan, plan
        assert "Hash Join" not in plan, plan
