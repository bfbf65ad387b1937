"""Wire shapes of the users endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, EmailStr, Field

from fieldsync.api.auth.passwords import MAX_LENGTH, MIN_LENGTH
from fieldsync.api.auth.schemas import NewPassword, Strict
from fieldsync.api.users.models import UserStatus
from fieldsync.contracts.identity import Role
from fieldsync.kit.validation import Name


class UserOut(BaseModel):
    """A user as the API shows it (never the password hash)."""

    id: uuid.UUID
    organization_id: uuid.UUID
    email: str
    name: str
    role: Role
    status: UserStatus
    created_at: datetime
    updated_at: datetime
    version: int


class UserPage(BaseModel):
    """A page of users."""

    items: list[UserOut]
    next_cursor: str | None


class UserCreate(Strict):
    """An admin adds a user to their organization."""

    email: EmailStr = Field(max_length=320)
    password: str = NewPassword
    name: Name
    role: Role


class UserUpdate(Strict):
    """An admin changes a user; `version` (optional) guards against lost updates."""

    name: Name | None = None
    role: Role | None = None
    status: UserStatus | None = None
    version: int | None = Field(default=None, ge=1)


class MeUpdate(Strict):
    """A user changes their own name or password (the current password is required)."""

    name: Name | None = None
    current_password: str | None = Field(default=None, min_length=1, max_length=128)
    new_password: str | None = Field(default=None, min_length=MIN_LENGTH, max_length=MAX_LENGTH)
