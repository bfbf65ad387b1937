"""SQL for templates."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select

from fieldsync.kit.db.repository import Repository
from fieldsync.workflows.templates.models import WorkflowTemplate, WorkflowTemplateStep


class TemplateRepository(Repository[WorkflowTemplate]):
    """Templates of one organization."""

    model = WorkflowTemplate

    async def get_default(self, organization_id: uuid.UUID) -> WorkflowTemplate | None:
        """The organization's default template, or None before its first use."""
        found: WorkflowTemplate | None = await self.session.scalar(
            self.select_live().where(
                WorkflowTemplate.organization_id == organization_id,
                WorkflowTemplate.is_default.is_(True),
            )
        )
        return found

    async def get_default_with_steps(
        self, organization_id: uuid.UUID
    ) -> tuple[WorkflowTemplate, list[WorkflowTemplateStep]] | None:
        """The organization's default template and its live steps in order, in one query."""
        statement = (
            select(WorkflowTemplate, WorkflowTemplateStep)
            .outerjoin(
                WorkflowTemplateStep,
                (WorkflowTemplateStep.template_id == WorkflowTemplate.id)
                & WorkflowTemplateStep.deleted_at.is_(None),
            )
            .where(
                WorkflowTemplate.organization_id == organization_id,
                WorkflowTemplate.is_default.is_(True),
                WorkflowTemplate.deleted_at.is_(None),
            )
            .order_by(WorkflowTemplateStep.position, WorkflowTemplateStep.id)
        )
        rows = (await self.session.execute(statement)).all()
        if not rows:
            return None
        return rows[0][0], [step for _, step in rows if step is not None]


class TemplateStepRepository(Repository[WorkflowTemplateStep]):
    """Steps of templates."""

    model = WorkflowTemplateStep

    async def of_template(self, template_id: int) -> Sequence[WorkflowTemplateStep]:
        """The template's live steps in order."""
        statement = (
            self.select_live()
            .where(WorkflowTemplateStep.template_id == template_id)
            .order_by(WorkflowTemplateStep.position, WorkflowTemplateStep.id)
        )
        return (await self.session.scalars(statement)).all()
