"""Step use cases: managers shape a workflow's steps, everyone in scope works them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from fieldsync.contracts import workflows as contract
from fieldsync.contracts.workflows import MAX_STEPS_PER_WORKFLOW
from fieldsync.kit.errors import Conflict, Forbidden, NotFound
from fieldsync.kit.ids import SnowflakeGenerator
from fieldsync.kit.pagination import Page, PageRequest
from fieldsync.workflows.access import Access
from fieldsync.workflows.changes import change_log
from fieldsync.workflows.locking import Lock
from fieldsync.workflows.steps.models import WorkflowStep
from fieldsync.workflows.steps.repository import StepRepository
from fieldsync.workflows.workflows.models import Workflow
from fieldsync.workflows.workflows.repository import WorkflowRepository
from fieldsync.workflows.workflows.service import OPEN_STATUSES, record_step, step_out

# What a technician may change on a step: its outcome, not the checklist itself.
TECHNICIAN_FIELDS = frozenset({"done", "value"})
STEP_FIELDS = ("done", "value", "title", "position", "required")


def stale_step(step: WorkflowStep, workflow: Workflow, expected_version: int) -> Conflict:
    """The Conflict of a write based on an old version, carrying the current step."""
    return Conflict(
        f"stale version {expected_version}; the current version is {step.version}",
        current_version=step.version,
        current=step_out(step, workflow).model_dump(mode="json"),
    )


def require_open(workflow: Workflow) -> None:
    """Steps of a done or cancelled workflow are settled: refuse to change them."""
    if workflow.status not in OPEN_STATUSES:
        raise Conflict(
            f"the workflow is {workflow.status}; its steps can no longer change",
            status=workflow.status,
        )


@dataclass
class StepService:
    """Step use cases over one message's session."""

    session: AsyncSession
    ids: SnowflakeGenerator

    def __post_init__(self) -> None:
        self.workflows = WorkflowRepository(self.session, self.ids)
        self.steps = StepRepository(self.session, self.ids)
        self.changes = change_log(self.session, self.ids)

    async def _workflow(self, access: Access, workflow_id: uuid.UUID, lock: Lock) -> Workflow:
        workflow = await self.workflows.find(access, workflow_id, lock=lock)
        if workflow is None:
            raise NotFound("no such workflow")
        return workflow

    async def _locate(
        self, access: Access, step_id: uuid.UUID, *, lock: Lock
    ) -> tuple[WorkflowStep, Workflow]:
        """A step in scope with its workflow; when locking, the workflow first (see locking)."""
        workflow_id = await self.steps.workflow_id_of(step_id)
        workflow = (
            None
            if workflow_id is None
            else await self.workflows.find_by_id(access, workflow_id, lock=lock)
        )
        step = (
            None
            if workflow is None
            else await self.steps.find_in_workflow(
                workflow.id, step_id, lock=Lock.NONE if lock is Lock.NONE else Lock.UPDATE
            )
        )
        if step is None or workflow is None:
            raise NotFound("no such step")
        return step, workflow

    async def get(self, access: Access, step_id: uuid.UUID) -> tuple[WorkflowStep, Workflow]:
        """A step the caller may see; NotFound for any other."""
        return await self._locate(access, step_id, lock=Lock.NONE)

    async def list(
        self, access: Access, workflow_id: uuid.UUID, request: PageRequest
    ) -> tuple[Page[WorkflowStep], Workflow]:
        """A workflow's steps."""
        workflow = await self._workflow(access, workflow_id, Lock.NONE)
        return await self.steps.page_of_workflow(workflow.id, request), workflow

    async def create(
        self, access: Access, request: contract.StepCreate
    ) -> tuple[WorkflowStep, Workflow]:
        """Add a step (after the last one unless a position is given)."""
        access.require_manager("adding a step")
        workflow = await self._workflow(access, request.workflow_id, Lock.UPDATE)
        require_open(workflow)
        count, last_position = await self.steps.count_and_last_position(workflow.id)
        if count >= MAX_STEPS_PER_WORKFLOW:
            raise Conflict(f"a workflow has at most {MAX_STEPS_PER_WORKFLOW} steps")
        position = request.position
        if position is None:
            position = 0 if last_position is None else min(last_position + 1, contract.MAX_POSITION)
        step = await self.steps.add(
            WorkflowStep(
                workflow_id=workflow.id,
                title=request.title,
                position=position,
                required=request.required,
                done=False,
                value=None,
                completed_by=None,
                completed_at=None,
                deleted_at=None,
                version=1,
            )
        )
        await record_step(self.changes, step, workflow)
        return step, workflow

    async def update(
        self, access: Access, request: contract.StepUpdate
    ) -> tuple[WorkflowStep, Workflow]:
        """Change the given fields; completing a step records who and when."""
        given = request.given(*STEP_FIELDS)
        if not access.manages and not given.keys() <= TECHNICIAN_FIELDS:
            raise Forbidden("technicians may change only a step's done and value")
        step, workflow = await self._locate(access, request.id, lock=Lock.SHARE)
        if request.version != step.version:
            raise stale_step(step, workflow, request.version)
        require_open(workflow)
        changed = {name: value for name, value in given.items() if getattr(step, name) != value}
        if "done" in changed:
            completing = bool(changed["done"])
            changed["completed_by"] = access.caller.user_id if completing else None
            # The database's clock, as for every other timestamp of the record.
            changed["completed_at"] = func.now() if completing else None
        if changed:
            await self.steps.update(step, expected_version=request.version, **changed)
            if changed.get("done"):
                await self.session.refresh(step, ["completed_at"])
            await record_step(self.changes, step, workflow)
        return step, workflow

    async def delete(
        self, access: Access, request: contract.StepDelete
    ) -> tuple[WorkflowStep, Workflow]:
        """Soft-delete a step."""
        access.require_manager("deleting a step")
        step, workflow = await self._locate(access, request.id, lock=Lock.UPDATE)
        if request.version != step.version:
            raise stale_step(step, workflow, request.version)
        require_open(workflow)
        await self.steps.soft_delete(step, expected_version=request.version)
        await record_step(self.changes, step, workflow)
        return step, workflow
