"""The default template every organization starts with, created on its first use."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from fieldsync.kit.errors import Conflict
from fieldsync.kit.ids import SnowflakeGenerator
from fieldsync.workflows.templates.models import WorkflowTemplate, WorkflowTemplateStep
from fieldsync.workflows.templates.repository import (
    TemplateRepository,
    TemplateStepRepository,
    insert_default,
)

DEFAULT_TEMPLATE_NAME = "Initial inspection"
# (title, required)
DEFAULT_STEPS: tuple[tuple[str, bool], ...] = (
    ("Check site access and safety", True),
    ("Inspect the structure and exterior", True),
    ("Inspect utilities: electrical, water, heating", True),
    ("Photograph defects", False),
    ("Record findings and recommendations", True),
)


@dataclass(frozen=True)
class Template:
    """A template and its steps, in order."""

    template: WorkflowTemplate
    steps: Sequence[WorkflowTemplateStep]


async def default_template(
    *, session: AsyncSession, ids: SnowflakeGenerator, organization_id: uuid.UUID
) -> Template:
    """The organization's default template, created with its steps on first use."""
    templates = TemplateRepository(session, ids)
    steps = TemplateStepRepository(session, ids)
    found = await templates.get_default_with_steps(organization_id)
    if found is not None:
        return Template(template=found[0], steps=found[1])
    try:
        async with session.begin_nested():
            template = await _create_default(templates, steps, organization_id)
    except Conflict:
        # Another transaction created it first (the unique default index): use theirs.
        found = await templates.get_default_with_steps(organization_id)
        if found is None:
            raise
        return Template(template=found[0], steps=found[1])
    return Template(template=template, steps=await steps.of_template(template.id))


async def _create_default(
    templates: TemplateRepository, steps: TemplateStepRepository, organization_id: uuid.UUID
) -> WorkflowTemplate:
    template = await templates.add(
        WorkflowTemplate(
            organization_id=organization_id,
            name=DEFAULT_TEMPLATE_NAME,
            is_default=True,
            deleted_at=None,
            version=1,
        )
    )
    for position, (title, required) in enumerate(DEFAULT_STEPS):
        await steps.add(
            WorkflowTemplateStep(
                template_id=template.id,
                position=position,
                title=title,
                required=required,
                deleted_at=None,
                version=1,
            )
        )
    return template


async def ensure_default_template(
    connection: asyncpg.Connection, ids: SnowflakeGenerator, organization_id: uuid.UUID
) -> None:
    """Create the organization's default template on a raw connection unless it has one."""
    await insert_default(
        connection, ids, organization_id, name=DEFAULT_TEMPLATE_NAME, steps=DEFAULT_STEPS
    )


class StepCounts:
    """How many steps each organization's default template had when last used.

    Only a guess, used to draw that many step ids before the insert: the insert checks
    it against the template it reads, writes nothing when it is wrong and reports the
    right count, so a stale guess (an edited template, another process) costs one retry
    and never a wrong workflow. Bounded: past `limit` organizations it starts over.
    """

    def __init__(self, limit: int = 10_000) -> None:
        self._limit = limit
        self._counts: dict[uuid.UUID, int] = {}

    def guess(self, organization_id: uuid.UUID) -> int:
        """The last count seen for the organization, else the built-in template's."""
        return self._counts.get(organization_id, len(DEFAULT_STEPS))

    def remember(self, organization_id: uuid.UUID, count: int) -> None:
        """Record the count the organization's default template has now."""
        if len(self._counts) >= self._limit:
            self._counts.clear()
        self._counts[organization_id] = count
