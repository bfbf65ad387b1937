"""HTTP bodies of the workflow endpoints (replies reuse the contract's models)."""

from __future__ import annotations

import uuid
from datetime import date

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fieldsync.contracts.workflows import StepValue, WorkflowStatus
from fieldsync.kit.validation import Name


class WorkflowCreateIn(BaseModel):
    """A new workflow for a building (from the organization's default template)."""

    model_config = ConfigDict(extra="forbid")

    building_id: uuid.UUID
    name: Name | None = None
    assignee_id: uuid.UUID | None = None
    due_date: date | None = None


class WorkflowUpdateIn(BaseModel):
    """Changed fields; `version` (or If-Match) is the version read."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    assignee_id: uuid.UUID | None = None
    due_date: date | None = None
    version: int | None = Field(default=None, ge=1)

    @field_validator("name")
    @classmethod
    def _name_not_null(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("may be left out, not null")
        return value


class TransitionIn(BaseModel):
    """Move the workflow to `to`."""

    model_config = ConfigDict(extra="forbid")

    to: WorkflowStatus
    version: int | None = Field(default=None, ge=1)


class StepUpdateIn(BaseModel):
    """Changed step fields; technicians may change `done` and `value` only."""

    model_config = ConfigDict(extra="forbid")

    done: bool | None = None
    value: StepValue | None = None
    title: Name | None = None
    position: int | None = Field(default=None, ge=0, le=10_000)
    required: bool | None = None
    version: int | None = Field(default=None, ge=1)

    @field_validator("done", "title", "position", "required")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may be left out, not null")
        return value
