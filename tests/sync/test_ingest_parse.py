"""Parsing a fetched batch of CHANGES: malformed messages are skipped, the rest kept in order."""

from __future__ import annotations

import uuid
from typing import Any

from nats.aio.msg import Msg

from fieldsync.contracts.changes import change_bytes, new_change
from fieldsync.kit.messaging.jetstream import DurableMessage
from fieldsync.sync.ingest.ingester import parse


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

    parsed = parse([message(data) for data in batch])

    assert [(c.version, c.data) for c in parsed] == [(v, {"name": f"B{v}"}) for v in range(1, 6)]


def test_malformed_messages_are_skipped_and_the_rest_kept() -> None:
    batch = [
        change(1, name="first"),
        b"not json",
        change(2),  # a delete
        b'{"collection": "buildings"}',  # JSON, but not a change
        change(3, name="third"),
    ]

    parsed = parse([message(data) for data in batch])

    assert [(c.version, c.data) for c in parsed] == [
        (1, {"name": "first"}),
        (2, None),
        (3, {"name": "third"}),
    ]
