"""Grouping messages of one subject: into one outbox row, and into one published message.

Both an append and a relay batch pack the same way (`by_subject`): a subject's messages
keep their order, a group is cut before it would pass a size cap, groups come in the
order of their first messages, and the same messages always group the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

# One outbox row holds at most this many bytes of one append's messages of one subject
# (`pack` adds its own few: brackets, commas). A
# relay batch reads rows up to `relay.RELAY_BATCH_BYTES`, and packs rows into messages
# of at most `relay.PACK_MAX_BYTES`: a row must stay well under both.
ROW_MAX_BYTES = 64 * 1024

Pack = Callable[[Sequence[bytes]], bytes]


def by_subject(messages: Sequence[tuple[str, bytes]], max_bytes: int) -> list[list[int]]:
    """The indexes of `messages` (subject, payload) grouped by subject, each group under
    `max_bytes` unless one message alone passes it."""
    groups: list[list[int]] = []
    sizes: list[int] = []
    filling: dict[str, int] = {}
    for index, (subject, payload) in enumerate(messages):
        group = filling.get(subject)
        if group is None or sizes[group] + len(payload) > max_bytes:
            group = filling[subject] = len(groups)
            groups.append([])
            sizes.append(0)
        groups[group].append(index)
        sizes[group] += len(payload)
    return groups


@dataclass(frozen=True)
class PackedRows:
    """What an append of several messages writes: fewer rows, and where each message went."""

    rows: list[tuple[str, bytes]]  # (subject, payload), in the order to number them
    row_of: list[int]  # for each message, the index in `rows` of the row holding it


def pack_rows(
    messages: Sequence[tuple[str, bytes]], pack: Pack, max_bytes: int = ROW_MAX_BYTES
) -> PackedRows:
    """Pack one transaction's `messages` into rows: one per subject (per `max_bytes`).

    A row of one message keeps its payload as it is; a row of several holds
    `pack(payloads)`, so `pack` must accept packed payloads among its inputs (the
    relay packs rows again into messages).
    """
    groups = by_subject(messages, max_bytes)
    row_of = [0] * len(messages)
    rows: list[tuple[str, bytes]] = []
    for row, group in enumerate(groups):
        for index in group:
            row_of[index] = row
        payloads = [messages[index][1] for index in group]
        rows.append((messages[group[0]][0], payloads[0] if len(payloads) == 1 else pack(payloads)))
    return PackedRows(rows, row_of)
