"""SQL for workflow steps."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from fieldsync.kit.db.repository import Repository, conflict_of
from fieldsync.kit.pagination import Page, PageRequest
from fieldsync.workflows.locking import Lock, locked
from fieldsync.workflows.steps.models import WorkflowStep


class StepRepository(Repository[WorkflowStep]):
    """Steps; callers find (and scope-check) the workflow first."""

    model = WorkflowStep

    async def add_all(self, steps: Sequence[WorkflowStep]) -> None:
        """Insert new steps in one flush, each with a fresh snowflake id."""
        for step in steps:
            step.id = self.ids.next_id()
        self.session.add_all(steps)
        await self.flush()

    async def insert_all(self, rows: Sequence[dict[str, Any]]) -> list[WorkflowStep]:
        """Insert new steps in one statement (each with a fresh snowflake id), in order.

        An ORM bulk INSERT ... RETURNING: the steps come back persistent, without the
        unit of work's per-object bookkeeping.
        """
        if not rows:
            return []
        statement = insert(WorkflowStep).returning(WorkflowStep, sort_by_parameter_order=True)
        try:
            result = await self.session.scalars(
                statement, [{**row, "id": self.ids.next_id()} for row in rows]
            )
        except IntegrityError as exc:
            raise conflict_of(exc) from None
        return list(result.all())

    async def workflow_id_of(
        self, public_id: uuid.UUID, *, include_deleted: bool = False
    ) -> int | None:
        """The workflow of a step, live unless `include_deleted` (unscoped: check the
        workflow next)."""
        statement = select(WorkflowStep.workflow_id).where(WorkflowStep.uuid == public_id)
        if not include_deleted:
            statement = statement.where(WorkflowStep.deleted_at.is_(None))
        workflow_id: int | None = await self.session.scalar(statement)
        return workflow_id

    async def find_in_workflow(
        self,
        workflow_id: int,
        public_id: uuid.UUID,
        *,
        lock: Lock = Lock.NONE,
        include_deleted: bool = False,
    ) -> WorkflowStep | None:
        """A step of this workflow (live unless `include_deleted`), or None."""
        statement = select(WorkflowStep) if include_deleted else self.select_live()
        statement = statement.where(
            WorkflowStep.workflow_id == workflow_id, WorkflowStep.uuid == public_id
        )
        found: WorkflowStep | None = await self.session.scalar(locked(statement, lock))
        return found

    async def of_workflow(self, workflow_id: int) -> Sequence[WorkflowStep]:
        """The workflow's live steps, in creation order."""
        statement = (
            self.select_live()
            .where(WorkflowStep.workflow_id == workflow_id)
            .order_by(WorkflowStep.id)
        )
        return (await self.session.scalars(statement)).all()

    async def incomplete_required(self, workflow_id: int) -> Sequence[WorkflowStep]:
        """Required live steps not done yet."""
        statement = (
            self.select_live()
            .where(
                WorkflowStep.workflow_id == workflow_id,
                WorkflowStep.required.is_(True),
                WorkflowStep.done.is_(False),
            )
            .order_by(WorkflowStep.position, WorkflowStep.id)
        )
        return (await self.session.scalars(statement)).all()

    async def count_and_last_position(self, workflow_id: int) -> tuple[int, int | None]:
        """How many live steps the workflow has, and the highest position among them."""
        row = (
            await self.session.execute(
                select(func.count(), func.max(WorkflowStep.position)).where(
                    WorkflowStep.workflow_id == workflow_id, WorkflowStep.deleted_at.is_(None)
                )
            )
        ).one()
        return int(row[0]), row[1]

    async def page_of_workflow(self, workflow_id: int, request: PageRequest) -> Page[WorkflowStep]:
        """A workflow's live steps, in creation order."""
        return await self.page(
            self.select_live().where(WorkflowStep.workflow_id == workflow_id), request
        )
