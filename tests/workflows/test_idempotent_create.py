"""Creating a workflow is idempotent per key, also under concurrency; templates are lazy."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from fieldsync.contracts import workflows as contract
from fieldsync.kit.db.engine import Database
from fieldsync.kit.errors import Conflict
from fieldsync.workflows.templates.service import DEFAULT_STEPS
from tests.workflows.support import Client, Org, rows


async def test_the_same_key_twice_answers_the_first_workflow(workflows: Client) -> None:
    org = Org()
    building = uuid.uuid4()
    key = contract.default_workflow_key(building)
    first = await workflows.create_reply(org.manager, building, key=key)
    again = await workflows.create_reply(org.admin, building, key=key, name="Ignored")

    assert first.created
    assert not again.created
    assert again.workflow == first.workflow
    assert [
        item.id for item in (await workflows.list(org.manager, building_id=building)).items
    ] == [first.workflow.id]
    # The key is per organization: another organization may use it too.
    other = await workflows.create_reply(Org().manager, building, key=key)
    assert other.created
    assert other.workflow.id != first.workflow.id


async def test_a_key_used_for_another_building_conflicts(workflows: Client) -> None:
    org = Org()
    await workflows.create(org.manager, uuid.uuid4(), key="shared")
    with pytest.raises(Conflict) as raised:
        await workflows.create(org.manager, uuid.uuid4(), key="shared")
    assert raised.value.extensions["idempotency_key"] == "shared"


async def test_the_key_of_a_deleted_workflow_is_not_reused(workflows: Client) -> None:
    org = Org()
    building = uuid.uuid4()
    workflow = await workflows.create(org.manager, building, key="once")
    await workflows.delete(org.manager, workflow)
    with pytest.raises(Conflict):
        await workflows.create(org.manager, building, key="once")
    assert (await workflows.list(org.manager, building_id=building)).items == []


async def test_concurrent_creates_with_one_key_make_one_workflow(
    workflows: Client, database: Database
) -> None:
    org = Org()
    building = uuid.uuid4()
    key = contract.default_workflow_key(building)
    replies = await asyncio.gather(
        *(workflows.create_reply(org.manager, building, key=key) for _ in range(20))
    )

    assert len({reply.workflow.id for reply in replies}) == 1
    assert sum(reply.created for reply in replies) == 1
    stored = await rows(
        database,
        "SELECT count(*) FROM workflows WHERE organization_id = :org AND idempotency_key = :key",
        org=org.id,
        key=key,
    )
    assert stored == [(1,)]
    steps = await workflows.steps(org.manager, replies[0].workflow.id)
    assert len(steps) == len(DEFAULT_STEPS)


async def test_an_organizations_default_template_is_created_once(
    workflows: Client, database: Database
) -> None:
    org = Org()
    assert await rows(
        database, "SELECT count(*) FROM workflow_templates WHERE organization_id = :org", org=org.id
    ) == [(0,)]

    # The organization's first workflows, all at once: they race to create its template.
    created = await asyncio.gather(*(workflows.create(org.manager) for _ in range(10)))

    templates = await rows(
        database,
        "SELECT name, is_default FROM workflow_templates WHERE organization_id = :org",
        org=org.id,
    )
    assert templates == [("Initial inspection", True)]
    for workflow in created:
        steps = await workflows.steps(org.manager, workflow.id)
        assert [(step.title, step.required) for step in steps] == list(DEFAULT_STEPS)
