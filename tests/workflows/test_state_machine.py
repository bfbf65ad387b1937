"""The workflow state machine: legal moves, required steps gating done, who may reopen."""

from __future__ import annotations

import uuid

import pytest

from fieldsync.contracts import workflows as contract
from fieldsync.contracts.workflows import WorkflowStatus
from fieldsync.kit.errors import Conflict, Forbidden
from tests.workflows.support import Client, Org

OPEN, IN_PROGRESS, DONE, CANCELLED = (
    WorkflowStatus.OPEN,
    WorkflowStatus.IN_PROGRESS,
    WorkflowStatus.DONE,
    WorkflowStatus.CANCELLED,
)


async def finish_required_steps(
    workflows: Client, org: Org, workflow: contract.Workflow
) -> list[contract.WorkflowStep]:
    finished = []
    for step in await workflows.steps(org.manager, workflow.id):
        if step.required:
            step = await workflows.update_step(org.manager, step, done=True)
        finished.append(step)
    return finished


async def test_a_workflow_goes_open_in_progress_done_and_reopens(workflows: Client) -> None:
    org = Org()
    building = uuid.uuid4()
    tech, scope = org.technician, [building]
    workflow = await workflows.create(org.manager, building)

    started = await workflows.transition(tech, workflow, IN_PROGRESS, scope=scope)
    assert (started.status, started.version) == (IN_PROGRESS, 2)

    steps = await workflows.steps(tech, started.id, scope=scope)
    required = [step for step in steps if step.required]
    assert required
    assert len(required) < len(steps)
    with pytest.raises(Conflict) as raised:
        await workflows.transition(tech, started, DONE, scope=scope)
    assert raised.value.extensions["incomplete_steps"] == [str(step.id) for step in required]

    # Finish all but one required step: still refused, naming that one.
    for step in required[:-1]:
        await workflows.update_step(tech, step, done=True, scope=scope)
    with pytest.raises(Conflict) as raised:
        await workflows.transition(tech, started, DONE, scope=scope)
    assert raised.value.extensions["incomplete_steps"] == [str(required[-1].id)]

    # Optional steps do not hold it back.
    await workflows.update_step(tech, required[-1], done=True, scope=scope)
    done = await workflows.transition(tech, started, DONE, scope=scope)
    assert (done.status, done.version) == (DONE, 3)

    with pytest.raises(Forbidden):
        await workflows.transition(tech, done, IN_PROGRESS, scope=scope)
    assert (await workflows.get(org.manager, done.id)).status is DONE

    reopened = await workflows.transition(org.manager, done, IN_PROGRESS)
    assert (reopened.status, reopened.version) == (IN_PROGRESS, 4)
    done_again = await workflows.transition(org.admin, reopened, DONE)
    assert (await workflows.transition(org.admin, done_again, IN_PROGRESS)).status is IN_PROGRESS


@pytest.mark.parametrize(
    ("path", "target", "allowed"),
    [
        ([], DONE, [IN_PROGRESS, CANCELLED]),
        ([], OPEN, [IN_PROGRESS, CANCELLED]),
        ([IN_PROGRESS], OPEN, [DONE, CANCELLED]),
        ([IN_PROGRESS], IN_PROGRESS, [DONE, CANCELLED]),
        ([IN_PROGRESS, DONE], CANCELLED, [IN_PROGRESS]),
        ([IN_PROGRESS, DONE], OPEN, [IN_PROGRESS]),
        ([CANCELLED], OPEN, []),
        ([CANCELLED], IN_PROGRESS, []),
        ([IN_PROGRESS, CANCELLED], DONE, []),
    ],
    ids=lambda value: "-".join(value) if isinstance(value, list) else str(value),
)
async def test_an_illegal_transition_names_the_allowed_ones(
    workflows: Client, path: list[WorkflowStatus], target: WorkflowStatus, allowed: list[str]
) -> None:
    org = Org()
    workflow = await workflows.create(org.manager, uuid.uuid4())
    if DONE in path:
        await finish_required_steps(workflows, org, workflow)
    for status in path:
        workflow = await workflows.transition(org.manager, workflow, status)

    with pytest.raises(Conflict) as raised:
        await workflows.transition(org.manager, workflow, target)
    assert raised.value.extensions["allowed"] == allowed
    assert raised.value.extensions["status"] == workflow.status
    assert await workflows.get(org.manager, workflow.id) == workflow


async def test_a_technician_is_not_offered_reopening(workflows: Client) -> None:
    org = Org()
    building = uuid.uuid4()
    workflow = await workflows.create(org.manager, building)
    await finish_required_steps(workflows, org, workflow)
    workflow = await workflows.transition(org.manager, workflow, IN_PROGRESS)
    workflow = await workflows.transition(org.manager, workflow, DONE)
    with pytest.raises(Conflict) as raised:
        await workflows.transition(org.technician, workflow, CANCELLED, scope=[building])
    assert raised.value.extensions["allowed"] == []


async def test_technicians_and_managers_may_cancel(workflows: Client) -> None:
    org = Org()
    building = uuid.uuid4()
    for who, scope in ((org.technician, [building]), (org.manager, None)):
        workflow = await workflows.create(org.manager, building)
        cancelled = await workflows.transition(who, workflow, CANCELLED, scope=scope)
        assert cancelled.status is CANCELLED
        started = await workflows.transition(
            org.manager, await workflows.create(org.manager, building), IN_PROGRESS
        )
        assert (
            await workflows.transition(who, started, CANCELLED, scope=scope)
        ).status is CANCELLED


async def test_deleted_and_reopened_required_steps_gate_done_correctly(workflows: Client) -> None:
    org = Org()
    workflow = await workflows.create(org.manager, uuid.uuid4())
    workflow = await workflows.transition(org.manager, workflow, IN_PROGRESS)
    steps = await finish_required_steps(workflows, org, workflow)
    required = [step for step in steps if step.required]

    # Un-done again: it gates once more.
    undone = await workflows.update_step(org.manager, required[0], done=False)
    with pytest.raises(Conflict) as raised:
        await workflows.transition(org.manager, workflow, DONE)
    assert raised.value.extensions["incomplete_steps"] == [str(undone.id)]

    # A deleted required step no longer counts; a new required one does.
    await workflows.delete_step(org.manager, undone)
    extra = await workflows.add_step(org.manager, workflow.id, "Sign off", required=True)
    with pytest.raises(Conflict) as raised:
        await workflows.transition(org.manager, workflow, DONE)
    assert raised.value.extensions["incomplete_steps"] == [str(extra.id)]
    await workflows.update_step(org.manager, extra, done=True)
    assert (await workflows.transition(org.manager, workflow, DONE)).status is DONE
