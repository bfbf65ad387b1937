"""The `data` of a pushed mutation, validated per collection.

Sync has already dropped server fields and refused unknown ones; the owner checks
again, against the same collection definitions, and validates the values. Every field
is optional (an update sends what it changes); a field that cannot be cleared refuses
null rather than reading it as "left out".
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, field_validator

from fieldsync.contracts.collections import SERVER_FIELDS, Collection
from fieldsync.contracts.workflows import Position, StepValue, WorkflowStatus
from fieldsync.kit.validation import Name
from fieldsync.workflows.invalid import invalid

DataT = TypeVar("DataT", bound="PushedData")
T = TypeVar("T")


def _not_null(value: object) -> object:
    if value is None:
        raise ValueError("may be left out, not null")
    return value


class PushedData(BaseModel):
    """The writable fields of one pushed record."""

    model_config = ConfigDict(extra="forbid")

    def given(self) -> dict[str, Any]:
        """The fields the client sent (to a value or to null)."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class WorkflowData(PushedData):
    """A pushed workflow's fields (`building_id` is required to create one)."""

    building_id: uuid.UUID | None = None
    name: Name | None = None
    status: WorkflowStatus | None = None
    assignee_id: uuid.UUID | None = None
    due_date: date | None = None

    _given_not_null = field_validator("building_id", "name", "status")(_not_null)


class StepData(PushedData):
    """A pushed step's fields (`workflow_id` and `title` are required to create one)."""

    workflow_id: uuid.UUID | None = None
    title: Name | None = None
    position: Position | None = None
    done: bool | None = None
    value: StepValue | None = None

    _given_not_null = field_validator("workflow_id", "title", "position", "done")(_not_null)


def parse(model: type[DataT], collection: Collection, data: dict[str, Any] | None) -> DataT:
    """`data` as `model`; an unknown field is a ValidationFailed naming it.

    Server fields are ignored, as the collection defines; a pydantic ValidationError
    (a value out of bounds) names its field too.
    """
    fields = {name: value for name, value in (data or {}).items() if name not in SERVER_FIELDS}
    unknown = sorted(fields.keys() - collection.writable)
    if unknown:
        raise invalid(unknown[0], f"not a writable field of {collection.name}")
    return model.model_validate(fields)


def required(value: T | None, name: str) -> T:
    """A field a create needs; None here means left out (null is refused earlier)."""
    if value is None:
        raise invalid(name, "required to create the record")
    return value
