"""Who is calling: roles and the caller every service authorizes against."""

from __future__ import annotations

import uuid
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class Role(StrEnum):
    """What a user may do inside their organization."""

    ADMIN = "admin"  # manages users and everything in the organization
    MANAGER = "manager"  # manages buildings and workflows
    TECHNICIAN = "technician"  # sees assigned buildings, works their workflows


class Caller(BaseModel):
    """The authenticated caller, from a verified access token.

    Carried in NATS requests between services, so each service enforces
    organization scoping itself.
    """

    model_config = ConfigDict(frozen=True)

    user_id: uuid.UUID
    organization_id: uuid.UUID
    role: Role
    session_id: uuid.UUID

    def has_role(self, *roles: Role) -> bool:
        """True when the caller holds one of `roles`."""
        return self.role in roles
