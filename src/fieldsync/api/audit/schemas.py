"""Wire shapes of the audit endpoint."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel


class AuditEventOut(BaseModel):
    """A security event. User ids are public ids (null when unknown)."""

    id: str
    kind: str
    actor_id: uuid.UUID | None
    user_id: uuid.UUID | None
    ip: str | None
    detail: dict[str, Any]
    created_at: datetime


class AuditPage(BaseModel):
    """A page of events, newest first."""

    items: list[AuditEventOut]
    next_cursor: str | None
