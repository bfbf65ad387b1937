"""Following the api's building changes on CHANGES with a durable pull consumer.

- A building upsert gives the building its default workflow, through the same
  idempotent create as `workflows.create` (key: the building id), on the service's own
  authority (no caller: the api already decided the building exists).
- A building delete cancels and soft-deletes the building's workflows and their steps.

Each message is acknowledged after its transaction commits, so a crash redelivers it
and the idempotent handling makes the second time a no-op. Most building changes are
edits of buildings that have their default workflow already: a fetched batch settles
all of those with one query, the new buildings' default workflows are made in one
transaction, and only the rest (deletes, and what a batch could not settle) are
handled one by one, in order. A failure is nak'ed with a
growing delay; a message that is not a building Change is terminated and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from typing import Protocol

from pydantic import ValidationError

from fieldsync.contracts.changes import CHANGES_STREAM, Change, ChangeOp
from fieldsync.contracts.workflows import default_workflow_key
from fieldsync.kit.logging import get_logger
from fieldsync.kit.messaging import ConsumerSpec
from fieldsync.kit.runtime import Runtime
from fieldsync.workflows.state import WorkflowsState
from fieldsync.workflows.workflows import creating
from fieldsync.workflows.workflows.repository import keys_in_use
from fieldsync.workflows.workflows.service import WorkflowService

log = get_logger(__name__)

# The api's collection of buildings (its contract module is not there yet).
BUILDINGS_COLLECTION = "buildings"

BUILDINGS_CONSUMER = ConsumerSpec(
    stream=CHANGES_STREAM.name,
    durable="workflows-buildings",
    filter_subjects=[f"changes.*.{BUILDINGS_COLLECTION}"],
    ack_wait_seconds=30.0,
)
FETCH_BATCH = 256
FETCH_TIMEOUT_SECONDS = 1.0
RETRY_SECONDS = 2.0
MAX_NAK_DELAY_SECONDS = 60.0


class Malformed(Exception):
    """The message is not a building change this service can act on."""


class Message(Protocol):
    """What the handler needs of a JetStream message (the kit's DurableMessage)."""

    subject: str
    data: bytes

    @property
    def delivery_count(self) -> int: ...

    async def ack(self, *, confirmed: bool = True) -> None: ...

    async def nak(self, delay_seconds: float | None = None) -> None: ...

    async def term(self) -> None: ...


def nak_delay(delivery_count: int) -> float:
    """Seconds before a failed message comes back: 1, 2, 4, ... up to a minute."""
    return float(min(2 ** max(delivery_count - 1, 0), MAX_NAK_DELAY_SECONDS))


def parse(message: Message) -> Change:
    """The building change a message carries; Malformed when it is anything else."""
    try:
        change = Change.model_validate_json(message.data)
    except ValidationError as exc:
        raise Malformed(f"not a Change: {exc.error_count()} invalid field(s)") from None
    parts = message.subject.split(".")
    if len(parts) != 3 or parts[2] != BUILDINGS_COLLECTION:
        raise Malformed(f"unexpected subject {message.subject}")
    if change.collection != BUILDINGS_COLLECTION:
        raise Malformed(f"a change of {change.collection!r}, not of buildings")
    if parts[1] != str(change.organization_id):
        raise Malformed("the subject and the change name different organizations")
    return change


async def apply(state: WorkflowsState, change: Change) -> None:
    """Bring the building's workflows in line with the change, in one transaction."""
    if change.op is ChangeOp.DELETE:
        async with state.transaction() as session:
            retired = await WorkflowService(session, state.ids).retire_building(
                change.organization_id, change.id
            )
        log.info("building deleted; workflows retired", building_id=str(change.id), count=retired)
    elif await creating.ensure_default(state, change.organization_id, change.id):
        log.info("default workflow created", building_id=str(change.id))


async def handle(state: WorkflowsState, message: Message) -> None:
    """Apply one message, then ack it; nak on failure, term when malformed."""
    try:
        change = parse(message)
    except Malformed as exc:
        log.error("malformed building change dropped", subject=message.subject, reason=str(exc))
        await message.term()
        return
    try:
        await apply(state, change)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        delay = nak_delay(message.delivery_count)
        log.warning(
            "building change failed; retrying later",
            building_id=str(change.id),
            delivery=message.delivery_count,
            retry_in=delay,
            error=str(exc) or type(exc).__name__,
        )
        await message.nak(delay)
        return
    await message.ack()


async def handle_batch(state: WorkflowsState, messages: Sequence[Message]) -> None:
    """Settle a fetched batch: upserts of buildings that have their default workflow at
    once, new buildings' default workflows in one transaction, then every other message
    in order, as `handle` does."""
    upserts: list[tuple[Message, Change]] = []
    deleted: set[uuid.UUID] = set()
    for message in messages:
        with contextlib.suppress(Malformed):  # `handle` drops it below, with a log line
            change = parse(message)
            if change.op is ChangeOp.UPSERT:
                upserts.append((message, change))
            else:
                deleted.add(change.id)
    settled: set[int] = set()
    if upserts:
        wanted = [
            (change.organization_id, default_workflow_key(change.id), change.id)
            for _, change in upserts
        ]
        try:
            async with state.database.raw_connection() as connection:
                have = await keys_in_use(connection, wanted)
        except Exception as exc:  # each message then fails (and is nak'ed) on its own
            log.warning("building changes: batch lookup failed", error=str(exc))
            await _one_by_one(state, messages, settled)
            return
        new: list[tuple[Message, Change]] = []
        for message, change in upserts:
            if (change.organization_id, default_workflow_key(change.id)) in have:
                # Unconfirmed: a redelivery of such an edit is the same no-op again.
                await message.ack(confirmed=False)
                settled.add(id(message))
            elif change.id not in deleted:  # a delete in the batch: keep their order
                new.append((message, change))
        if new:
            await _create_defaults(state, new, settled)
    await _one_by_one(state, messages, settled)


async def _create_defaults(
    state: WorkflowsState, new: list[tuple[Message, Change]], settled: set[int]
) -> None:
    """New buildings' default workflows in one transaction; on any error none are
    settled here, and each is handled (and retried) on its own after."""
    try:
        created = await creating.ensure_defaults(
            state, [(change.organization_id, change.id) for _, change in new]
        )
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.warning("building changes: batch create failed", error=str(exc) or type(exc).__name__)
        return
    log.info("default workflows created", count=created, changes=len(new))
    for message, _ in new:
        # Unconfirmed too: redelivered, the building's key is in use and it settles above.
        await message.ack(confirmed=False)
        settled.add(id(message))


async def _one_by_one(
    state: WorkflowsState, messages: Sequence[Message], settled: set[int]
) -> None:
    for message in messages:
        if id(message) not in settled:
            await handle(state, message)


async def follow_buildings(runtime: Runtime) -> None:
    """Background task: consume building changes until cancelled, reconnecting on trouble."""
    state = WorkflowsState.of(runtime)
    jetstream = runtime.bus.jetstream
    while True:
        try:
            await jetstream.ensure_stream(CHANGES_STREAM)
            await jetstream.ensure_consumer(BUILDINGS_CONSUMER)
            consumer = await jetstream.pull(BUILDINGS_CONSUMER)
            try:
                while True:
                    messages = await consumer.fetch(FETCH_BATCH, timeout=FETCH_TIMEOUT_SECONDS)
                    await handle_batch(state, messages)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.close()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("building changes consumer failed; restarting", error=str(exc))
            await asyncio.sleep(RETRY_SECONDS)
