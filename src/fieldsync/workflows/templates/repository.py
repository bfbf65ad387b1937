"""SQL for templates."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

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
