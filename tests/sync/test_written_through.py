"""The ingester's view of this process's write-throughs: copies of what pushes wrote are
dropped from memory, and records a push is still writing are waited for, briefly."""

from __future__ import annotations

import asyncio
import time
import uuid

import orjson

from fieldsync.contracts.changes import change_bytes, new_change
from fieldsync.sync.ingest.ingester import not_written_through
from fieldsync.sync.ingest.through import WrittenThrough


def item(record_id: uuid.UUID, version: int, collection: str = "buildings") -> object:
    """A change as the ingester decodes it from a message."""
    change = new_change(
        collection,
        record_id=record_id,
        organization_id=uuid.uuid4(),
        building_id=record_id,
        version=version,
        data={"name": "x"},
    )
    return orjson.loads(change_bytes(change))


def in_seconds(seconds: float) -> float:
    return time.monotonic() + seconds


def test_a_written_version_holds_it_and_older_ones_only() -> None:
    written = WrittenThrough()
    record = uuid.uuid4()
    written.wrote({("buildings", record): 3})
    assert written.holds(("buildings", record, 3))
    assert written.holds(("buildings", record, 2))
    assert not written.holds(("buildings", record, 4))
    assert not written.holds(("workflows", record, 1))


def test_the_oldest_records_are_forgotten_first() -> None:
    written = WrittenThrough(remembered=2)
    first, second, third = (uuid.uuid4() for _ in range(3))
    written.wrote({("buildings", first): 1, ("buildings", second): 1})
    written.wrote({("buildings", first): 2})  # written again: the newest now
    written.wrote({("buildings", third): 1})
    assert written.holds(("buildings", first, 2))
    assert not written.holds(("buildings", second, 1))
    assert written.holds(("buildings", third, 1))


async def test_settling_waits_for_a_push_still_writing_the_record() -> None:
    written = WrittenThrough()
    record, other = uuid.uuid4(), uuid.uuid4()
    with written.pushing([("buildings", record)]):
        # A record no push is writing settles at once.
        await asyncio.wait_for(written.settle([("buildings", other, 1)], in_seconds(30)), 5)
        waiting = asyncio.create_task(written.settle([("buildings", record, 1)], in_seconds(30)))
        for _ in range(5):
            await asyncio.sleep(0)  # let it run up to its wait
        assert not waiting.done()
        written.wrote({("buildings", record): 1})
    await asyncio.wait_for(waiting, 5)  # the push ended: settled well before its timeout
    assert written.holds(("buildings", record, 1))


async def test_settling_gives_up_at_its_deadline() -> None:
    written = WrittenThrough()
    record = uuid.uuid4()
    with written.pushing([("buildings", record)]):
        await asyncio.wait_for(written.settle([("buildings", record, 1)], in_seconds(0.05)), 5)


async def test_a_version_written_already_is_not_waited_for() -> None:
    """A push marked for two owner requests' worth of records: what the first wrote is
    not waited for while the push goes on."""
    written = WrittenThrough()
    record = uuid.uuid4()
    with written.pushing([("buildings", record)]):
        written.wrote({("buildings", record): 2})
        await asyncio.wait_for(written.settle([("buildings", record, 2)], in_seconds(30)), 5)
        newer = asyncio.create_task(written.settle([("buildings", record, 3)], in_seconds(30)))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not newer.done()  # version 3 is not written yet: that one waits
    await asyncio.wait_for(newer, 5)


def test_assignments_are_not_remembered() -> None:
    written = WrittenThrough(remembered=1)
    record, assignment = uuid.uuid4(), uuid.uuid4()
    written.wrote({("buildings", record): 1, ("building_assignments", assignment): 1})
    assert written.holds(("buildings", record, 1))
    assert not written.holds(("building_assignments", assignment, 1))


async def test_copies_of_written_changes_are_dropped_and_the_rest_kept() -> None:
    written = WrittenThrough()
    pushed, newer, foreign = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    written.wrote({("buildings", pushed): 2, ("buildings", newer): 1})
    not_a_change = {"collection": "buildings"}
    items = [item(pushed, 1), item(pushed, 2), item(newer, 2), item(foreign, 1), not_a_change]

    kept, peeked = await not_written_through(written, items, in_seconds(30))

    assert kept == [items[2], items[3], not_a_change]
    assert peeked == [("buildings", newer, 2), ("buildings", foreign, 1), None]
