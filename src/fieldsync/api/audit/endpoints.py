"""HTTP endpoint of the security log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from fieldsync.api.audit import service as audit
from fieldsync.api.audit.schemas import AuditEventOut, AuditPage
from fieldsync.api.deps import ApiSession, RuntimeDep
from fieldsync.api.users.service import acting_admin
from fieldsync.kit.http.auth import AdminCaller
from fieldsync.kit.pagination import PageRequest

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("")
async def list_events(
    caller: AdminCaller,
    session: ApiSession,
    runtime: RuntimeDep,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int | None, Query()] = None,
) -> AuditPage:
    """Security events of your organization, newest first (admin)."""
    ids = runtime.ids["api"]
    organization = await acting_admin(session, ids, caller)
    page = await audit.page(
        session=session,
        ids=ids,
        organization_id=organization.id,
        request=PageRequest.parse(cursor, limit),
    )
    return AuditPage(
        items=[
            AuditEventOut(
                id=str(event.id),
                kind=event.kind,
                actor_id=event.actor_id,
                user_id=event.user_id,
                ip=event.ip,
                detail=event.detail,
                created_at=event.created_at,
            )
            for event in page.items
        ],
        next_cursor=page.next_cursor,
    )
