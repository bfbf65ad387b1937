"""Steps: completion records who and when, positions, paging, closed workflows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from fieldsync.contracts.workflows import MAX_STEPS_PER_WORKFLOW, WorkflowStatus
from fieldsync.kit.errors import Conflict, NotFound
from fieldsync.kit.runtime import Runtime
from fieldsync.workflows.steps.models import WorkflowStep
from fieldsync.workflows.workflows.models import Workflow
from tests.workflows.support import Client, Org


async def test_completing_a_step_records_who_and_when(workflows: Client) -> None:
    org = Org()
    building = uuid.uuid4()
    workflow = await workflows.create(org.manager, building)
    step = (await workflows.steps(org.manager, workflow.id))[0]
    assert (step.done, step.completed_by, step.completed_at, step.version) == (False, None, None, 1)

    before = datetime.now(UTC)
    done = await workflows.update_step(org.technician, step, done=True, scope=[building])
    assert done.done
    assert done.completed_by == org.technician.user_id
    assert done.completed_at is not None
    assert abs(done.completed_at - before) < timedelta(minutes=1)
    assert done.version == 2

    # Recording a value later keeps who completed it.
    noted = await workflows.update_step(org.manager, done, value="pressure 1.4 bar")
    assert (noted.value, noted.completed_by, noted.completed_at) == (
        "pressure 1.4 bar",
        org.technician.user_id,
        done.completed_at,
    )

    undone = await workflows.update_step(org.manager, noted, done=False, value=None)
    assert (undone.done, undone.value, undone.completed_by, undone.completed_at) == (
        False,
        None,
        None,
        None,
    )
    assert await workflows.get_step(org.manager, step.id) == undone


async def test_managers_add_reshape_and_delete_steps(workflows: Client) -> None:
    org = Org()
    workflow = await workflows.create(org.manager, uuid.uuid4())
    defaults = await workflows.steps(org.manager, workflow.id)

    appended = await workflows.add_step(org.manager, workflow.id, "Check the gutters")
    assert (appended.position, appended.required, appended.done) == (len(defaults), False, False)
    placed = await workflows.add_step(
        org.admin, workflow.id, "Meet the caretaker", position=0, required=True
    )
    assert (placed.position, placed.required) == (0, True)

    reshaped = await workflows.update_step(
        org.manager, appended, title="Check gutters and downpipes", position=2, required=True
    )
    assert (reshaped.title, reshaped.position, reshaped.required, reshaped.version) == (
        "Check gutters and downpipes",
        2,
        True,
        2,
    )

    listed = await workflows.steps(org.manager, workflow.id)
    assert [step.id for step in listed] == [*(step.id for step in defaults), appended.id, placed.id]

    await workflows.delete_step(org.manager, reshaped)
    with pytest.raises(NotFound):
        await workflows.get_step(org.manager, reshaped.id)
    with pytest.raises(NotFound):
        await workflows.update_step(
            org.manager, reshaped.model_copy(update={"version": 3}), done=True
        )
    assert reshaped.id not in {step.id for step in await workflows.steps(org.manager, workflow.id)}


async def test_steps_of_a_closed_workflow_do_not_change(workflows: Client) -> None:
    org = Org()
    workflow = await workflows.create(org.manager, uuid.uuid4())
    steps = await workflows.steps(org.manager, workflow.id)
    cancelled = await workflows.transition(org.manager, workflow, WorkflowStatus.CANCELLED)

    with pytest.raises(Conflict) as raised:
        await workflows.update_step(org.manager, steps[0], done=True)
    assert raised.value.extensions["status"] == "cancelled"
    with pytest.raises(Conflict):
        await workflows.add_step(org.manager, cancelled.id, "too late")
    with pytest.raises(Conflict):
        await workflows.delete_step(org.manager, steps[0])
    assert await workflows.steps(org.manager, workflow.id) == steps


async def test_a_workflow_has_a_bounded_number_of_steps(
    workflows: Client, workflows_runtime: Runtime
) -> None:
    org = Org()
    workflow = await workflows.create(org.manager, uuid.uuid4())
    existing = len(await workflows.steps(org.manager, workflow.id))
    # Fill up directly in the database; the limit is what is under test.
    database = workflows_runtime.databases["workflows"]
    ids = workflows_runtime.ids["workflows"]
    async with database.sessions() as session:
        workflow_id = await session.scalar(select(Workflow.id).where(Workflow.uuid == workflow.id))
        session.add_all(
            WorkflowStep(
                id=ids.next_id(),
                workflow_id=workflow_id,
                title=f"filler {n}",
                position=n,
                required=False,
                done=False,
                deleted_at=None,
                version=1,
            )
            for n in range(MAX_STEPS_PER_WORKFLOW - existing - 1)
        )
        await session.commit()

    last = await workflows.add_step(org.manager, workflow.id, "the last one")
    with pytest.raises(Conflict):
        await workflows.add_step(org.manager, workflow.id, "one too many")
    await workflows.delete_step(org.manager, last)
    await workflows.add_step(org.manager, workflow.id, "room again")
    assert len(await workflows.steps(org.manager, workflow.id)) == MAX_STEPS_PER_WORKFLOW
