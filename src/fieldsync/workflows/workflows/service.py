"""Workflow use cases: idempotent create, reads, field updates, the state machine, delete.

The `*_pushed` methods apply mutations clients pushed through sync: a client-chosen id
on create, several changes in one write, deletes that hold when the record is gone.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from fieldsync.contracts import workflows as contract
from fieldsync.contracts.changes import Change, ChangeLog, new_change
from fieldsync.contracts.workflows import WorkflowStatus
from fieldsync.kit.errors import Conflict, Forbidden, NotFound
from fieldsync.kit.ids import SnowflakeGenerator
from fieldsync.kit.pagination import Page, PageRequest
from fieldsync.workflows.access import Access
from fieldsync.workflows.buildings.repository import BuildingRepository
from fieldsync.workflows.changes import change_log
from fieldsync.workflows.invalid import invalid
from fieldsync.workflows.locking import Lock
from fieldsync.workflows.steps.models import WorkflowStep
from fieldsync.workflows.steps.repository import StepRepository
from fieldsync.workflows.templates.service import default_template
from fieldsync.workflows.workflows.models import IDEMPOTENCY_CONSTRAINT, UUID_CONSTRAINT, Workflow
from fieldsync.workflows.workflows.repository import WorkflowRepository

TRANSITIONS: dict[WorkflowStatus, tuple[WorkflowStatus, ...]] = {
    WorkflowStatus.OPEN: (WorkflowStatus.IN_PROGRESS, WorkflowStatus.CANCELLED),
    WorkflowStatus.IN_PROGRESS: (WorkflowStatus.DONE, WorkflowStatus.CANCELLED),
    WorkflowStatus.DONE: (WorkflowStatus.IN_PROGRESS,),
    WorkflowStatus.CANCELLED: (),
}
OPEN_STATUSES = frozenset({WorkflowStatus.OPEN, WorkflowStatus.IN_PROGRESS})


def allowed_transitions(status: WorkflowStatus, access: Access) -> list[WorkflowStatus]:
    """The statuses this caller may move a workflow in `status` to."""
    reopening = status is WorkflowStatus.DONE
    if reopening and not access.manages:
        return []
    return list(TRANSITIONS[status])


def workflow_out(workflow: Workflow) -> contract.Workflow:
    """The public shape of a workflow."""
    return contract.Workflow(
        id=workflow.uuid,
        building_id=workflow.building_id,
        name=workflow.name,
        status=WorkflowStatus(workflow.status),
        assignee_id=workflow.assignee_id,
        due_date=workflow.due_date,
        updated_at=workflow.updated_at,
        version=workflow.version,
    )


def step_out(step: WorkflowStep, workflow: Workflow) -> contract.WorkflowStep:
    """The public shape of a step."""
    return contract.WorkflowStep(
        id=step.uuid,
        workflow_id=workflow.uuid,
        title=step.title,
        position=step.position,
        done=step.done,
        value=step.value,
        completed_by=step.completed_by,
        completed_at=step.completed_at,
        required=step.required,
        version=step.version,
    )


def current_workflow(workflow: Workflow, detail: str) -> Conflict:
    """A Conflict carrying the workflow as it is now (None once deleted)."""
    return Conflict(
        detail,
        current_version=workflow.version,
        current=None if workflow.is_deleted else workflow_out(workflow).model_dump(mode="json"),
    )


def stale_workflow(workflow: Workflow, expected_version: int) -> Conflict:
    """The Conflict of a write based on an old version, carrying the current workflow."""
    return current_workflow(
        workflow, f"stale version {expected_version}; the current version is {workflow.version}"
    )


def pushed_key(public_id: uuid.UUID) -> str:
    """The idempotency key of a workflow a client created under its own id.

    A namespace of its own: a client-chosen id equal to a building's id must not take
    the key of that building's default workflow.
    """
    return f"pushed:{public_id}"


@dataclass(frozen=True)
class NewWorkflow:
    """What a workflow is created with."""

    organization_id: uuid.UUID
    building_id: uuid.UUID
    idempotency_key: str
    name: str | None = None
    assignee_id: uuid.UUID | None = None
    due_date: date | None = None


# What a pushed change may give: the wire fields (the building cannot change, though).
PUSHED_FIELDS = frozenset({"building_id", "name", "status", "assignee_id", "due_date"})


@dataclass(frozen=True)
class WorkflowChanges:
    """A pushed change: the fields the client gave (of PUSHED_FIELDS), at `version`."""

    id: uuid.UUID
    version: int
    given: Mapping[str, object]


@dataclass
class WorkflowService:
    """Workflow use cases over one message's session."""

    session: AsyncSession
    ids: SnowflakeGenerator
    changes: ChangeLog = field(init=False)

    def __post_init__(self) -> None:
        self.workflows = WorkflowRepository(self.session, self.ids)
        self.steps = StepRepository(self.session, self.ids)
        self.buildings = BuildingRepository(self.session)
        self.changes = change_log(self.session, self.ids)

    # --- reads -------------------------------------------------------------------------

    async def get(
        self, access: Access, workflow_id: uuid.UUID, *, lock: Lock = Lock.NONE
    ) -> Workflow:
        """A workflow the caller may see; NotFound for any other."""
        workflow = await self.workflows.find(access, workflow_id, lock=lock)
        if workflow is None:
            raise NotFound("no such workflow")
        return workflow

    async def list(
        self, access: Access, request: PageRequest, *, building_id: uuid.UUID | None
    ) -> Page[Workflow]:
        """Workflows in the caller's scope."""
        return await self.workflows.page_in_scope(access, request, building_id=building_id)

    # --- create ------------------------------------------------------------------------

    async def create(self, access: Access, new: NewWorkflow) -> tuple[Workflow, bool]:
        """Create once per idempotency key; the same key again answers the first workflow."""
        access.require_manager("creating a workflow")
        if not access.sees(new.building_id):
            raise NotFound("no such building")
        workflow, created = await self._create_once(new)
        if workflow.is_deleted:
            raise Conflict(
                "the workflow created with this idempotency key has been deleted",
                idempotency_key=new.idempotency_key,
            )
        return workflow, created

    async def ensure_default(self, organization_id: uuid.UUID, building_id: uuid.UUID) -> bool:
        """Give a building its default workflow unless it has (or had) one; True if created."""
        new = NewWorkflow(
            organization_id=organization_id,
            building_id=building_id,
            idempotency_key=contract.default_workflow_key(building_id),
        )
        try:
            _, created = await self._create_once(new)
        except NotFound:  # the building was deleted meanwhile
            return False
        return created

    async def create_pushed(
        self,
        access: Access,
        public_id: uuid.UUID,
        *,
        building_id: uuid.UUID,
        name: str | None = None,
        assignee_id: uuid.UUID | None = None,
        due_date: date | None = None,
    ) -> Workflow:
        """Create a workflow under the id a client chose (which names its creation).

        The id in use is a Conflict carrying that workflow (None once deleted) when the
        caller may see it, else NotFound: nothing of another scope leaks.
        """
        access.require_manager("creating a workflow")
        await self._refuse_taken(access, public_id)
        if not access.sees(building_id):
            raise NotFound("no such building")
        new = NewWorkflow(
            organization_id=access.organization_id,
            building_id=building_id,
            idempotency_key=pushed_key(public_id),
            name=name,
            assignee_id=assignee_id,
            due_date=due_date,
        )
        await self._hold_building(new)
        try:
            async with self.session.begin_nested():
                return await self._create(new, public_id=public_id)
        except Conflict as exc:
            if exc.extensions.get("constraint") not in (UUID_CONSTRAINT, IDEMPOTENCY_CONSTRAINT):
                raise
        # A concurrent create of the same id committed first: answer with its workflow.
        await self._refuse_taken(access, public_id)
        raise Conflict("the id is already in use")

    async def _refuse_taken(self, access: Access, public_id: uuid.UUID) -> None:
        existing = await self.workflows.get_by_uuid(public_id, include_deleted=True)
        if existing is None:
            return
        if existing.organization_id != access.organization_id or not access.sees(
            existing.building_id
        ):
            raise NotFound("the id is already in use")
        raise current_workflow(existing, "a workflow with this id exists")

    async def _hold_building(self, new: NewWorkflow) -> None:
        """Hold off the building's delete until commit; a deleted building is NotFound."""
        await self.buildings.lock_for_create(new.building_id)
        if await self.buildings.is_retired(new.organization_id, new.building_id):
            raise NotFound("the building has been deleted")

    async def _create_once(self, new: NewWorkflow) -> tuple[Workflow, bool]:
        existing = await self.workflows.find_by_idempotency_key(
            new.organization_id, new.idempotency_key
        )
        if existing is None:
            await self._hold_building(new)
            try:
                return await self._create(new), True
            except Conflict as exc:
                if exc.extensions.get("constraint") != IDEMPOTENCY_CONSTRAINT:
                    raise
            # A concurrent request with the same key committed first: answer its workflow.
            existing = await self.workflows.find_by_idempotency_key(
                new.organization_id, new.idempotency_key
            )
            if existing is None:  # pragma: no cover - the constraint says it exists
                raise Conflict("the idempotency key is in use; retry")
        if existing.building_id != new.building_id:
            raise Conflict(
                "this idempotency key was used for another building",
                idempotency_key=new.idempotency_key,
            )
        return existing, False

    async def _create(self, new: NewWorkflow, *, public_id: uuid.UUID | None = None) -> Workflow:
        """The workflow and its template's steps, in three statements and one for changes.

        A taken idempotency key writes nothing and is a Conflict naming the constraint.
        """
        template = await default_template(
            session=self.session, ids=self.ids, organization_id=new.organization_id
        )
        values: dict[str, object] = {
            "organization_id": new.organization_id,
            "building_id": new.building_id,
            "template_id": template.template.id,
            "name": new.name or template.template.name,
            "status": WorkflowStatus.OPEN,
            "assignee_id": new.assignee_id,
            "due_date": new.due_date,
            "idempotency_key": new.idempotency_key,
            "deleted_at": None,
            "version": 1,
        }
        if public_id is not None:
            values["uuid"] = public_id
        workflow = await self.workflows.insert_once(values)
        if workflow is None:
            raise Conflict(
                "the idempotency key is in use",
                constraint=IDEMPOTENCY_CONSTRAINT,
                idempotency_key=new.idempotency_key,
            )
        steps = await self.steps.insert_all(
            [
                {
                    "workflow_id": workflow.id,
                    "title": step.title,
                    "position": step.position,
                    "required": step.required,
                    "done": False,
                    "value": None,
                    "completed_by": None,
                    "completed_at": None,
                    "deleted_at": None,
                    "version": 1,
                }
                for step in template.steps
            ]
        )
        await self.changes.record_all(
            [workflow_change(workflow), *(step_change(step, workflow) for step in steps)]
        )
        return workflow

    # --- writes ------------------------------------------------------------------------

    async def update(self, access: Access, request: contract.WorkflowUpdate) -> Workflow:
        """Change a workflow's name, assignee or due date."""
        access.require_manager("changing a workflow")
        workflow = await self.get(access, request.id, lock=Lock.UPDATE)
        if request.version != workflow.version:
            raise stale_workflow(workflow, request.version)
        changed = {
            name: value
            for name, value in request.given("name", "assignee_id", "due_date").items()
            if getattr(workflow, name) != value
        }
        if changed:
            await self.workflows.update(workflow, expected_version=request.version, **changed)
            await self.record(workflow)
        return workflow

    async def transition(self, access: Access, request: contract.WorkflowTransition) -> Workflow:
        """Move a workflow along the state machine."""
        workflow = await self.get(access, request.id, lock=Lock.UPDATE)
        if request.version != workflow.version:
            raise stale_workflow(workflow, request.version)
        await self._check_transition(access, workflow, request.status)
        await self.workflows.update(
            workflow, expected_version=request.version, status=request.status
        )
        await self.record(workflow)
        return workflow

    async def _check_transition(
        self, access: Access, workflow: Workflow, target: WorkflowStatus
    ) -> None:
        """Raise unless the caller may move the workflow to `target` now."""
        status = WorkflowStatus(workflow.status)
        if target not in TRANSITIONS[status]:
            raise Conflict(
                f"a workflow cannot go from {status} to {target}",
                status=status,
                allowed=allowed_transitions(status, access),
            )
        if status is WorkflowStatus.DONE and not access.manages:
            raise Forbidden("reopening a done workflow requires the manager or admin role")
        if target is WorkflowStatus.DONE:
            incomplete = await self.steps.incomplete_required(workflow.id)
            if incomplete:
                raise Conflict(
                    f"{len(incomplete)} required step(s) are not done",
                    incomplete_steps=[str(step.uuid) for step in incomplete],
                )

    async def update_pushed(self, access: Access, changes: WorkflowChanges) -> Workflow:
        """Apply a pushed change: the fields that differ and the status, as one write.

        One version bump and one Change for all of it, none when nothing differs. A
        field sent with its current value is no change (technicians may send them).
        A deleted workflow is a Conflict carrying None.
        """
        workflow = await self.workflows.find(
            access, changes.id, lock=Lock.UPDATE, include_deleted=True
        )
        if workflow is None:
            raise NotFound("no such workflow")
        if workflow.is_deleted:
            raise current_workflow(workflow, "the workflow has been deleted")
        if changes.version != workflow.version:
            raise stale_workflow(workflow, changes.version)
        unknown = sorted(changes.given.keys() - PUSHED_FIELDS)
        if unknown:
            raise invalid(unknown[0], "not a field of a workflow that a client sets")
        changed = {
            name: value for name, value in changes.given.items() if getattr(workflow, name) != value
        }
        if "building_id" in changed:
            raise invalid("building_id", "a workflow cannot move to another building")
        status = changed.pop("status", None)
        if changed:
            access.require_manager("changing a workflow")
        if status is not None:
            await self._check_transition(access, workflow, WorkflowStatus(str(status)))
            changed["status"] = status
        if changed:
            await self.workflows.update(workflow, expected_version=changes.version, **changed)
            await self.record(workflow)
        return workflow

    async def delete(self, access: Access, request: contract.WorkflowDelete) -> Workflow:
        """Soft-delete a workflow and its steps."""
        access.require_manager("deleting a workflow")
        workflow = await self.get(access, request.id, lock=Lock.UPDATE)
        if request.version != workflow.version:
            raise stale_workflow(workflow, request.version)
        await self._delete(workflow)
        return workflow

    async def delete_pushed(
        self, access: Access, workflow_id: uuid.UUID, *, version: int | None
    ) -> Workflow | None:
        """Delete at `version` (None: whatever it is); the workflow after it.

        A deleted workflow stays as it is and a missing (or unseen) one is None: either
        way the client's wish holds.
        """
        access.require_manager("deleting a workflow")
        workflow = await self.workflows.find(
            access, workflow_id, lock=Lock.UPDATE, include_deleted=True
        )
        if workflow is None or workflow.is_deleted:
            return workflow
        if version is not None and version != workflow.version:
            raise stale_workflow(workflow, version)
        await self._delete(workflow)
        return workflow

    async def retire_building(self, organization_id: uuid.UUID, building_id: uuid.UUID) -> int:
        """A building was deleted: cancel and soft-delete its workflows; how many there were."""
        await self.buildings.lock_for_retire(building_id)
        await self.buildings.retire(organization_id, building_id)
        workflows = await self.workflows.lock_live_of_building(organization_id, building_id)
        for workflow in workflows:
            if workflow.status in OPEN_STATUSES:
                workflow.status = WorkflowStatus.CANCELLED
            await self._delete(workflow)
        return len(workflows)

    async def _delete(self, workflow: Workflow) -> None:
        steps: Sequence[WorkflowStep] = await self.steps.of_workflow(workflow.id)
        await self.workflows.soft_delete(workflow, expected_version=None)
        for step in steps:
            step.deleted_at = workflow.deleted_at
        await self.steps.flush()
        await self.changes.record_all(
            [workflow_change(workflow), *(step_change(step, workflow) for step in steps)]
        )

    # --- changes -----------------------------------------------------------------------

    async def record(self, workflow: Workflow) -> None:
        """Append the workflow's change (upsert, or delete once soft-deleted) to the outbox."""
        await self.changes.record_all([workflow_change(workflow)])

    async def record_step(self, step: WorkflowStep, workflow: Workflow) -> None:
        """Append the step's change to the outbox."""
        await record_step(self.changes, step, workflow)


def workflow_change(workflow: Workflow) -> Change:
    """The workflow's change: upsert, or delete once soft-deleted."""
    deleted = workflow.deleted_at is not None
    return new_change(
        contract.WORKFLOWS_COLLECTION,
        organization_id=workflow.organization_id,
        building_id=workflow.building_id,
        record_id=workflow.uuid,
        version=workflow.version,
        data=None if deleted else workflow_out(workflow).model_dump(mode="json"),
        occurred_at=workflow.deleted_at if deleted else workflow.updated_at,
    )


def step_change(step: WorkflowStep, workflow: Workflow) -> Change:
    """A step's change: upsert, or delete once soft-deleted."""
    deleted = step.deleted_at is not None
    return new_change(
        contract.STEPS_COLLECTION,
        organization_id=workflow.organization_id,
        building_id=workflow.building_id,
        record_id=step.uuid,
        version=step.version,
        data=None if deleted else step_out(step, workflow).model_dump(mode="json"),
        occurred_at=step.deleted_at if deleted else step.updated_at,
    )


async def record_step(changes: ChangeLog, step: WorkflowStep, workflow: Workflow) -> None:
    """Append a step's change (upsert, or delete once soft-deleted) to the outbox."""
    await changes.record_all([step_change(step, workflow)])
