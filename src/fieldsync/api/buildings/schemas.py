"""Wire shapes of the buildings endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_extra_types.country import CountryAlpha2

from fieldsync.contracts.identity import Role
from fieldsync.kit.validation import Name, StorableText

Address = Annotated[StorableText, Field(max_length=500)]
City = Annotated[StorableText, Field(min_length=1, max_length=120)]
Notes = Annotated[StorableText, Field(max_length=5000)]
Latitude = Annotated[Decimal, Field(ge=-90, le=90, max_digits=9, decimal_places=6)]
Longitude = Annotated[Decimal, Field(ge=-180, le=180, max_digits=9, decimal_places=6)]
Floors = Annotated[int, Field(ge=0, le=300)]


class BuildingCreate(BaseModel):
    """A new building; `id` may be chosen by the client (a UUID it generated offline)."""

    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID | None = None
    name: Name
    address: Address | None = None
    city: City | None = None
    country: CountryAlpha2 | None = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    floors: Floors | None = None
    notes: Notes | None = None


class BuildingUpdate(BaseModel):
    """Changed fields only; `version` (or If-Match) is the version the change is based on."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    address: Address | None = None
    city: City | None = None
    country: CountryAlpha2 | None = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    floors: Floors | None = None
    notes: Notes | None = None
    version: int | None = Field(default=None, ge=1)

    # Runs only when `name` is sent (defaults are not validated): an explicit null is
    # refused, and the error names the field.
    @field_validator("name")
    @classmethod
    def _name_is_required(cls, name: str | None) -> str | None:
        if name is None:
            raise ValueError("name cannot be null")
        return name


class BuildingOut(BaseModel):
    """A building as the API and sync show it."""

    id: uuid.UUID
    name: str
    address: str | None
    city: str | None
    country: str | None
    latitude: float | None
    longitude: float | None
    floors: int | None
    notes: str | None
    created_at: datetime
    updated_at: datetime
    version: int


class WorkflowSummary(BaseModel):
    """The default workflow created with a building."""

    id: uuid.UUID
    name: str
    status: str
    version: int


class BuildingCreated(BuildingOut):
    """A created building and what became of its default workflow."""

    workflow: WorkflowSummary | None
    workflow_status: Literal["created", "pending"]


class BuildingPage(BaseModel):
    """A page of buildings."""

    items: list[BuildingOut]
    next_cursor: str | None


class BuildingSort(StrEnum):
    """Orderings of the building list (`-` for descending)."""

    CREATED = "created_at"
    CREATED_DESC = "-created_at"
    UPDATED = "updated_at"
    UPDATED_DESC = "-updated_at"
    NAME = "name"
    NAME_DESC = "-name"


class AssigneeOut(BaseModel):
    """A user assigned to a building."""

    id: uuid.UUID
    name: str
    email: str
    role: Role


class AssigneePage(BaseModel):
    """A page of assignees."""

    items: list[AssigneeOut]
    next_cursor: str | None
