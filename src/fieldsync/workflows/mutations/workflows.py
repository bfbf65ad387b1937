"""Pushed mutations of the `workflows` collection."""

from __future__ import annotations

from fieldsync.contracts.changes import ChangeOp
from fieldsync.contracts.collections import WORKFLOWS
from fieldsync.contracts.mutations import Mutation, MutationResult, applied
from fieldsync.contracts.workflows import WorkflowStatus
from fieldsync.kit.errors import Conflict
from fieldsync.workflows.access import Access
from fieldsync.workflows.mutations.data import WorkflowData, parse, required
from fieldsync.workflows.workflows.models import Workflow
from fieldsync.workflows.workflows.service import WorkflowChanges, WorkflowService


async def apply_workflow(
    service: WorkflowService, access: Access, mutation: Mutation
) -> MutationResult:
    """Create (no base version), change, or delete one workflow."""
    if mutation.op is ChangeOp.DELETE:
        deleted = await service.delete_pushed(access, mutation.id, version=mutation.base_version)
        return applied(mutation.mutation_id, None if deleted is None else deleted.version)
    data = parse(WorkflowData, WORKFLOWS, mutation.data)
    if mutation.base_version is None:
        workflow = await _create(service, access, mutation, data)
    else:
        changes = WorkflowChanges(id=mutation.id, version=mutation.base_version, given=data.given())
        workflow = await service.update_pushed(access, changes)
    return applied(mutation.mutation_id, workflow.version)


async def _create(
    service: WorkflowService, access: Access, mutation: Mutation, data: WorkflowData
) -> Workflow:
    building_id = required(data.building_id, "building_id")
    if data.status not in (None, WorkflowStatus.OPEN):
        # Every workflow starts open; getting anywhere else is a transition of its own.
        raise Conflict(
            f"a workflow starts open, not {data.status}",
            status=data.status,
            allowed=[WorkflowStatus.OPEN.value],
        )
    return await service.create_pushed(
        access,
        mutation.id,
        building_id=building_id,
        name=data.name,
        assignee_id=data.assignee_id,
        due_date=data.due_date,
    )
