"""Applying one push: each mutation to its collection's use cases, at most once."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from fieldsync.contracts.collections import WORKFLOW_STEPS, WORKFLOWS
from fieldsync.contracts.identity import Role
from fieldsync.contracts.mutations import (
    AppliedMutations,
    ApplyMutations,
    Mutation,
    MutationResult,
    apply_in_order,
)
from fieldsync.contracts.workflows import MAX_BUILDING_SCOPE
from fieldsync.kit.ids import SnowflakeGenerator
from fieldsync.workflows.access import Access
from fieldsync.workflows.invalid import invalid
from fieldsync.workflows.models import applied_mutations
from fieldsync.workflows.mutations.steps import apply_step
from fieldsync.workflows.mutations.workflows import apply_workflow
from fieldsync.workflows.steps.service import StepService
from fieldsync.workflows.workflows.service import WorkflowService


def access_of(request: ApplyMutations) -> Access:
    """The access a push asks with.

    A technician works in their assigned buildings only, as every other request of
    this service insists: a push without their scope (or with a scope over the bound)
    is refused as a whole, a bug of the caller, so nothing is recorded as applied.
    """
    scope = request.building_scope
    if scope is None and request.caller.has_role(Role.TECHNICIAN):
        raise invalid("building_scope", "required for a technician (their assigned buildings)")
    if scope is not None and len(scope) > MAX_BUILDING_SCOPE:
        # The bound every other request of this service has (a scope is one query parameter
        # per building).
        raise invalid("building_scope", f"at most {MAX_BUILDING_SCOPE} buildings")
    return Access.within(request.caller, scope)


@dataclass
class Push:
    """One push's mutations, applied with the caller's access in one session."""

    session: AsyncSession
    ids: SnowflakeGenerator
    access: Access
    workflows: WorkflowService = field(init=False)
    steps: StepService = field(init=False)

    def __post_init__(self) -> None:
        self.workflows = WorkflowService(self.session, self.ids)
        self.steps = StepService(self.session, self.ids)

    async def apply_one(self, mutation: Mutation) -> MutationResult:
        """Apply one mutation (errors become its result in `apply_in_order`)."""
        if mutation.collection == WORKFLOWS.name:
            return await apply_workflow(self.workflows, self.access, mutation)
        if mutation.collection == WORKFLOW_STEPS.name:
            return await apply_step(self.steps, self.access, mutation)
        raise invalid("collection", f"{mutation.collection!r} is not a collection of workflows")


async def apply_push(
    session: AsyncSession, ids: SnowflakeGenerator, request: ApplyMutations
) -> AppliedMutations:
    """Apply a push's mutations in order, each once; a replay answers the stored results."""
    push = Push(session, ids, access_of(request))
    return await apply_in_order(session, applied_mutations, request, push.apply_one)
