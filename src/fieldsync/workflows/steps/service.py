"""Step use cases: managers shape a workflow's steps, everyone in scope works them.

The `*_pushed` methods apply mutations clients pushed through sync: a client-chosen id
on create, only the fields that differ count, deletes that hold when the step is gone.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from fieldsync.contracts import workflows as contract
from fieldsync.contracts.workflows import MAX_STEPS_PER_WORKFLOW
from fieldsync.kit.errors import Conflict, Forbidden, NotFound
from fieldsync.kit.ids import SnowflakeGenerator
from fieldsync.kit.pagination import Page, PageRequest
from fieldsync.workflows.access import Access
from fieldsync.workflows.changes import change_log
from fieldsync.workflows.invalid import invalid
from fieldsync.workflows.locking import Lock
from fieldsync.workflows.steps.models import UUID_CONSTRAINT, WorkflowStep
from fieldsync.workflows.steps.repository import StepRepository
from fieldsync.workflows.workflows.models import Workflow
from fieldsync.workflows.workflows.repository import WorkflowRepository
from fieldsync.workflows.workflows.service import OPEN_STATUSES, record_step, step_out

# What a technician may change on a step: its outcome, not the checklist itself.
TECHNICIAN_FIELDS = frozenset({"done", "value"})
STEP_FIELDS = ("done", "value", "title", "position", "required")
# What a pushed change may give: the wire fields (the workflow cannot change, though).
PUSHED_FIELDS = frozenset({"workflow_id", "done", "value", "title", "position"})


def current_step(step: WorkflowStep, workflow: Workflow, detail: str) -> Conflict:
    """A Conflict carrying the step as it is now (None once deleted)."""
    return Conflict(
        detail,
        current_version=step.version,
        current=None if step.is_deleted else step_out(step, workflow).model_dump(mode="json"),
    )


def stale_step(step: WorkflowStep, workflow: Workflow, expected_version: int) -> Conflict:
    """The Conflict of a write based on an old version, carrying the current step."""
    return current_step(
        step, workflow, f"stale version {expected_version}; the current version is {step.version}"
    )


def require_open(workflow: Workflow) -> None:
    """Steps of a done or cancelled workflow are settled: refuse to change them."""
    if workflow.status not in OPEN_STATUSES:
        raise Conflict(
            f"the workflow is {workflow.status}; its steps can no longer change",
            status=workflow.status,
        )


def require_role(access: Access, fields: Mapping[str, object]) -> None:
    """Technicians change a step's outcome only."""
    if not access.manages and not fields.keys() <= TECHNICIAN_FIELDS:
        raise Forbidden("technicians may change only a step's done and value")


