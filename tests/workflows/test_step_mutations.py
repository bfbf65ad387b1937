"""Pushed mutations of workflow steps: who may shape or work them, CAS, closed workflows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from fieldsync.contracts.changes import ChangeOp
from fieldsync.contracts.collections import WORKFLOW_STEPS, WORKFLOWS
from fieldsync.contracts.mutations import RejectionCode
from fieldsync.contracts.workflows import WorkflowStatus
from fieldsync.kit.db.engine import Database
from fieldsync.kit.errors import NotFound
from fieldsync.kit.messaging import Bus
from fieldsync.workflows.templates.service import DEFAULT_STEPS
from tests.workflows.support import (
    Client,
    Device,
    Org,
    applied,
    changes_of,
    conflict,
    rejected,
)

FLOWS = WORKFLOWS.name
STEPS = WORKFLOW_STEPS.name


async def test_a_manager_adds_steps_under_the_clients_ids(
    workflows: Client, bus: Bus, database: Database
) -> None:
    org = Org()
    workflow_id, placed_id, appended_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    device = Device(bus, org.manager)
    before = datetime.now(UTC)

    results = await device.push(
        # A step may come in the same push as its workflow.
        device.upsert(FLOWS, workflow_id, building_id=str(uuid.uuid4())),
        device.upsert(
            STEPS,
            placed_id,
            workflow_id=str(workflow_id),
            title="Meet the caretaker",
            position=0,
            done=True,
            value="met at 9",
        ),
        device.upsert(STEPS, appended_id, workflow_id=str(workflow_id), title="Check gutters"),
    )

    for result in results:
        applied(result, 1)
    placed = await workflows.get_step(org.manager, placed_id)
    assert (placed.title, placed.position, placed.done, placed.value, placed.required) == (
        "Meet the caretaker",
        0,
        True,
        "met at 9",
        False,
    )
    assert placed.completed_by == org.manager.user_id
    assert placed.completed_at is not None
    assert abs(placed.completed_at - before) < timedelta(minutes=1)
    appended = await workflows.get_step(org.manager, appended_id)
    assert (appended.position, appended.done, appended.completed_at) == (
        len(DEFAULT_STEPS),
        False,
        None,
    )
    changes = await changes_of(database, org)
    assert [(change.id, change.version) for change in changes[-2:]] == [
        (placed_id, 1),
        (appended_id, 1),
    ]
    assert changes[-2].data == placed.model_dump(mode="json")


async def test_invalid_and_forbidden_step_creates(workflows: Client, bus: Bus) -> None:
    org = Org()
    workflow = await workflows.create(org.manager, uuid.uuid4())
    parent = str(workflow.id)
    device = Device(bus, org.manager)
    technician = Device(bus, org.technician, scope=[workflow.building_id])
    cases: list[tuple[dict[str, object], RejectionCode, str | None]] = [
        ({"title": "No parent"}, RejectionCode.VALIDATION, "workflow_id"),
        ({"workflow_id": parent}, RejectionCode.VALIDATION, "title"),
        ({"workflow_id": parent, "title": "x", "required": True}, RejectionCode.VALIDATION, "required"),
        ({"workflow_id": parent, "title": "x", "completed_by": None}, RejectionCode.VALIDATION, "completed_by"),
        ({"workflow_id": parent, "title": "x", "position": -1}, RejectionCode.VALIDATION, "position"),
        ({"workflow_id": parent, "title": "x", "done": None}, RejectionCode.VALIDATION, "done"),
        ({"workflow_id": parent, "title": "x", "value": "v" * 4001}, RejectionCode.VALIDATION, "value"),
        ({"workflow_id": str(uuid.uuid4()), "title": "x"}, RejectionCode.NOT_FOUND, None),
    ]  # fmt: skip

    results = await device.push(
        *(device.upsert(STEPS, uuid.uuid4(), **data) for data, _, _ in cases)
    )

    for result, (_, code, field) in zip(results, cases, strict=True):
        rejected(result, code, field)
    rejected(
        await technician.one(technician.upsert(STEPS, uuid.uuid4(), workflow_id=parent, title="x")),
        RejectionCode.FORBIDDEN,
    )
    assert len(await workflows.steps(org.manager, workflow.id)) == len(DEFAULT_STEPS)


async def test_a_step_id_in_use_is_a_conflict(workflows: Client, bus: Bus) -> None:
    org = Org()
    workflow = await workflows.create(org.manager, uuid.uuid4())
    step = (await workflows.steps(org.manager, workflow.id))[0]
    device = Device(bus, org.manager)
    again = {"workflow_id": str(workflow.id), "title": "Mine"}

    conflict(
        await device.one(device.upsert(STEPS, step.id, **again)),
        step.model_dump(mode="json"),
        1,
    )
    deleted = await workflows.delete_step(org.manager, step)
    conflict(await device.one(device.upsert(STEPS, step.id, **again)), None, deleted.version)
    outside = Device(bus, org.manager, scope=[uuid.uuid4()])
    rejected(await outside.one(outside.upsert(STEPS, step.id, **again)), RejectionCode.NOT_FOUND)


async def test_technicians_work_steps_in_their_scope(
    workflows: Client, bus: Bus, database: Database
) -> None:
    org = Org()
    building = uuid.uuid4()
    workflow = await workflows.create(org.manager, building)
    first, second = (await workflows.steps(org.manager, workflow.id))[:2]
    technician = Device(bus, org.technician, scope=[building])
    outside = Device(bus, org.technician, scope=[uuid.uuid4()])
    before = len(await changes_of(database, org))

    done, retitled, moved, second_done = await technician.push(
        technician.upsert(STEPS, first.id, 1, done=True, value="all clear"),
        technician.upsert(STEPS, second.id, 1, title="Shorter"),
        technician.upsert(STEPS, second.id, 1, workflow_id=str(uuid.uuid4())),
        # The title and position sent with their current values are no change.
        technician.upsert(
            STEPS, second.id, 1, title=second.title, position=second.position, done=True
        ),
    )

    applied(done, 2)
    rejected(retitled, RejectionCode.FORBIDDEN)
    rejected(moved, RejectionCode.VALIDATION, "workflow_id")
    applied(second_done, 2)
    rejected(
        await outside.one(outside.upsert(STEPS, first.id, 2, done=False)), RejectionCode.NOT_FOUND
    )
    worked = await workflows.get_step(org.manager, first.id)
    assert (worked.done, worked.value, worked.completed_by, worked.version) == (
        True,
        "all clear",
        org.technician.user_id,
        2,
    )
    assert (await workflows.get_step(org.manager, second.id)).title == second.title
    assert len(await changes_of(database, org)) == before + 2


async def test_stale_missing_and_deleted_steps(workflows: Client, bus: Bus) -> None:
    org = Org()
    workflow = await workflows.create(org.manager, uuid.uuid4())
    step = (await workflows.steps(org.manager, workflow.id))[0]
    elsewhere = await workflows.update_step(org.manager, step, value="from the office")
    device = Device(bus, org.manager)

    stale, missing = await device.push(
        device.upsert(STEPS, step.id, 1, value="from the field"),
        device.upsert(STEPS, uuid.uuid4(), 1, done=True),
    )

    conflict(stale, elsewhere.model_dump(mode="json"), 2)
    rejected(missing, RejectionCode.NOT_FOUND)
    deleted = await workflows.delete_step(org.manager, elsewhere)
    conflict(await device.one(device.upsert(STEPS, step.id, 2, done=True)), None, deleted.version)


async def test_step_deletes(workflows: Client, bus: Bus, database: Database) -> None:
    org = Org()
    workflow = await workflows.create(org.manager, uuid.uuid4())
    step = (await workflows.steps(org.manager, workflow.id))[0]
    device = Device(bus, org.manager)
    technician = Device(bus, org.technician, scope=[workflow.building_id])

    rejected(await technician.one(technician.delete(STEPS, step.id, 1)), RejectionCode.FORBIDDEN)
    stale, deleted, again, missing = await device.push(
        device.delete(STEPS, step.id, 5),
        device.delete(STEPS, step.id, 1),
        device.delete(STEPS, step.id, 1),
        device.delete(STEPS, uuid.uuid4()),
    )

    conflict(stale, step.model_dump(mode="json"), 1)
    applied(deleted, 2)
    applied(again, 2)
    applied(missing, None)
    with pytest.raises(NotFound):
        await workflows.get_step(org.manager, step.id)
    last = (await changes_of(database, org))[-1]
    assert (last.id, last.op, last.version) == (step.id, ChangeOp.DELETE, 2)


async def test_steps_of_a_closed_workflow_stay_as_they_are(workflows: Client, bus: Bus) -> None:
    org = Org()
    workflow = await workflows.create(org.manager, uuid.uuid4())
    first, second = (await workflows.steps(org.manager, workflow.id))[:2]
    await workflows.transition(org.manager, workflow, WorkflowStatus.CANCELLED)
    device = Device(bus, org.manager)

    results = await device.push(
        device.upsert(STEPS, uuid.uuid4(), workflow_id=str(workflow.id), title="Too late"),
        device.upsert(STEPS, first.id, 1, done=True),
        device.delete(STEPS, second.id, 1),
        # Nothing to change: the client's wish already holds.
        device.upsert(STEPS, first.id, 1, done=False, title=first.title),
    )

    for result in results[:3]:
        rejected(result, RejectionCode.INVALID_STATE)
    applied(results[3], 1)
    assert (await workflows.get_step(org.manager, first.id)) == first
    assert (await workflows.get_step(org.manager, second.id)) == second
