"""The NATS handler of pushed mutations (queue group `workflows`): one transaction per push."""

from __future__ import annotations

from fieldsync.contracts import workflows as contract
from fieldsync.contracts.collections import WORKFLOWS
from fieldsync.contracts.mutations import AppliedMutations, ApplyMutations
from fieldsync.kit.messaging import Router
from fieldsync.workflows.mutations.service import apply_push
from fieldsync.workflows.state import current

router = Router(queue=contract.QUEUE)


# Both collections of this service (workflows, workflow_steps) name this subject.
@router.handler(WORKFLOWS.apply_subject)
async def apply_mutations(request: ApplyMutations) -> AppliedMutations:
    """Apply a client's pushed workflows and steps, in order, each at most once."""
    state = current()
    async with state.transaction() as session:
        return await apply_push(session, state.ids, request)
