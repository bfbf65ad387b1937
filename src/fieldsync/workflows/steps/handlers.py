"""NATS handlers of workflow steps (queue group `workflows`): one transaction per request."""

from __future__ import annotations

from fieldsync.contracts import workflows as contract
from fieldsync.contracts.workflows import (
    Deleted,
    StepCreate,
    StepDelete,
    StepGet,
    StepList,
    StepUpdate,
    WorkflowStep,
    WorkflowStepPage,
)
from fieldsync.kit.messaging import Router
from fieldsync.workflows.access import Access
from fieldsync.workflows.paging import page_request
from fieldsync.workflows.state import current
from fieldsync.workflows.steps.service import NewStep, StepService
from fieldsync.workflows.workflows.service import step_out

router = Router(queue=contract.QUEUE)


@router.handler(contract.STEP_CREATE)
async def create_step(request: StepCreate) -> WorkflowStep:
    """Add a step to a workflow (managers and admins)."""
    state = current()
    new = NewStep(
        workflow_id=request.workflow_id,
        title=request.title,
        required=request.required,
        position=request.position,
    )
    async with state.transaction() as session:
        step, workflow = await StepService(session, state.ids).create(Access.of(request), new)
    return step_out(step, workflow)


@router.handler(contract.STEP_GET)
async def get_step(request: StepGet) -> WorkflowStep:
    """One step in scope."""
    state = current()
    async with state.transaction() as session:
        step, workflow = await StepService(session, state.ids).get(Access.of(request), request.id)
    return step_out(step, workflow)


@router.handler(contract.STEP_LIST)
async def list_steps(request: StepList) -> WorkflowStepPage:
    """A workflow's steps."""
    state = current()
    page_of = page_request(request.cursor, request.limit)
    async with state.transaction() as session:
        page, workflow = await StepService(session, state.ids).list(
            Access.of(request), request.workflow_id, page_of
        )
    return WorkflowStepPage(
        items=[step_out(step, workflow) for step in page.items], next_cursor=page.next_cursor
    )


@router.handler(contract.STEP_UPDATE)
async def update_step(request: StepUpdate) -> WorkflowStep:
    """Change a step (technicians: only done and value)."""
    state = current()
    async with state.transaction() as session:
        step, workflow = await StepService(session, state.ids).update(Access.of(request), request)
    return step_out(step, workflow)


@router.handler(contract.STEP_DELETE)
async def delete_step(request: StepDelete) -> Deleted:
    """Soft-delete a step (managers and admins)."""
    state = current()
    async with state.transaction() as session:
        step, _ = await StepService(session, state.ids).delete(Access.of(request), request)
    return Deleted(id=step.uuid, version=step.version)
