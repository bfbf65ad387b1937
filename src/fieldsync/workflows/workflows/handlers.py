"""NATS handlers of workflows (queue group `workflows`): one transaction per request."""

from __future__ import annotations

from fieldsync.contracts import workflows as contract
from fieldsync.contracts.workflows import (
    Deleted,
    Workflow,
    WorkflowCreate,
    WorkflowCreated,
    WorkflowDelete,
    WorkflowGet,
    WorkflowList,
    WorkflowPage,
    WorkflowTransition,
    WorkflowUpdate,
)
from fieldsync.kit.messaging import Router
from fieldsync.workflows.access import Access
from fieldsync.workflows.paging import page_request
from fieldsync.workflows.state import current
from fieldsync.workflows.workflows import creating
from fieldsync.workflows.workflows.service import NewWorkflow, WorkflowService, workflow_out

router = Router(queue=contract.QUEUE)


@router.handler(contract.CREATE)
async def create_workflow(request: WorkflowCreate) -> WorkflowCreated:
    """Create a workflow once per idempotency key (managers and admins)."""
    new = NewWorkflow(
        organization_id=request.caller.organization_id,
        building_id=request.building_id,
        idempotency_key=request.idempotency_key,
        name=request.name,
        assignee_id=request.assignee_id,
        due_date=request.due_date,
    )
    outcome = await creating.create(current(), Access.of(request), new)
    return WorkflowCreated(workflow=outcome.workflow, created=outcome.created)


@router.handler(contract.GET)
async def get_workflow(request: WorkflowGet) -> Workflow:
    """One workflow in scope."""
    state = current()
    async with state.transaction() as session:
        workflow = await WorkflowService(session, state.ids).get(Access.of(request), request.id)
    return workflow_out(workflow)


@router.handler(contract.LIST)
async def list_workflows(request: WorkflowList) -> WorkflowPage:
    """Workflows in scope, optionally of one building."""
    state = current()
    page_of = page_request(request.cursor, request.limit)
    async with state.transaction() as session:
        page = await WorkflowService(session, state.ids).list(
            Access.of(request), page_of, building_id=request.building_id
        )
    return WorkflowPage(
        items=[workflow_out(workflow) for workflow in page.items], next_cursor=page.next_cursor
    )


@router.handler(contract.UPDATE)
async def update_workflow(request: WorkflowUpdate) -> Workflow:
    """Change a workflow's fields (managers and admins)."""
    state = current()
    async with state.transaction() as session:
        workflow = await WorkflowService(session, state.ids).update(Access.of(request), request)
    return workflow_out(workflow)


@router.handler(contract.TRANSITION)
async def transition_workflow(request: WorkflowTransition) -> Workflow:
    """Move a workflow to another status."""
    state = current()
    async with state.transaction() as session:
        workflow = await WorkflowService(session, state.ids).transition(Access.of(request), request)
    return workflow_out(workflow)


@router.handler(contract.DELETE)
async def delete_workflow(request: WorkflowDelete) -> Deleted:
    """Soft-delete a workflow and its steps (managers and admins)."""
    state = current()
    async with state.transaction() as session:
        workflow = await WorkflowService(session, state.ids).delete(Access.of(request), request)
    return Deleted(id=workflow.uuid, version=workflow.version)
