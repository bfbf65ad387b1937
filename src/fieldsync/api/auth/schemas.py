"""Wire shapes of the auth endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from fieldsync.api.auth.passwords import MAX_LENGTH, MIN_LENGTH
from fieldsync.kit.validation import Name

Password = Field(min_length=1, max_length=128)
# A password being set: the schema states the length policy (common ones are refused too).
NewPassword = Field(min_length=MIN_LENGTH, max_length=MAX_LENGTH)


class Strict(BaseModel):
    """Request bodies reject unknown fields: a stray `role` is an error, never applied."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class RegisterIn(Strict):
    """Sign up: a new organization with this user as its admin."""

    email: EmailStr = Field(max_length=320)
    password: str = NewPassword
    name: Name
    organization_name: Name


class LoginIn(Strict):
    """Sign in with email and password."""

    email: EmailStr = Field(max_length=320)
    password: str = Password


class RefreshIn(Strict):
    """Exchange a refresh token for a new pair."""

    refresh_token: str = Field(min_length=1, max_length=200)


class TokenPair(BaseModel):
    """Tokens for a session: a short-lived access token and a one-use refresh token."""

    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type
    expires_in: int = Field(description="Seconds until the access token expires")


class SessionOut(BaseModel):
    """A sign-in session of the caller."""

    id: uuid.UUID
    device: str
    ip: str
    created_at: datetime
    last_used_at: datetime
    current: bool


class SessionPage(BaseModel):
    """A page of sessions."""

    items: list[SessionOut]
    next_cursor: str | None
