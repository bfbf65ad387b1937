"""Reading a fetched batch of CHANGES: packed and single messages unpack in order, and
malformed messages and changes are skipped with the rest kept."""

from __future__ import annotations

import uuid
from typing import Any

from nats.aio.msg import Msg

from fieldsync.contracts.changes import change_bytes, new_change, pack_changes
from fieldsync.kit.messaging.jetstream import DurableMessage
from fieldsync.sync.ingest.ingester import chunks, parse, unpack


def message(data: bytes) -> DurableMessage:
    return DurableMessage(Msg(_client=None, subject="changes.x.buildings", data=data))  # type: ignore[arg-type]


def change(version: int, **data: Any) -> bytes:
    return change_bytes(
        new_change(
            "buildings",
            record_id=uuid.uuid4(),
            organization_id=uuid.uuid4(),
            building_id=None,
            version=version,
            data=data or None,
        )
    )


def test_a_clean_batch_is_parsed_whole_and_in_order() -> None:
    batch = [change(version, name=f"B{version}") for version in range(1, 6)]

    parsed = parse(unpack([message(data) for data in batch]))

    assert [(c.version, c.data) for c in parsed] == [(v, {"name": f"B{v}"}) for v in range(1, 6)]


def test_malformed_messages_are_skipped_and_the_rest_kept() -> None:
    batch = [
        change(1, name="first"),
        b"not json",
        change(2),  # a delete
        b'{"collection": "buildings"}',  # JSON, but not a change
        change(3, name="third"),
    ]

    parsed = parse(unpack([message(data) for data in batch]))

    assert [(c.version, c.data) for c in parsed] == [
        (1, {"name": "first"}),
        (2, None),
        (3, {"name": "third"}),
    ]


def test_packed_messages_unpack_in_order_beside_single_ones() -> None:
    batch = [
        pack_changes([change(1, name="a"), change(2, name="b")]),
        change(3, name="c"),  # one change alone, as relays published before packing
        pack_changes([change(4, name="d"), b'{"collection": "buildings"}', change(5)]),
        pack_changes([]),
    ]

    parsed = parse(unpack([message(data) for data in batch]))

    assert [(c.version, c.data) for c in parsed] == [
        (1, {"name": "a"}),
        (2, {"name": "b"}),
        (3, {"name": "c"}),
        (4, {"name": "d"}),
        (5, None),
    ]


def test_a_fetch_is_written_in_chunks_of_changes_in_order() -> None:
    batch = [
        pack_changes([change(1), change(2), change(3)]),
        b"not json",
        change(4),
        pack_changes([change(5), change(6)]),
    ]

    taken = [
        [item["version"] for item in chunk]
        for chunk in chunks([message(data) for data in batch], size=2)
    ]

    assert taken == [[1, 2], [3, 4], [5, 6]]
