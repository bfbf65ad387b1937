"""Following the api's building changes on CHANGES with a durable pull consumer.

- A building upsert gives the building its default workflow, through the same
  idempotent create as `workflows.create` (key: the building id), on the service's own
  authority (no caller: the api already decided the building exists).
- A building delete cancels and soft-deletes the building's workflows and their steps.

A message packs one organization's building changes (see `contracts.changes`). Each
message is acknowledged after its changes commit, so a crash redelivers it and the
idempotent handling makes the second time a no-op. Most building changes are edits of
buildings that have their default workflow already: a fetched batch settles all of
those with one query, the new buildings' default workflows are made in one
transaction, and only the rest (messages with deletes, and what a batch could not
settle) are handled one by one, in order. A failure is nak'ed with a
growing delay; a message that is not a building Change is terminated and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from typing import Protocol

import orjson
from pydantic import ValidationError

from fieldsync.contracts.changes import CHANGES_STREAM, Change, ChangeOp, unpack_changes
from fieldsync.contracts.workflows import default_workflow_key
from fieldsync.kit.errors import Conflict
from fieldsync.kit.logging import get_logger
from fieldsync.kit.messaging import ConsumerSpec
from fieldsync.kit.runtime import Runtime
from fieldsync.workflows.buildings.known import BuildingsWithDefaults
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
# Messages per fetch, each packing up to 256 changes (a relay batch): settled in
# slices of about `SLICE_CHANGES` changes, each acked when it is done, so a slice even
# handled one by one is settled well within the ack wait.
FETCH_BATCH = 32
SLICE_CHANGES = 512
# New buildings whose default workflows one transaction makes (its building locks
# hold up deletes and API creates of those buildings meanwhile).
CREATE_SLICE = 256
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


def parse(message: Message) -> list[Change]:
    """The building changes a message carries, in order (a packed message holds several);
    an item that is not one is logged and dropped. Malformed when none is usable."""
    try:
        items = unpack_changes(message.data)
    except orjson.JSONDecodeError:
        raise Malformed("not JSON") from None
    parts = message.subject.split(".")
    if len(parts) != 3 or parts[2] != BUILDINGS_COLLECTION:
        raise Malformed(f"unexpected subject {message.subject}")
    changes: list[Change] = []
    problems: list[str] = []
    for item in items:
        try:
            change = Change.model_validate(item)
        except ValidationError as exc:
            problems.append(f"not a Change: {exc.error_count()} invalid field(s)")
            continue
        if change.collection != BUILDINGS_COLLECTION:
            problems.append(f"a change of {change.collection!r}, not of buildings")
        elif parts[1] != str(change.organization_id):
            problems.append("the subject and the change name different organizations")
        else:
            changes.append(change)
    if not changes:
        raise Malformed("; ".join(problems[:3]) or "no changes")
    if problems:
        log.error(
            "malformed building changes dropped", subject=message.subject, reasons=problems[:3]
        )
    return changes


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
    """Apply one message's changes in order, then ack it; term when malformed.

    A change that fails is retried later (the message is nak'ed with a growing delay),
    and so are that building's later changes in the message; the other buildings' are
    applied now, so a building that keeps failing holds up no other. The retry applies
    the message again: what was applied is a no-op then.
    """
    try:
        changes = parse(message)
    except Malformed as exc:
        log.error("malformed building change dropped", subject=message.subject, reason=str(exc))
        await message.term()
        return
    failed: set[uuid.UUID] = set()
    for change in changes:
        if change.id in failed:
            continue  # its order matters: after the failed one, on the retry
        try:
            await apply(state, change)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failed.add(change.id)
            log.warning(
                "building change failed; retrying later",
                building_id=str(change.id),
                delivery=message.delivery_count,
                retry_in=nak_delay(message.delivery_count),
                error=str(exc) or type(exc).__name__,
            )
    if failed:
        await message.nak(nak_delay(message.delivery_count))
    else:
        await message.ack()


async def handle_batch(
    state: WorkflowsState,
    messages: Sequence[Message],
    known: BuildingsWithDefaults | None = None,
) -> None:
    """Settle a fetched batch: messages whose changes are all upserts of buildings that
    have their default workflow at once, new buildings' default workflows in one
    transaction, then every other message in order, as `handle` does.

    `known` holds buildings found with their default workflow before: they are not
    asked about again, and those this batch finds or makes are added.
    """
    known = BuildingsWithDefaults() if known is None else known
    parsed: list[tuple[Message, list[Change]]] = []
    for message in messages:
        with contextlib.suppress(Malformed):  # `handle` drops it below, with a log line
            parsed.append((message, parse(message)))
    changes = [change for _, its in parsed for change in its]
    upserts = [change for change in changes if change.op is ChangeOp.UPSERT]
    deleted = {change.id for change in changes if change.op is ChangeOp.DELETE}
    for building_id in deleted:
        known.discard(building_id)
    settled: set[int] = set()
    unknown = [change for change in upserts if change.id not in known]
    if unknown:
        try:
            async with state.database.raw_connection() as connection:
                have = await keys_in_use(
                    connection,
                    [(c.organization_id, default_workflow_key(c.id), c.id) for c in unknown],
                )
        except Exception as exc:  # each message then fails (and is nak'ed) on its own
            log.warning("building changes: batch lookup failed", error=str(exc))
            await _one_by_one(state, messages, settled)
            return
        # A building deleted in the batch keeps its order: made (or not) one by one.
        new = {
            change.id: change
            for change in unknown
            if (change.organization_id, default_workflow_key(change.id)) not in have
            and change.id not in deleted
        }
        if new and not await _create_defaults(state, list(new.values())):
            new = {}
        known.add(
            change.id
            for change in unknown
            if change.id not in deleted
            and (
                change.id in new
                or (change.organization_id, default_workflow_key(change.id)) in have
            )
        )
    for message, its in parsed:
        if all(change.op is ChangeOp.UPSERT and change.id in known for change in its):
            # Unconfirmed: redelivered, every building's key is in use and it settles
            # here again.
            await message.ack(confirmed=False)
            settled.add(id(message))
    await _one_by_one(state, messages, settled)


def slices(messages: Sequence[Message], size: int = SLICE_CHANGES) -> list[list[Message]]:
    """Consecutive messages holding about `size` changes together (a message is never
    split; its changes are counted by their "collection" keys, without decoding it)."""
    pieces: list[list[Message]] = []
    held = size
    for message in messages:
        count = message.data.count(b'"collection"') or 1
        if held + count > size:
            pieces.append([])
            held = 0
        pieces[-1].append(message)
        held += count
    return pieces


async def _create_defaults(state: WorkflowsState, new: list[Change]) -> bool:
    """New buildings' default workflows, `CREATE_SLICE` buildings a transaction; False on
    any error (then each building not made yet is handled, and retried, on its own)."""
    created = 0
    try:
        for start in range(0, len(new), CREATE_SLICE):
            created += await creating.ensure_defaults(
                state,
                [
                    (change.organization_id, change.id)
                    for change in new[start : start + CREATE_SLICE]
                ],
            )
    except asyncio.CancelledError:
        raise
    except Conflict as exc:
        # Mostly expected: the api made some of these default workflows itself meanwhile
        # (its create asks for one too). One by one, each building finds its own, and a
        # real refusal (a key used for another building) is logged as a failure there.
        log.info("building changes: batch create raced; one by one", reason=str(exc))
        return False
    except Exception as exc:
        log.warning("building changes: batch create failed", error=str(exc) or type(exc).__name__)
        return False
    log.info("default workflows created", count=created, changes=len(new))
    return True


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
            known = BuildingsWithDefaults()
            try:
                while True:
                    messages = await consumer.fetch(FETCH_BATCH, timeout=FETCH_TIMEOUT_SECONDS)
                    for piece in slices(messages):
                        await handle_batch(state, piece, known)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.close()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("building changes consumer failed; restarting", error=str(exc))
            await asyncio.sleep(RETRY_SECONDS)
