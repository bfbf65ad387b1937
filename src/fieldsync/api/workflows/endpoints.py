"""HTTP endpoints of workflows and steps, forwarded to the workflows service over NATS.

The api adds what only it knows: the caller's building scope (a technician's
assignments). The workflows service enforces organization, scope and role itself, and
its errors (404, 403, 409 with the current record or the allowed transitions) pass
through unchanged.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, status

from fieldsync.api.buildings.service import BuildingService
from fieldsync.api.deps import ApiSession, RuntimeDep
from fieldsync.api.workflows.client import WorkflowsClient
from fieldsync.api.workflows.schemas import (
    StepUpdateIn,
    TransitionIn,
    WorkflowCreateIn,
    WorkflowUpdateIn,
)
from fieldsync.contracts import workflows as contract
from fieldsync.contracts.identity import Role
from fieldsync.kit.errors import NotFound
from fieldsync.kit.http.auth import CurrentCaller, require_role
from fieldsync.kit.http.versioning import parse_if_match
from fieldsync.kit.pagination import DEFAULT_LIMIT, MAX_LIMIT
from fieldsync.kit.validation import StorableText

router = APIRouter(prefix="/api/v1", tags=["workflows"])
Manager = Annotated[object, require_role(Role.ADMIN, Role.MANAGER)]
IfMatch = Annotated[str | None, Header(max_length=40)]
Cursor = Annotated[str | None, Query(max_length=64)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


async def workflows_client(
    session: ApiSession, runtime: RuntimeDep, caller: CurrentCaller
) -> WorkflowsClient:
    """The workflows service, on behalf of this request's caller."""
    return WorkflowsClient(session=session, runtime=runtime, caller=caller)


Workflows = Annotated[WorkflowsClient, Depends(workflows_client)]


async def _version_of(client: WorkflowsClient, workflow_id: uuid.UUID, given: int | None) -> int:
    """The version a write is based on: given, or the current one (last write wins)."""
    if given is not None:
        return given
    current = await client.request(
        contract.GET,
        contract.WorkflowGet(
            caller=client.caller, building_scope=await client.building_scope(), id=workflow_id
        ),
        contract.Workflow,
    )
    return current.version


@router.get("/buildings/{building_id}/workflows")
async def building_workflows(
    building_id: uuid.UUID,
    client: Workflows,
    session: ApiSession,
    runtime: RuntimeDep,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> contract.WorkflowPage:
    """The workflows of a building you may see."""
    await BuildingService(session=session, runtime=runtime).get(client.caller, building_id)
    request = contract.WorkflowList(
        caller=client.caller,
        building_scope=await client.building_scope(),
        building_id=building_id,
        cursor=cursor,
        limit=limit,
    )
    return await client.request(contract.LIST, request, contract.WorkflowPage)


@router.post("/workflows", status_code=status.HTTP_201_CREATED)
async def create_workflow(
    body: WorkflowCreateIn,
    client: Workflows,
    _: Manager,
    idempotency_key: Annotated[StorableText | None, Header(min_length=1, max_length=200)] = None,
) -> contract.Workflow:
    """Create a workflow for a building (manager or admin). Send `Idempotency-Key` to make
    retries safe."""
    request = contract.WorkflowCreate(
        caller=client.caller,
        building_scope=None,
        idempotency_key=idempotency_key or str(uuid.uuid4()),
        **body.model_dump(),
    )
    created = await client.request(contract.CREATE, request, contract.WorkflowCreated)
    return created.workflow


@router.get("/workflows/{workflow_id}")
async def get_workflow(workflow_id: uuid.UUID, client: Workflows) -> contract.Workflow:
    """One workflow."""
    request = contract.WorkflowGet(
        caller=client.caller, building_scope=await client.building_scope(), id=workflow_id
    )
    return await client.request(contract.GET, request, contract.Workflow)


@router.patch("/workflows/{workflow_id}")
async def update_workflow(
    workflow_id: uuid.UUID,
    body: WorkflowUpdateIn,
    client: Workflows,
    _: Manager,
    if_match: IfMatch = None,
) -> contract.Workflow:
    """Change name, assignee or due date (manager or admin); stale versions are a 409."""
    version = await _version_of(client, workflow_id, body.version or parse_if_match(if_match))
    request = contract.WorkflowUpdate(
        caller=client.caller,
        building_scope=None,
        id=workflow_id,
        version=version,
        **body.model_dump(exclude_unset=True, exclude={"version"}),
    )
    return await client.request(contract.UPDATE, request, contract.Workflow)


@router.delete("/workflows/{workflow_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_workflow(
    workflow_id: uuid.UUID, client: Workflows, _: Manager, if_match: IfMatch = None
) -> None:
    """Delete a workflow and its steps (manager or admin)."""
    version = await _version_of(client, workflow_id, parse_if_match(if_match))
    request = contract.WorkflowDelete(
        caller=client.caller, building_scope=None, id=workflow_id, version=version
    )
    await client.request(contract.DELETE, request, contract.Deleted)


@router.post("/workflows/{workflow_id}/transitions")
async def transition_workflow(
    workflow_id: uuid.UUID, body: TransitionIn, client: Workflows, if_match: IfMatch = None
) -> contract.Workflow:
    """Move the workflow to another status; an illegal move is a 409 naming the allowed ones."""
    scope = await client.building_scope()
    version = await _version_of(client, workflow_id, body.version or parse_if_match(if_match))
    request = contract.WorkflowTransition(
        caller=client.caller, building_scope=scope, id=workflow_id, version=version, status=body.to
    )
    return await client.request(contract.TRANSITION, request, contract.Workflow)


@router.get("/workflows/{workflow_id}/steps")
async def list_steps(
    workflow_id: uuid.UUID,
    client: Workflows,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> contract.WorkflowStepPage:
    """The steps of a workflow."""
    request = contract.StepList(
        caller=client.caller,
        building_scope=await client.building_scope(),
        workflow_id=workflow_id,
        cursor=cursor,
        limit=limit,
    )
    return await client.request(contract.STEP_LIST, request, contract.WorkflowStepPage)


@router.patch("/workflows/{workflow_id}/steps/{step_id}")
async def update_step(
    workflow_id: uuid.UUID,
    step_id: uuid.UUID,
    body: StepUpdateIn,
    client: Workflows,
    if_match: IfMatch = None,
) -> contract.WorkflowStep:
    """Change a step (technicians: `done` and `value`)."""
    scope = await client.building_scope()
    current = await client.request(
        contract.STEP_GET,
        contract.StepGet(caller=client.caller, building_scope=scope, id=step_id),
        contract.WorkflowStep,
    )
    if current.workflow_id != workflow_id:
        raise NotFound("no such step in this workflow")
    request = contract.StepUpdate(
        caller=client.caller,
        building_scope=scope,
        id=step_id,
        version=body.version or parse_if_match(if_match) or current.version,
        **body.model_dump(exclude_unset=True, exclude={"version"}),
    )
    return await client.request(contract.STEP_UPDATE, request, contract.WorkflowStep)
