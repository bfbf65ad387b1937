"""Every write appends a Change to the outbox in its transaction; the relay publishes them."""

from __future__ import annotations

import secrets
import time
import uuid

import pytest

from fieldsync.contracts import workflows as contract
from fieldsync.contracts.changes import CHANGES_STREAM, Change, ChangeOp, unpack_changes
from fieldsync.contracts.workflows import WorkflowStatus
from fieldsync.kit.db.engine import Database
from fieldsync.kit.errors import Conflict
from fieldsync.kit.messaging import Bus, ConsumerSpec
from tests.packing import assert_packed
from tests.workflows.support import Client, Org, eventually, rows


async def outbox_of(database: Database, org: Org) -> list[tuple[int, str, bytes, object]]:
    """The organization's outbox rows in id order: (id, subject, payload, published_at)."""
    return [
        (row[0], row[1], bytes(row[2]), row[3])
        for row in await rows(
            database,
            "SELECT id, subject, payload, published_at FROM outbox"
            " WHERE subject LIKE :prefix ORDER BY id",
            prefix=f"changes.{org.id}.%",
        )
    ]


async def stream_of(bus: Bus, org: Org, count: int) -> list[tuple[str, bytes, str]]:
    """The organization's messages in CHANGES, in stream order, once they carry `count`
    changes: (subject, data, msg id)."""
    spec = ConsumerSpec(
        stream=CHANGES_STREAM.name,
        durable=f"test-changes-{secrets.token_hex(4)}",
        filter_subjects=[f"changes.{org.id}.>"],
    )
    await bus.jetstream.ensure_consumer(spec)
    consumer = await bus.jetstream.pull(spec)
    found: list[tuple[str, bytes, str]] = []
    carried = 0
    deadline = time.monotonic() + 10.0
    try:
        while carried < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {carried} of {count} changes reached CHANGES")
            for message in await consumer.fetch(100, timeout=0.5):
                found.append((message.subject, message.data, message.headers["Nats-Msg-Id"]))
                carried += len(unpack_changes(message.data))
                await message.ack()
        # Nothing beyond what the outbox holds.
        assert await consumer.fetch(1, timeout=0.3) == []
    finally:
        await consumer.close()
    return found


async def test_each_write_appends_its_change_and_the_relay_publishes_it(
    workflows: Client, database: Database, bus: Bus
) -> None:
    org = Org()
    building = uuid.uuid4()
    workflow = await workflows.create(org.manager, building)
    steps = await workflows.steps(org.manager, workflow.id)
    workflow = await workflows.update(org.manager, workflow, name="Renamed")
    done = await workflows.update_step(org.technician, steps[0], done=True, scope=[building])
    workflow = await workflows.transition(org.manager, workflow, WorkflowStatus.IN_PROGRESS)
    extra = await workflows.add_step(org.manager, workflow.id, "Extra")
    await workflows.delete_step(org.manager, extra)
    # A refused write appends nothing.
    with pytest.raises(Conflict):
        await workflows.transition(org.manager, workflow, WorkflowStatus.DONE)
    await workflows.delete(org.manager, workflow)

    outbox = await outbox_of(database, org)
    # A row holds one change or a transaction's changes of one subject.
    held = [
        (subject, Change.model_validate(change))
        for _, subject, payload, _ in outbox
        for change in unpack_changes(payload)
    ]
    changes = [change for _, change in held]
    steps_ = contract.STEPS_COLLECTION
    flows = contract.WORKFLOWS_COLLECTION
    expected = [
        (flows, workflow.id, ChangeOp.UPSERT, 1),
        *((steps_, step.id, ChangeOp.UPSERT, 1) for step in steps),
        (flows, workflow.id, ChangeOp.UPSERT, 2),
        (steps_, steps[0].id, ChangeOp.UPSERT, 2),
        (flows, workflow.id, ChangeOp.UPSERT, 3),
        (steps_, extra.id, ChangeOp.UPSERT, 1),
        (steps_, extra.id, ChangeOp.DELETE, 2),
        (flows, workflow.id, ChangeOp.DELETE, 4),
        *((steps_, step.id, ChangeOp.DELETE, 3 if step.id == done.id else 2) for step in steps),
    ]
    assert [(c.collection, c.id, c.op, c.version) for c in changes] == expected
    assert {c.organization_id for c in changes} == {org.id}
    assert {c.building_id for c in changes} == {building}
    assert [subject for subject, _ in held] == [
        f"changes.{org.id}.{collection}" for collection, _, _, _ in expected
    ]

    # Upserts carry the public record as the wire has it; deletes carry none.
    created, renamed = changes[0], changes[len(steps) + 1]
    assert created.data is not None
    assert renamed.data is not None
    assert contract.Workflow.model_validate(created.data).status is WorkflowStatus.OPEN
    assert contract.Workflow.model_validate(renamed.data).name == "Renamed"
    completed = contract.WorkflowStep.model_validate(changes[len(steps) + 2].data)
    assert completed == done
    assert all(c.data is None for c in changes if c.op is ChangeOp.DELETE)
    assert all(c.occurred_at is not None for c in changes)

    published = await stream_of(bus, org, len(changes))
    assert_packed(
        published,
        [(row_id, subject, payload) for row_id, subject, payload, _ in outbox],
        "workflows",
    )

    # The relay marks what it published.
    async def all_marked() -> bool:
        return all(published_at is not None for *_, published_at in await outbox_of(database, org))

    await eventually(all_marked)