@dataclass(frozen=True)
class NewStep:
    """What a step is created with; without `position` it goes after the last one."""

    workflow_id: uuid.UUID
    title: str
    required: bool = False
    position: int | None = None
    # Created done: completed by its creator, now.
    done: bool = False
    value: str | None = None


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
        self, access: Access, step_id: uuid.UUID, *, lock: Lock, include_deleted: bool = False
    ) -> tuple[WorkflowStep, Workflow]:
        """A step in scope with its workflow; when locking, the workflow first (see locking)."""
        workflow_id = await self.steps.workflow_id_of(step_id, include_deleted=include_deleted)
        workflow = (
            None
            if workflow_id is None
            else await self.workflows.find_by_id(
                access, workflow_id, lock=lock, include_deleted=include_deleted
            )
        )
        step = (
            None
            if workflow is None
            else await self.steps.find_in_workflow(
                workflow.id,
                step_id,
                lock=Lock.NONE if lock is Lock.NONE else Lock.UPDATE,
                include_deleted=include_deleted,
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

    # --- create ------------------------------------------------------------------------

    async def create(
        self, access: Access, new: NewStep, *, public_id: uuid.UUID | None = None
    ) -> tuple[WorkflowStep, Workflow]:
        """Add a step (after the last one unless a position is given)."""
        access.require_manager("adding a step")
        workflow = await self._workflow(access, new.workflow_id, Lock.UPDATE)
        require_open(workflow)
        count, last_position = await self.steps.count_and_last_position(workflow.id)
        if count >= MAX_STEPS_PER_WORKFLOW:
            raise Conflict(f"a workflow has at most {MAX_STEPS_PER_WORKFLOW} steps")
        position = new.position
        if position is None:
            position = 0 if last_position is None else min(last_position + 1, contract.MAX_POSITION)
        step = WorkflowStep(
            workflow_id=workflow.id,
            title=new.title,
            position=position,
            required=new.required,
            done=new.done,
            value=new.value,
            completed_by=access.caller.user_id if new.done else None,
            # The database's clock, as for every other timestamp of the record.
            completed_at=func.now() if new.done else None,
            deleted_at=None,
            version=1,
        )
        if public_id is not None:
            step.uuid = public_id
        await self.steps.add(step)
        if new.done:
            await self.session.refresh(step, ["completed_at"])
        await record_step(self.changes, step, workflow)
        return step, workflow

    async def create_pushed(
        self, access: Access, public_id: uuid.UUID, new: NewStep
    ) -> tuple[WorkflowStep, Workflow]:
        """Add a step under the id a client chose.

        The id in use is a Conflict carrying that step (None once deleted) when the
        caller may see it, else NotFound: nothing of another scope leaks.
        """
        access.require_manager("adding a step")
        await self._refuse_taken(access, public_id)
        try:
            async with self.session.begin_nested():
                return await self.create(access, new, public_id=public_id)
        except Conflict as exc:
            if exc.extensions.get("constraint") != UUID_CONSTRAINT:
                raise
        # A concurrent create of the same id committed first: answer with its step.
        await self._refuse_taken(access, public_id)
        raise Conflict("the id is already in use")

    async def _refuse_taken(self, access: Access, public_id: uuid.UUID) -> None:
        if await self.steps.workflow_id_of(public_id, include_deleted=True) is None:
            return
        try:
            step, workflow = await self._locate(
                access, public_id, lock=Lock.NONE, include_deleted=True
            )
        except NotFound:
            raise NotFound("the id is already in use") from None
        raise current_step(step, workflow, "a step with this id exists")

    # --- update ------------------------------------------------------------------------

    async def update(
        self, access: Access, request: contract.StepUpdate
    ) -> tuple[WorkflowStep, Workflow]:
        """Change the given fields; completing a step records who and when."""
        given = request.given(*STEP_FIELDS)
        require_role(access, given)
        step, workflow = await self._locate(access, request.id, lock=Lock.SHARE)
        if request.version != step.version:
            raise stale_step(step, workflow, request.version)
        require_open(workflow)
        await self._write(access, step, workflow, _differing(step, given))
        return step, workflow

    async def update_pushed(
        self, access: Access, step_id: uuid.UUID, *, version: int, given: Mapping[str, object]
    ) -> tuple[WorkflowStep, Workflow]:
        """Change the fields that differ from the step's (a no-op writes nothing).

        `given` holds fields of PUSHED_FIELDS; `workflow_id` cannot change. A deleted
        step is a Conflict carrying None.
        """
        step, workflow = await self._locate(access, step_id, lock=Lock.SHARE, include_deleted=True)
        if step.is_deleted:
            raise current_step(step, workflow, "the step has been deleted")
        if version != step.version:
            raise stale_step(step, workflow, version)
        unknown = sorted(given.keys() - PUSHED_FIELDS)
        if unknown:
            raise invalid(unknown[0], "not a field of a step that a client sets")
        fields = dict(given)
        if fields.pop("workflow_id", workflow.uuid) != workflow.uuid:
            raise invalid("workflow_id", "a step cannot move to another workflow")
        changed = _differing(step, fields)
        require_role(access, changed)
        if changed:
            require_open(workflow)
            await self._write(access, step, workflow, changed)
        return step, workflow

    async def _write(
        self, access: Access, step: WorkflowStep, workflow: Workflow, changed: dict[str, Any]
    ) -> None:
        """Write the fields that differ (none: no write, no Change)."""
        if not changed:
            return
        expected_version = step.version
        if "done" in changed:
            completing = bool(changed["done"])
            changed["completed_by"] = access.caller.user_id if completing else None
            # The database's clock, as for every other timestamp of the record.
            changed["completed_at"] = func.now() if completing else None
        await self.steps.update(step, expected_version=expected_version, **changed)
        if changed.get("done"):
            await self.session.refresh(step, ["completed_at"])
        await record_step(self.changes, step, workflow)

    # --- delete ------------------------------------------------------------------------

    async def delete(
        self, access: Access, request: contract.StepDelete
    ) -> tuple[WorkflowStep, Workflow]:
        """Soft-delete a step."""
        access.require_manager("deleting a step")
        step, workflow = await self._locate(access, request.id, lock=Lock.UPDATE)
        await self._delete(step, workflow, request.version)
        return step, workflow

    async def delete_pushed(
        self, access: Access, step_id: uuid.UUID, *, version: int | None
    ) -> WorkflowStep | None:
        """Delete at `version` (None: whatever it is); the step after it.

        A deleted step stays as it is and a missing (or unseen) one is None: either way
        the client's wish holds.
        """
        access.require_manager("deleting a step")
        try:
            step, workflow = await self._locate(
                access, step_id, lock=Lock.UPDATE, include_deleted=True
            )
        except NotFound:
            return None
        if not step.is_deleted:
            await self._delete(step, workflow, version)
        return step

    async def _delete(self, step: WorkflowStep, workflow: Workflow, version: int | None) -> None:
        if version is not None and version != step.version:
            raise stale_step(step, workflow, version)
        require_open(workflow)
        await self.steps.soft_delete(step, expected_version=version)
        await record_step(self.changes, step, workflow)


def _differing(step: WorkflowStep, given: Mapping[str, object]) -> dict[str, Any]:
    return {name: value for name, value in given.items() if getattr(step, name) != value}
