"""SQL for templates."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg
from sqlalchemy import select

from fieldsync.kit.db.repository import Repository
from fieldsync.kit.ids import SnowflakeGenerator, new_public_id
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


# An organization's default template and its steps, in one statement, unless it has one
# already (the unique default index; a concurrent first use waits here, then inserts
# nothing). On a raw asyncpg connection, in the caller's transaction.
_INSERT_DEFAULT = """
WITH template AS (
    INSERT INTO workflow_templates (id, uuid, organization_id, name, is_default, deleted_at,
                                    version)
    VALUES ($1, $2, $3, $4, true, NULL, 1)
    ON CONFLICT (organization_id) WHERE is_default DO NOTHING
    RETURNING id
)
INSERT INTO workflow_template_steps (id, uuid, template_id, position, title, required,
                                     deleted_at, version)
SELECT s.id, s.uuid, t.id, s.position, s.title, s.required, NULL, 1
FROM template t,
     unnest($5::bigint[], $6::uuid[], $7::int[], $8::text[], $9::bool[])
       AS s(id, uuid, position, title, required)
"""


async def insert_default(
    connection: asyncpg.Connection,
    ids: SnowflakeGenerator,
    organization_id: uuid.UUID,
    *,
    name: str,
    steps: Sequence[tuple[str, bool]],
) -> None:
    """Give the organization a default template with these (title, required) steps,
    unless it has one."""
    await connection.execute(
        _INSERT_DEFAULT,
        ids.next_id(),
        new_public_id(),
        organization_id,
        name,
        [ids.next_id() for _ in steps],
        [new_public_id() for _ in steps],
        list(range(len(steps))),
        [title for title, _ in steps],
        [required for _, required in steps],
    )
