"""Pushed mutations of the `workflow_steps` collection."""

from __future__ import annotations

from fieldsync.contracts.changes import ChangeOp
from fieldsync.contracts.collections import WORKFLOW_STEPS
from fieldsync.contracts.mutations import Mutation, MutationResult, applied
from fieldsync.workflows.access import Access
from fieldsync.workflows.mutations.data import StepData, parse, required
from fieldsync.workflows.steps.service import NewStep, StepService


async def apply_step(service: StepService, access: Access, mutation: Mutation) -> MutationResult:
    """Create (no base version), change, or delete one step."""
    if mutation.op is ChangeOp.DELETE:
        deleted = await service.delete_pushed(access, mutation.id, version=mutation.base_version)
        return applied(mutation.mutation_id, None if deleted is None else deleted.version)
    data = parse(StepData, WORKFLOW_STEPS, mutation.data)
    if mutation.base_version is None:
        new = NewStep(
            workflow_id=required(data.workflow_id, "workflow_id"),
            title=required(data.title, "title"),
            # `required` is no wire field: steps clients add never gate the workflow.
            required=False,
            position=data.position,
            done=bool(data.done),
            value=data.value,
        )
        step, _ = await service.create_pushed(access, mutation.id, new)
    else:
        step, _ = await service.update_pushed(
            access, mutation.id, version=mutation.base_version, given=data.given()
        )
    return applied(mutation.mutation_id, step.version)
