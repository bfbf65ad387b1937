"""Checking what an outbox relay published when it packs rows (CHANGES does)."""

from __future__ import annotations

from collections.abc import Sequence

from fieldsync.contracts.changes import pack_changes, unpack_changes
from fieldsync.kit.outbox import packed_message_id

Published = tuple[str, bytes, str]  # (subject, data, Nats-Msg-Id) of a stored message
OutboxRow = tuple[int, str, bytes]  # (id, subject, payload) of an outbox row


def assert_packed(messages: Sequence[Published], rows: Sequence[OutboxRow], relay: str) -> None:
    """`messages` carry exactly `rows`, once each: every subject's rows in id order, each
    message the pack of the rows it holds and named after them."""
    for subject in {subject for _, subject, _ in rows} | {subject for subject, _, _ in messages}:
        expected = [
            (row_id, payload) for row_id, row_subject, payload in rows if row_subject == subject
        ]
        taken = 0
        for message_subject, data, message_id in messages:
            if message_subject != subject:
                continue
            pack = expected[taken : taken + len(unpack_changes(data))]
            taken += len(pack)
            assert data == pack_changes([payload for _, payload in pack]), subject
            assert message_id == packed_message_id(relay, [row_id for row_id, _ in pack])
        assert taken == len(expected), f"{subject}: {taken} of {len(expected)} rows published"
