"""The ingester: a durable pull consumer on CHANGES feeding the replica, batch by batch.

One ingester is active (advisory-lock leader among sync replicas); it writes each
batch in stream order, and pushes write their own changes through beside it (the
organization row lock orders both, so versions still commit in order). A batch is
committed and announced with pokes, then acknowledged (one ack covers the batch: the
consumer acks "all"). Messages are packed (an array of one subject's changes each);
a large batch is written in several transactions. Redelivered changes the replica holds are no-ops.

A new leader (and a leader restarting after a failed batch) first rewinds the consumer
to its ack floor: an ack covers every message delivered before it, so a batch delivered
to a fetcher that stopped before handling it (its write failed, or the previous leader
stopped with it in flight) would otherwise be acked by the next batch's ack and never
reach the replica. After the rewind everything past the floor comes again in stream
order; what the replica already holds is dropped as a copy.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import orjson
from pydantic import TypeAdapter, ValidationError

from fieldsync.contracts.changes import CHANGES_STREAM, Change, unpack_changes
from fieldsync.contracts.collections import COLLECTIONS
from fieldsync.contracts.sync import poke_subject
from fieldsync.kit.db.leader import lead_when_elected
from fieldsync.kit.logging import get_logger
from fieldsync.kit.messaging.jetstream import ConsumerSpec, DurableMessage
from fieldsync.kit.runtime import Runtime
from fieldsync.sync.ingest.through import MAX_WAIT_SECONDS, WrittenThrough, written_through
from fieldsync.sync.ingest.writer import RecordVersion, newer_than_replica, write_batch

log = get_logger(__name__)

SERVICE_NAME = "sync"
INGEST_CONSUMER = ConsumerSpec(
    stream=CHANGES_STREAM.name,
    durable="sync-ingest",
    filter_subjects=("changes.>",),
    ack_all=True,
    # A failed-over ingester gets the unacknowledged batch again after this long.
    ack_wait_seconds=10.0,
    max_ack_pending=20_000,
)
# Messages per fetch, and the bytes after the first: single changes come 1,000 at a
# time, packed ones (up to 256 KiB each) about 5,000 changes at a time, which is
# written well inside the ack wait.
FETCH_BATCH = 1000
FETCH_MAX_BYTES = 2 * 1024 * 1024
FETCH_TIMEOUT_SECONDS = 1.0
# Changes per replica transaction: the organization row stays locked while one is
# written, and pushes writing through wait for it (1,000 was the bound before packing).
WRITE_CHUNK = 1000


# One validation call for a whole batch: cheaper than a call per change.
_CHANGES = TypeAdapter(list[Change])


def unpack(messages: list[DurableMessage]) -> list[Any]:
    """The decoded changes of a batch of messages, in order (packed or one alone); a
    message that is not JSON is logged and skipped, never retried."""
    return [item for chunk in chunks(messages) for item in chunk]


def chunks(messages: list[DurableMessage], size: int = WRITE_CHUNK) -> Iterator[list[Any]]:
    """The decoded changes of `messages` in order, `size` at a time, decoded as they are
    taken: a fetch can hold 25,000 changes, and decoding them all at once would keep
    the event loop (and the pushes it serves) waiting for tens of milliseconds."""
    items: list[Any] = []
    for message in messages:
        try:
            items += unpack_changes(message.data)
        except orjson.JSONDecodeError as exc:
            log.error("malformed change skipped", subject=message.subject, error=str(exc)[:200])
        while len(items) >= size:
            yield items[:size]
            items = items[size:]
    if items:
        yield items


def parse(items: list[Any]) -> list[Change]:
    """The changes among decoded `items`; a malformed one is logged and skipped."""
    try:
        return _CHANGES.validate_python(items)
    except ValidationError:
        pass  # one at a time below, to skip only the malformed ones
    changes: list[Change] = []
    for item in items:
        try:
            changes.append(Change.model_validate(item))
        except ValidationError as exc:
            log.error("malformed change skipped", error=str(exc)[:200])
    return changes


def _peek(item: Any) -> RecordVersion | None:
    """A record change's (collection, id) and version, read without validating it; None
    for anything else (an assignment, an unknown collection, a malformed change)."""
    try:
        collection, version = item["collection"], item["version"]
        if collection not in COLLECTIONS or type(version) is not int or not 0 < version < 2**63:
            return None
        return collection, uuid.UUID(item["id"]), version
    except (TypeError, KeyError, ValueError, AttributeError):
        return None


async def not_yet_held(
    connection: asyncpg.Connection,
    items: list[Any],
    peeked: list[RecordVersion | None] | None = None,
) -> list[Any]:
    """The decoded changes of a batch except record changes the replica holds at their
    version (`peeked`: each item's `_peek`, when already made).

    Those are the copies of what pushes wrote through; owner versions only grow, so an
    unlocked read cannot wrongly drop a change. The rest is validated and written.
    """
    peeked = [_peek(item) for item in items] if peeked is None else peeked
    keys = [key for key in peeked if key is not None]
    if not keys:
        return items
    wanted = await newer_than_replica(connection, keys)
    return [item for item, key in zip(items, peeked, strict=True) if key is None or key in wanted]


async def not_written_through(
    written: WrittenThrough, items: list[Any], deadline: float
) -> tuple[list[Any], list[RecordVersion | None]]:
    """`items` without the copies of what this process's pushes wrote through (after
    waiting, until `deadline` at most, for those still writing), each with its `_peek`."""
    peeked = [_peek(item) for item in items]
    await written.settle((key for key in peeked if key is not None), deadline)
    kept = [
        (item, key)
        for item, key in zip(items, peeked, strict=True)
        if key is None or not written.holds(key)
    ]
    return [item for item, _ in kept], [key for _, key in kept]


async def ingest(runtime: Runtime) -> None:
    """Background task: lead the ingestion when elected, until cancelled."""
    database = runtime.databases[SERVICE_NAME]

    async def consume() -> None:
        jetstream = runtime.bus.jetstream
        await jetstream.ensure_stream(CHANGES_STREAM)
        await jetstream.ensure_consumer(INGEST_CONSUMER)
        consumer = await jetstream.rewind_and_pull(INGEST_CONSUMER)
        pool = await database.raw_pool()
        written = written_through(runtime)
        try:
            while True:
                messages = await consumer.fetch(
                    FETCH_BATCH, timeout=FETCH_TIMEOUT_SECONDS, max_bytes=FETCH_MAX_BYTES
                )
                if not messages:
                    continue
                # One bound on waiting for pushes for the whole fetch: its chunks share it.
                deadline = time.monotonic() + MAX_WAIT_SECONDS
                for chunk in chunks(messages):
                    # Pushes write their own changes through: their copies here are
                    # dropped before they are validated or any lock is taken, from
                    # memory when this process's pushes wrote them, else by asking.
                    unknown, peeked = await not_written_through(written, chunk, deadline)
                    if not unknown:
                        continue
                    async with pool.acquire() as connection:
                        fresh = await not_yet_held(connection, unknown, peeked)
                        pokes = await write_batch(connection, parse(fresh)) if fresh else []
                    for poke in pokes:
                        await runtime.bus.publish(poke_subject(poke.organization_id), poke)
                # Acked once all of it is written: a failure before redelivers it whole,
                # and what was written comes again as copies.
                await messages[-1].ack()
        finally:
            with contextlib.suppress(Exception):
                await consumer.close()

    await lead_when_elected(database, "sync-ingest", consume)
