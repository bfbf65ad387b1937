"""SQL for workflows."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError

from fieldsync.kit.db.repository import Repository, conflict_of
from fieldsync.kit.pagination import Page, PageRequest
from fieldsync.workflows.access import Access
from fieldsync.workflows.locking import Lock, locked
from fieldsync.workflows.workflows.models import IDEMPOTENCY_CONSTRAINT, Workflow


class WorkflowRepository(Repository[Workflow]):
    """Workflows, always looked up within the caller's organization and building scope."""

    model = Workflow

    def select_in_scope(self, access: Access, *, include_deleted: bool = False) -> Select[Workflow]:
        """Workflows the caller may see (live ones unless `include_deleted`)."""
        statement = select(Workflow) if include_deleted else self.select_live()
        statement = statement.where(Workflow.organization_id == access.organization_id)
        if access.building_scope is not None:
            statement = statement.where(Workflow.building_id.in_(access.building_scope))
        return statement

    async def find(
        self,
        access: Access,
        public_id: uuid.UUID,
        *,
        lock: Lock = Lock.NONE,
        include_deleted: bool = False,
    ) -> Workflow | None:
        """A workflow in scope by public id (live unless `include_deleted`), or None."""
        statement = self.select_in_scope(access, include_deleted=include_deleted).where(
            Workflow.uuid == public_id
        )
        found: Workflow | None = await self.session.scalar(locked(statement, lock))
        return found

    async def find_by_id(
        self,
        access: Access,
        workflow_id: int,
        *,
        lock: Lock = Lock.NONE,
        include_deleted: bool = False,
    ) -> Workflow | None:
        """A workflow in scope by snowflake id (live unless `include_deleted`), or None."""
        statement = self.select_in_scope(access, include_deleted=include_deleted).where(
            Workflow.id == workflow_id
        )
        found: Workflow | None = await self.session.scalar(locked(statement, lock))
        return found

    async def find_by_idempotency_key(
        self, organization_id: uuid.UUID, key: str
    ) -> Workflow | None:
        """The workflow created with `key` in the organization, deleted or not."""
        found: Workflow | None = await self.session.scalar(
            select(Workflow).where(
                Workflow.organization_id == organization_id, Workflow.idempotency_key == key
            )
        )
        return found

    async def insert_once(self, values: dict[str, Any]) -> Workflow | None:
        """Insert a workflow unless its idempotency key is taken; None when it is.

        `ON CONFLICT DO NOTHING` instead of a failing INSERT: a lost race (a concurrent
        create with the same key, which this waits for) leaves the transaction usable,
        without a savepoint. Any other violation (a taken public id) still raises.
        """
        statement = (
            insert(Workflow)
            .values(id=self.ids.next_id(), **values)
            .on_conflict_do_nothing(constraint=IDEMPOTENCY_CONSTRAINT)
            .returning(Workflow)
        )
        try:
            found: Workflow | None = await self.session.scalar(statement)
        except IntegrityError as exc:
            raise conflict_of(exc) from None
        return found

    async def page_in_scope(
        self, access: Access, request: PageRequest, *, building_id: uuid.UUID | None
    ) -> Page[Workflow]:
        """Workflows in scope (of one building when given), oldest first."""
        statement = self.select_in_scope(access)
        if building_id is not None:
            statement = statement.where(Workflow.building_id == building_id)
        return await self.page(statement, request)

    async def lock_live_of_building(
        self, organization_id: uuid.UUID, building_id: uuid.UUID
    ) -> Sequence[Workflow]:
        """A building's live workflows, locked for update."""
        statement = (
            self.select_live()
            .where(Workflow.organization_id == organization_id, Workflow.building_id == building_id)
            .order_by(Workflow.id)
        )
        return (await self.session.scalars(locked(statement, Lock.UPDATE))).all()
