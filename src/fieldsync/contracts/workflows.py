"""The workflows service over NATS: subjects, requests and replies.

Every request names its `caller` and the `building_scope` the caller works in: None
when the caller may see the whole organization, else the buildings they may touch (the
api passes a technician's assigned buildings; a technician without a scope is refused).
The service enforces both itself: another organization's record, or one outside the
scope, is `NotFound`.

Errors (re-raised on the caller as the same type):
- `ValidationFailed`: a field is out of bounds (`errors` lists field paths).
- `Forbidden`: the role may not do this (technicians may read, update steps' `done`
  and `value`, and transition workflows, except reopening a done one).
- `NotFound`: no such record in the caller's organization and scope.
- `Conflict`: a stale `version` (extensions `current_version` and `current`, the
  record as it is now), an illegal transition (`allowed`: the statuses reachable from
  the current one), `done` with required steps left (`incomplete_steps`), a change to a
  closed (done or cancelled) workflow's steps, or an idempotency key already used for
  another building or for a since deleted workflow.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
)

from fieldsync.contracts.identity import Caller, Role
from fieldsync.kit.pagination import DEFAULT_LIMIT, MAX_LIMIT, PageOut
from fieldsync.kit.validation import Name, StorableText

QUEUE = "workflows"

CREATE = "workflows.create"
GET = "workflows.get"
LIST = "workflows.list"
UPDATE = "workflows.update"
TRANSITION = "workflows.transition"
DELETE = "workflows.delete"

STEP_CREATE = "workflows.steps.create"
STEP_GET = "workflows.steps.get"
STEP_LIST = "workflows.steps.list"
STEP_UPDATE = "workflows.steps.update"
STEP_DELETE = "workflows.steps.delete"

# Collections of the changes the service publishes to CHANGES (`changes.<org>.<collection>`).
WORKFLOWS_COLLECTION = "workflows"
STEPS_COLLECTION = "workflow_steps"

MAX_BUILDING_SCOPE = 10_000
MAX_STEPS_PER_WORKFLOW = 200
MAX_POSITION = 10_000
MAX_VALUE_LENGTH = 4_000

Version = Annotated[int, Field(ge=1, le=2_147_483_647)]
Position = Annotated[int, Field(ge=0, le=MAX_POSITION)]
StepValue = Annotated[StorableText, Field(max_length=MAX_VALUE_LENGTH)]
IdempotencyKey = Annotated[StorableText, Field(min_length=1, max_length=200)]
Cursor = Annotated[str, Field(max_length=64)]
Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT)]


def default_workflow_key(building_id: uuid.UUID) -> str:
    """The idempotency key of a building's default workflow (one per building, ever)."""
    return str(building_id)


class WorkflowStatus(StrEnum):
    """Where a workflow stands. open -> in_progress -> done; open/in_progress -> cancelled;
    done -> in_progress reopens (managers and admins only)."""

    OPEN = "open"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    CANCELLED = "cancelled"


# --- replies ---------------------------------------------------------------------------


class Workflow(BaseModel):
    """A workflow as the wire (and CHANGES) carries it."""

    id: uuid.UUID
    building_id: uuid.UUID
    name: str
    status: WorkflowStatus
    assignee_id: uuid.UUID | None
    due_date: date | None
    updated_at: datetime
    version: int


class WorkflowStep(BaseModel):
    """A step of a workflow as the wire (and CHANGES) carries it."""

    id: uuid.UUID
    workflow_id: uuid.UUID
    title: str
    position: int
    done: bool
    value: str | None
    completed_by: uuid.UUID | None
    completed_at: datetime | None
    required: bool
    version: int


class WorkflowCreated(BaseModel):
    """The workflow, and whether this request created it (False: the key was used before)."""

    workflow: Workflow
    created: bool


class WorkflowPage(PageOut[Workflow]):
    """A page of workflows, oldest first."""


class WorkflowStepPage(PageOut[WorkflowStep]):
    """A page of a workflow's steps, in creation order (sort by `position` to display)."""


class Deleted(BaseModel):
    """What a delete removed: the record and its version after the delete."""

    id: uuid.UUID
    version: int


