"""Recording and reading security events."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from fieldsync.api.audit.models import AuditEvent
from fieldsync.api.audit.repository import AuditRepository
from fieldsync.kit.db.engine import Database
from fieldsync.kit.ids import SnowflakeGenerator
from fieldsync.kit.pagination import Page, PageRequest


class AuditKind(StrEnum):
    """The security events fieldsync records."""

    ORGANIZATION_REGISTERED = "organization.registered"
    LOGIN_SUCCEEDED = "login.succeeded"
    LOGIN_FAILED = "login.failed"
    REFRESH_REUSED = "refresh.reused"
    SESSION_REVOKED = "session.revoked"
    SESSIONS_REVOKED = "sessions.revoked"
    USER_CREATED = "user.created"
    USER_DELETED = "user.deleted"
    USER_ROLE_CHANGED = "user.role_changed"
    USER_STATUS_CHANGED = "user.status_changed"
    USER_PASSWORD_CHANGED = "user.password_changed"  # noqa: S105 - an event name


def build_event(
    kind: AuditKind,
    *,
    organization_id: int | None,
    actor_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    ip: str | None = None,
    **detail: Any,
) -> AuditEvent:
    """An audit event, not yet stored."""
    return AuditEvent(
        kind=kind.value,
        organization_id=organization_id,
        actor_id=actor_id,
        user_id=user_id,
        ip=ip,
        detail=detail,
    )


def record(*, session: AsyncSession, ids: SnowflakeGenerator, event: AuditEvent) -> None:
    """Record an event in the request's transaction: it commits with the change it describes."""
    AuditRepository(session, ids).add(event)


async def record_now(*, database: Database, ids: SnowflakeGenerator, event: AuditEvent) -> None:
    """Record an event in its own transaction: kept even when the request then fails."""
    async with database.sessions() as session:
        AuditRepository(session, ids).add(event)
        await session.commit()


async def page(
    *, session: AsyncSession, ids: SnowflakeGenerator, organization_id: int, request: PageRequest
) -> Page[AuditEvent]:
    """The organization's events, newest first."""
    return await AuditRepository(session, ids).page_for_organization(organization_id, request)
