"""An append packs a transaction's messages of one subject into one outbox row."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import orjson
from sqlalchemy import select

from fieldsync.contracts.changes import pack_changes, unpack_changes
from fieldsync.kit.db.engine import Database
from fieldsync.kit.ids import SnowflakeGenerator
from fieldsync.kit.outbox import append_packed, append_packed_raw
from fieldsync.kit.outbox.packing import pack_rows
from tests.kit.outbox.conftest import OUTBOX


def bars(payloads: Sequence[bytes]) -> bytes:
    """A readable pack for the tests."""
    return b"|".join(payloads)


def test_rows_hold_each_subjects_messages_in_order_under_the_cap() -> None:
    messages = [("a", b"a1"), ("b", b"b1"), ("a", b"a2"), ("a", b"a3"), ("b", b"x" * 50)]

    packed = pack_rows(messages, bars, max_bytes=6)

    assert packed.rows == [("a", b"a1|a2|a3"), ("b", b"b1"), ("b", b"x" * 50)]
    # Where each message went: a row alone over the cap keeps its payload as it is.
    assert packed.row_of == [0, 1, 0, 0, 2]


def test_one_message_is_its_own_row_unchanged() -> None:
    assert pack_rows([("a", b"only")], bars).rows == [("a", b"only")]
    assert pack_rows([], bars).rows == []


def test_packed_changes_splice_packs_in_rather_than_nest_them() -> None:
    one, two, three = (orjson.dumps({"n": n}) for n in (1, 2, 3))
    row = pack_changes([one, two])

    assert unpack_changes(pack_changes([row, three])) == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert unpack_changes(pack_changes([three, row])) == [{"n": 3}, {"n": 1}, {"n": 2}]


def test_a_packed_row_nested_by_an_earlier_relay_is_flattened_in_order() -> None:
    one, two, three = (orjson.dumps({"n": n}) for n in (1, 2, 3))
    # What a relay that joined payloads as they are made of a packed row and a change.
    nested = b"[" + pack_changes([one, two]) + b"," + three + b"]"

    assert unpack_changes(nested) == [{"n": 1}, {"n": 2}, {"n": 3}]


async def test_an_append_writes_a_row_per_subject_and_names_each_messages_row(
    database: Database,
) -> None:
    prefix = f"packtest.{secrets.token_hex(3)}"
    a, b = f"{prefix}.a", f"{prefix}.b"
    messages = [(a, b"a1"), (b, b"b1"), (a, b"a2")]
    async with database.sessions() as session:
        row_ids = await append_packed(session, OUTBOX, SnowflakeGenerator(3), messages, bars)
        await session.commit()
    async with database.raw_connection() as connection, connection.transaction():
        raw_ids = await append_packed_raw(
            connection, OUTBOX, SnowflakeGenerator(4), [(b, b"b2"), (b, b"b3")], bars
        )

    async with database.engine.connect() as connection:
        rows = (
            await connection.execute(
                select(OUTBOX.c.id, OUTBOX.c.subject, OUTBOX.c.payload).order_by(OUTBOX.c.id)
            )
        ).all()
    assert [(subject, bytes(payload)) for _, subject, payload in rows] == [
        (a, b"a1|a2"),
        (b, b"b1"),
        (b, b"b2|b3"),
    ]
    assert row_ids == [rows[0].id, rows[1].id, rows[0].id]
    assert raw_ids == [rows[2].id, rows[2].id]
