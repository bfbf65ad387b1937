"""Checking what an outbox relay published when it packs rows (CHANGES does)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fieldsync.contracts.changes import unpack_changes
from fieldsync.kit.outbox import packed_message_id

Published = tuple[str, bytes, str]  # (subject, data, Nats-Msg-Id) of a stored message
# (id, subject, payload) of an outbox row: one change, or a transaction's changes of
# one subject packed together.
OutboxRow = tuple[int, str, bytes]


def changes_in(rows: Sequence[OutboxRow]) -> list[Any]:
    """The decoded changes `rows` hold, in row order."""
    return [change for _, _, payload in rows for change in unpack_changes(payload)]


def assert_packed(messages: Sequence[Published], rows: Sequence[OutboxRow], relay: str) -> None:
    """`messages` carry exactly `rows`, once each: every subject's rows in id order, each
    message the changes of whole rows, in order, and named after those rows."""
    for subject in {subject for _, subject, _ in rows} | {subject for subject, _, _ in messages}:
        expected = [
            (row_id, unpack_changes(payload))
            for row_id, row_subject, payload in rows
            if row_subject == subject
        ]
        taken = 0
        for message_subject, data, message_id in messages:
            if message_subject != subject:
                continue
            carried = unpack_changes(data)
            held: list[int] = []
            held_changes: list[Any] = []
            while len(held_changes) < len(carried):
                assert taken < len(expected), f"{subject}: a message carries an unwritten change"
                row_id, changes = expected[taken]
                taken += 1
                held.append(row_id)
                held_changes += changes
            assert held_changes == carried, subject
            assert message_id == packed_message_id(relay, held)
        assert taken == len(expected), f"{subject}: {taken} of {len(expected)} rows published"
