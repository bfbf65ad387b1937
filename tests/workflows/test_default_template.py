"""New workflows copy the organization's default template as it is in the database.

The create path guesses each organization's step count to draw ids before its one
insert; a template that changed since (here, edited in place) must still be copied
exactly, and an organization's template must not leak into another's workflows.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text

from fieldsync.kit.db.engine import Database
from fieldsync.workflows.templates.service import DEFAULT_STEPS
from tests.workflows.support import Client, Org, rows


async def execute(database: Database, sql: str, **params: Any) -> None:
    """Run a write against the workflows database and commit it."""
    async with database.engine.begin() as connection:
        await connection.execute(text(sql), params)


async def template_steps(database: Database, org: Org) -> list[tuple[str, bool]]:
    """The live steps of the organization's default template, in order."""
    found = await rows(
        database,
        "SELECT s.title, s.required FROM workflow_template_steps s"
        " JOIN workflow_templates t ON t.id = s.template_id"
        " WHERE t.organization_id = :org AND t.is_default AND s.deleted_at IS NULL"
        " ORDER BY s.position, s.id",
        org=org.id,
    )
    return [(str(title), bool(required)) for title, required in found]


async def test_an_edited_template_is_copied_as_it_is_now(
    workflows: Client, database: Database
) -> None:
    org, bystander = Org(), Org()
    first = await workflows.create(org.manager)
    await workflows.create(bystander.manager)
    assert await template_steps(database, org) == list(DEFAULT_STEPS)

    # Two more steps and one fewer: the count the create path last saw is now wrong.
    await execute(
        database,
        "UPDATE workflow_template_steps SET deleted_at = now() WHERE position = 3"
        " AND template_id = (SELECT id FROM workflow_templates WHERE organization_id = :org)",
        org=org.id,
    )
    for position, title in ((7, "Check the roof"), (8, "Sign off")):
        await execute(
            database,
            "INSERT INTO workflow_template_steps"
            " (id, uuid, template_id, position, title, required, version)"
            " SELECT :id, :uuid, id, :position, :title, true, 1 FROM workflow_templates"
            " WHERE organization_id = :org",
            id=uuid.uuid4().int >> 65,
            uuid=uuid.uuid4(),
            position=position,
            title=title,
            org=org.id,
        )
    edited = await template_steps(database, org)
    assert len(edited) == len(DEFAULT_STEPS) + 1

    second = await workflows.create(org.manager)
    third = await workflows.create(org.manager)
    untouched = await workflows.create(bystander.manager)

    assert [(s.title, s.required) for s in await workflows.steps(org.manager, first.id)] == list(
        DEFAULT_STEPS
    )
    for workflow in (second, third):
        steps = await workflows.steps(org.manager, workflow.id)
        assert [(step.title, step.required) for step in steps] == edited
        assert [step.position for step in steps] == sorted(step.position for step in steps)
    bystander_steps = await workflows.steps(bystander.manager, untouched.id)
    assert [(step.title, step.required) for step in bystander_steps] == list(DEFAULT_STEPS)


async def test_a_template_without_steps_gives_workflows_without_steps(
    workflows: Client, database: Database
) -> None:
    org = Org()
    await workflows.create(org.manager)
    await execute(
        database,
        "UPDATE workflow_template_steps SET deleted_at = now()"
        " WHERE template_id = (SELECT id FROM workflow_templates WHERE organization_id = :org)",
        org=org.id,
    )

    created = await workflows.create_reply(org.manager)

    assert created.created
    assert created.workflow.name == "Initial inspection"
    assert await workflows.steps(org.manager, created.workflow.id) == []
