"""The outbox relay publishes committed messages once, in order, with one leader."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from fieldsync.kit.db.engine import Database
from fieldsync.kit.ids import SnowflakeGenerator
from fieldsync.kit.messaging import Bus, ConsumerSpec, StreamSpec
from fieldsync.kit.messaging import jetstream as jetstream_module
from fieldsync.kit.outbox import OutboxRelay, append, packed_message_id
from fieldsync.kit.outbox import relay as relay_module
from fieldsync.kit.outbox.relay import packs
from tests.kit.outbox.conftest import OUTBOX
from tests.waiting import until
from tests.workflows.support import eventually


class SimulatedCrash(Exception):
    pass


def stream_name(prefix: str) -> str:
    return prefix.replace(".", "_").upper()


# Every test runs against a stream that takes atomic batches and one that does not
# (as on a server older than 2.12): the relay's guarantees are the same.
@pytest.fixture(params=[True, False], ids=["atomic", "one-by-one"])
async def stream(bus: Bus, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    # Batches of any size, so that the tests' few rows take the atomic path.
    monkeypatch.setattr(jetstream_module, "MIN_ATOMIC_BATCH", 1)
    prefix = f"outboxtest.{secrets.token_hex(4)}"
    await bus.jetstream.ensure_stream(
        StreamSpec(name=stream_name(prefix), subjects=[f"{prefix}.>"], atomic_batches=request.param)
    )
    return prefix


def relay_of(database: Database, bus: Bus, prefix: str, **options: Any) -> OutboxRelay:
    """The relay of the test outbox, publishing to the test stream."""
    return OutboxRelay(
        database, bus.jetstream, OUTBOX, name=prefix, stream=stream_name(prefix), **options
    )


async def stored(bus: Bus, prefix: str) -> list[tuple[str, bytes, str]]:
    """Every message in the test stream: (subject, payload, Nats-Msg-Id), in stream order."""
    spec = ConsumerSpec(stream=stream_name(prefix), durable=f"check_{secrets.token_hex(3)}")
    await bus.jetstream.ensure_consumer(spec)
    consumer = await bus.jetstream.pull(spec)
    found = []
    while batch := await consumer.fetch(100, timeout=0.5):
        for message in batch:
            found.append((message.subject, message.data, message.headers["Nats-Msg-Id"]))
            await message.ack()
    await consumer.close()
    return found


async def append_committed(database: Database, prefix: str, payloads: list[bytes]) -> list[int]:
    ids = SnowflakeGenerator(7)
    async with database.sessions() as session:
        appended = [
            await append(session, OUTBOX, ids, subject=f"{prefix}.item", payload=payload)
            for payload in payloads
        ]
        await session.commit()
    return appended


async def test_committed_messages_are_published_once_in_order(
    database: Database, bus: Bus, stream: str
) -> None:
    first = await append_committed(database, stream, [b"a", b"b", b"c"])
    async with database.sessions() as session:
        await append(
            session, OUTBOX, SnowflakeGenerator(8), subject=f"{stream}.item", payload=b"rolled back"
        )
        await session.rollback()
    second = await append_committed(database, stream, [b"d", b"e"])

    relay = relay_of(database, bus, stream)
    assert await relay.publish_pending() == 5
    assert await relay.publish_pending() == 0

    messages = await stored(bus, stream)
    assert [payload for _, payload, _ in messages] == [b"a", b"b", b"c", b"d", b"e"]
    assert [message_id for _, _, message_id in messages] == [
        f"{stream}:{i}" for i in first + second
    ]
    async with database.engine.connect() as connection:
        unpublished = await connection.scalar(
            select(OUTBOX.c.id).where(OUTBOX.c.published_at.is_(None)).limit(1)
        )
    assert unpublished is None


async def test_a_crash_between_publish_and_mark_does_not_duplicate(
    database: Database, bus: Bus, stream: str
) -> None:
    await append_committed(database, stream, [b"one", b"two", b"three"])

    async def crash(ids: list[int]) -> None:
        raise SimulatedCrash

    crashing = relay_of(database, bus, stream, after_publish=crash)
    with pytest.raises(SimulatedCrash):
        await crashing.publish_pending()

    restarted = relay_of(database, bus, stream)
    assert await restarted.publish_pending() == 3  # republished: the rows were never marked
    messages = await stored(bus, stream)
    assert [payload for _, payload, _ in messages] == [b"one", b"two", b"three"]


async def test_a_republished_batch_with_new_rows_stores_each_once(
    database: Database, bus: Bus, stream: str
) -> None:
    # A crash after publishing, then more commits: the next batch holds stored rows and
    # new ones. An atomic batch is refused whole for the stored ids; each row must still
    # end up in the stream exactly once, in order.
    await append_committed(database, stream, [b"one", b"two"])

    async def crash(ids: list[int]) -> None:
        raise SimulatedCrash

    with pytest.raises(SimulatedCrash):
        await relay_of(database, bus, stream, after_publish=crash).publish_pending()
    await append_committed(database, stream, [b"three", b"four"])

    assert await relay_of(database, bus, stream).publish_pending() == 4
    messages = await stored(bus, stream)
    assert [payload for _, payload, _ in messages] == [b"one", b"two", b"three", b"four"]
    assert len({message_id for _, _, message_id in messages}) == 4


async def test_one_relay_leads_and_a_standby_takes_over(
    database: Database, bus: Bus, stream: str
) -> None:
    relays = [
        relay_of(database, bus, stream, idle_seconds=0.02, standby_seconds=0.05) for _ in range(2)
    ]
    tasks = [asyncio.create_task(relay.run()) for relay in relays]
    try:
        await until(lambda: sum(relay.is_leader for relay in relays) == 1)
        leader = next(index for index, relay in enumerate(relays) if relay.is_leader)
        standby = relays[1 - leader]
        await append_committed(database, stream, [b"while leading"])
        await until(lambda: relays[leader].published >= 1)
        assert not standby.is_leader

        tasks[leader].cancel()
        await asyncio.gather(tasks[leader], return_exceptions=True)
        await append_committed(database, stream, [b"after failover"])
        await until(lambda: standby.published >= 1)
        assert standby.is_leader
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    messages = await stored(bus, stream)
    assert [payload for _, payload, _ in messages] == [b"while leading", b"after failover"]


# --- packing: one message per subject of a batch ---------------------------------------


def joined(payloads: Sequence[bytes]) -> bytes:
    """A readable pack for the tests (CHANGES packs JSON arrays)."""
    return b"|".join(payloads)


async def append_to(database: Database, rows: list[tuple[str, bytes]]) -> list[int]:
    """Commit (subject, payload) rows in this order, in one transaction; their ids."""
    ids = SnowflakeGenerator(9)
    async with database.sessions() as session:
        appended = [
            await append(session, OUTBOX, ids, subject=subject, payload=payload)
            for subject, payload in rows
        ]
        await session.commit()
    return appended


async def test_a_batch_goes_out_as_one_message_per_subject(
    database: Database, bus: Bus, stream: str
) -> None:
    a, b = f"{stream}.a", f"{stream}.b"
    ids = await append_to(database, [(a, b"a1"), (b, b"b1"), (a, b"a2"), (a, b"a3"), (b, b"b2")])

    relay = relay_of(database, bus, stream, pack=joined)
    assert await relay.publish_pending() == 5
    assert await relay.publish_pending() == 0

    # Each subject's rows in their order, its message where its first row was.
    assert await stored(bus, stream) == [
        (a, b"a1|a2|a3", packed_message_id(stream, [ids[0], ids[2], ids[3]])),
        (b, b"b1|b2", packed_message_id(stream, [ids[1], ids[4]])),
    ]


async def test_a_republished_pack_is_dropped_and_a_grown_one_stored_again(
    database: Database, bus: Bus, stream: str
) -> None:
    subject = f"{stream}.a"
    await append_to(database, [(subject, b"one"), (subject, b"two")])

    async def crash(ids: list[int]) -> None:
        raise SimulatedCrash

    with pytest.raises(SimulatedCrash):
        await relay_of(database, bus, stream, pack=joined, after_publish=crash).publish_pending()
    # The same rows again: the same message id, which the stream drops.
    with pytest.raises(SimulatedCrash):
        await relay_of(database, bus, stream, pack=joined, after_publish=crash).publish_pending()
    assert [data for _, data, _ in await stored(bus, stream)] == [b"one|two"]

    # Rows committed meanwhile pack with them: a new id, stored. Each row is in the
    # stream, in order; the earlier ones twice (copies consumers must take as no-ops).
    await append_to(database, [(subject, b"three")])
    assert await relay_of(database, bus, stream, pack=joined).publish_pending() == 3
    assert [data for _, data, _ in await stored(bus, stream)] == [b"one|two", b"one|two|three"]


async def test_a_batch_stops_at_its_byte_cap_and_the_rest_follows_at_once(
    database: Database, bus: Bus, stream: str
) -> None:
    subject = f"{stream}.a"
    await append_to(database, [(subject, bytes([n]) * 40) for n in range(1, 6)])

    capped = relay_of(database, bus, stream, batch_bytes=100)
    # Rows until the one that reaches the cap (the first row always goes).
    assert await capped.publish_pending() == 3
    assert await capped.publish_pending() == 2

    # Leading, a cut batch is followed at once, not after the idle wait.
    await append_to(database, [(subject, bytes([n]) * 40) for n in range(6, 11)])
    leading = relay_of(database, bus, stream, batch_bytes=100, idle_seconds=60, linger_seconds=0)
    task = asyncio.create_task(leading.run())
    try:
        await until(lambda: leading.published == 5, timeout=10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [data[0] for _, data, _ in await stored(bus, stream)] == list(range(1, 11))


def test_packs_are_cut_before_they_pass_the_size_cap() -> None:
    rows = [(n, "s", b"x" * 40) for n in range(1, 6)] + [(6, "t", b"y" * 500)]

    cut = packs(rows, max_bytes=100)

    assert [(pack.subject, pack.row_ids) for pack in cut] == [
        ("s", [1, 2]),
        ("s", [3, 4]),
        ("s", [5]),
        ("t", [6]),  # alone over the cap: still published, on its own
    ]
    assert packs(rows, max_bytes=100) == cut  # the same rows pack the same way


def test_a_pack_id_names_every_row_it_holds() -> None:
    # The same first row and count, another row inside (a row committed late, packed
    # after a crash): another id, so the stream does not drop it as a duplicate.
    assert packed_message_id("api", [1, 2, 5]) != packed_message_id("api", [1, 3, 5])
    assert packed_message_id("api", [1, 2, 5]) == packed_message_id("api", [1, 2, 5])
    assert packed_message_id("api", [7]) == "api:7"  # one row: the id it always had


# --- pruning: published rows are kept for the retention, then deleted ------------------


async def outbox_ids(database: Database) -> list[int]:
    async with database.engine.connect() as connection:
        return list((await connection.execute(select(OUTBOX.c.id).order_by(OUTBOX.c.id))).scalars())


async def published_hours_ago(database: Database, row_id: int, hours: int) -> None:
    async with database.engine.begin() as connection:
        await connection.execute(
            update(OUTBOX)
            .where(OUTBOX.c.id == row_id)
            .values(published_at=func.now() - timedelta(hours=hours))
        )


async def test_published_rows_past_the_retention_are_pruned_and_no_others(
    database: Database, bus: Bus, stream: str
) -> None:
    subject = f"{stream}.a"
    old, recent = await append_to(database, [(subject, b"old"), (subject, b"recent")])
    relay = relay_of(database, bus, stream)
    assert await relay.publish_pending() == 2
    (unpublished,) = await append_to(database, [(subject, b"not yet")])
    await published_hours_ago(database, old, 2)

    assert await relay.prune_published(3600) == 1
    assert await outbox_ids(database) == [recent, unpublished]
    assert await relay.prune_published(3600) == 0


async def lead_until_pruned(database: Database, bus: Bus, stream: str) -> None:
    """Run a leading relay with a one-hour retention until the outbox is empty."""
    relay = relay_of(database, bus, stream, retention_seconds=3600, idle_seconds=0.05)
    task = asyncio.create_task(relay.run())
    try:

        async def pruned() -> bool:
            return await outbox_ids(database) == []

        await eventually(pruned)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_leading_relay_prunes_past_its_retention(
    database: Database, bus: Bus, stream: str
) -> None:
    (old,) = await append_to(database, [(f"{stream}.a", b"old")])
    assert await relay_of(database, bus, stream).publish_pending() == 1
    await published_hours_ago(database, old, 2)
    await lead_until_pruned(database, bus, stream)


async def test_a_pruning_backlog_goes_a_few_slices_a_turn_until_done(
    database: Database, bus: Bus, stream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relay_module, "PRUNE_SLICE", 2)
    monkeypatch.setattr(relay_module, "PRUNE_SLICES_PER_TURN", 1)
    old = await append_to(database, [(f"{stream}.a", bytes([n])) for n in range(5)])
    assert await relay_of(database, bus, stream).publish_pending() == 5
    for row_id in old:
        await published_hours_ago(database, row_id, 2)

    # One slice of two rows: the cap holds.
    assert await relay_of(database, bus, stream).prune_published(3600, max_slices=1) == 2
    assert len(await outbox_ids(database)) == 3

    # A leading relay that prunes one slice a turn does not wait an interval between
    # turns while a backlog is left.
    await lead_until_pruned(database, bus, stream)
