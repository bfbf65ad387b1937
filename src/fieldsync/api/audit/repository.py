"""SQL for audit events."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fieldsync.api.audit.models import AuditEvent
from fieldsync.kit.ids import SnowflakeGenerator
from fieldsync.kit.pagination import Page, PageRequest


class AuditRepository:
    """Append and read security events."""

    def __init__(self, session: AsyncSession, ids: SnowflakeGenerator) -> None:
        self.session = session
        self.ids = ids

    def add(self, event: AuditEvent) -> AuditEvent:
        """Queue an event for the transaction's commit."""
        event.id = self.ids.next_id()
        self.session.add(event)
        return event

    async def page_for_organization(
        self, organization_id: int, request: PageRequest
    ) -> Page[AuditEvent]:
        """Newest first: the cursor walks back in time."""
        statement = select(AuditEvent).where(AuditEvent.organization_id == organization_id)
        if request.after_id is not None:
            statement = statement.where(AuditEvent.id < request.after_id)
        statement = statement.order_by(AuditEvent.id.desc()).limit(request.limit + 1)
        rows: Sequence[AuditEvent] = (await self.session.scalars(statement)).all()
        return Page.from_rows(list(rows), request.limit, key=lambda event: event.id)