# --- requests --------------------------------------------------------------------------


class ScopedRequest(BaseModel):
    """What every request carries: who asks, and the buildings they may work in."""

    model_config = ConfigDict(extra="forbid")

    caller: Caller
    building_scope: list[uuid.UUID] | None = Field(
        default=None, max_length=MAX_BUILDING_SCOPE, validate_default=True
    )

    @field_validator("building_scope")
    @classmethod
    def _technicians_have_a_scope(
        cls, value: list[uuid.UUID] | None, info: ValidationInfo
    ) -> list[uuid.UUID] | None:
        caller = info.data.get("caller")
        if value is None and isinstance(caller, Caller) and caller.role == Role.TECHNICIAN:
            raise ValueError("required for a technician (their assigned buildings)")
        return value


def _not_null(value: object) -> object:
    if value is None:
        raise ValueError("may be left out, not null")
    return value


class PartialUpdate(ScopedRequest):
    """An update that changes only the fields it was given.

    It serialises only those fields, so "left out" and "null" (clear it) stay distinct
    over the wire. Build it from what the client sent, e.g.
    `WorkflowUpdate(caller=..., id=..., version=..., **body.model_dump(exclude_unset=True))`.
    """

    @model_serializer(mode="wrap")
    def _only_given_fields(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        data: dict[str, object] = handler(self)
        return {name: value for name, value in data.items() if name in self.model_fields_set}

    def given(self, *names: str) -> dict[str, object]:
        """The fields among `names` that the request sets (to a value or to null)."""
        return {name: getattr(self, name) for name in names if name in self.model_fields_set}


class WorkflowCreate(ScopedRequest):
    """Create a workflow for a building from the organization's default template.

    `idempotency_key` names the creation: the same key again in the organization
    answers the workflow it created (`created: false`). The api uses the building id
    as the key of a building's default workflow.
    """

    building_id: uuid.UUID
    idempotency_key: IdempotencyKey
    name: Name | None = None
    assignee_id: uuid.UUID | None = None
    due_date: date | None = None


class WorkflowGet(ScopedRequest):
    """One workflow."""

    id: uuid.UUID


class WorkflowList(ScopedRequest):
    """The workflows in scope, optionally of one building; cursor-paged."""

    building_id: uuid.UUID | None = None
    cursor: Cursor | None = None
    limit: Limit = DEFAULT_LIMIT


class WorkflowUpdate(PartialUpdate):
    """Change the fields given (managers and admins); `version` is the one read."""

    id: uuid.UUID
    version: Version
    name: Name | None = None
    assignee_id: uuid.UUID | None = None
    due_date: date | None = None

    _name_not_null = field_validator("name")(_not_null)


class WorkflowTransition(ScopedRequest):
    """Move a workflow to `status`; `version` is the one read."""

    id: uuid.UUID
    version: Version
    status: WorkflowStatus


class WorkflowDelete(ScopedRequest):
    """Soft-delete a workflow and its steps (managers and admins)."""

    id: uuid.UUID
    version: Version


class StepCreate(ScopedRequest):
    """Add a step to an open or in-progress workflow (managers and admins).

    Without `position` the step goes after the last one.
    """

    workflow_id: uuid.UUID
    title: Name
    required: bool = False
    position: Position | None = None


class StepGet(ScopedRequest):
    """One step."""

    id: uuid.UUID


class StepList(ScopedRequest):
    """The steps of one workflow; cursor-paged."""

    workflow_id: uuid.UUID
    cursor: Cursor | None = None
    limit: Limit = DEFAULT_LIMIT


class StepUpdate(PartialUpdate):
    """Change the fields given; `version` is the one read.

    Technicians may change only `done` and `value`. Marking a step done records who
    and when (`completed_by`, `completed_at`); marking it not done clears both.
    """

    id: uuid.UUID
    version: Version
    done: bool | None = None
    value: StepValue | None = None
    title: Name | None = None
    position: Position | None = None
    required: bool | None = None

    _given_not_null = field_validator("done", "title", "position", "required")(_not_null)


class StepDelete(ScopedRequest):
    """Soft-delete a step (managers and admins)."""

    id: uuid.UUID
    version: Version
