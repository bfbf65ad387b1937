"""Workflows over NATS: CRUD, organization and building scoping, roles, validation, locking."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import pytest

from fieldsync.contracts import workflows as contract
from fieldsync.contracts.workflows import WorkflowStatus
from fieldsync.kit.errors import Conflict, Forbidden, NotFound, ValidationFailed
from fieldsync.workflows.templates.service import DEFAULT_STEPS, DEFAULT_TEMPLATE_NAME
from tests.workflows.support import Client, Org, body_of


async def test_create_get_list_update_delete(workflows: Client) -> None:
    org = Org()
    building = uuid.uuid4()

    created = await workflows.create_reply(org.manager, building, key="first")
    workflow = created.workflow
    assert created.created
    assert workflow.building_id == building
    assert workflow.name == DEFAULT_TEMPLATE_NAME
    assert workflow.status is WorkflowStatus.OPEN
    assert (workflow.assignee_id, workflow.due_date, workflow.version) == (None, None, 1)
    assert await workflows.get(org.manager, workflow.id) == workflow

    steps = await workflows.steps(org.manager, workflow.id)
    assert [(step.title, step.required) for step in steps] == list(DEFAULT_STEPS)
    assert [step.position for step in steps] == list(range(len(DEFAULT_STEPS)))
    assert {step.workflow_id for step in steps} == {workflow.id}
    assert not any(step.done for step in steps)

    assignee = uuid.uuid4()
    updated = await workflows.update(
        org.manager, workflow, name="Roof check", assignee_id=assignee, due_date=date(2031, 5, 1)
    )
    assert (updated.name, updated.assignee_id, updated.due_date) == (
        "Roof check",
        assignee,
        date(2031, 5, 1),
    )
    assert updated.version == 2
    assert updated.updated_at >= workflow.updated_at
    assert await workflows.get(org.admin, workflow.id) == updated

    other = await workflows.create(org.admin, uuid.uuid4(), name="Boiler service")
    listed = await workflows.list(org.manager)
    assert [item.id for item in listed.items] == [workflow.id, other.id]
    assert listed.next_cursor is None
    only_building = await workflows.list(org.manager, building_id=building)
    assert [item.id for item in only_building.items] == [workflow.id]

    deleted = await workflows.delete(org.manager, updated)
    assert deleted == contract.Deleted(id=workflow.id, version=3)
    with pytest.raises(NotFound):
        await workflows.get(org.manager, workflow.id)
    with pytest.raises(NotFound):
        await workflows.steps(org.manager, workflow.id)
    with pytest.raises(NotFound):
        await workflows.get_step(org.manager, steps[0].id)
    assert [item.id for item in (await workflows.list(org.manager)).items] == [other.id]


async def test_lists_are_cursor_paged(workflows: Client) -> None:
    org = Org()
    building = uuid.uuid4()
    created = [(await workflows.create(org.manager, building)).id for _ in range(5)]

    seen: list[uuid.UUID] = []
    cursor = None
    pages = 0
    while True:
        page = await workflows.list(org.manager, building_id=building, limit=2, cursor=cursor)
        pages += 1
        assert len(page.items) <= 2
        seen.extend(item.id for item in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == created
    assert pages == 3


async def test_another_organization_sees_nothing(workflows: Client) -> None:
    owner, stranger = Org(), Org()
    workflow = await workflows.create(owner.manager, uuid.uuid4())
    step = (await workflows.steps(owner.manager, workflow.id))[0]

    for who in (stranger.admin, stranger.manager):
        with pytest.raises(NotFound):
            await workflows.get(who, workflow.id)
        with pytest.raises(NotFound):
            await workflows.update(who, workflow, name="mine now")
        with pytest.raises(NotFound):
            await workflows.transition(who, workflow, WorkflowStatus.CANCELLED)
        with pytest.raises(NotFound):
            await workflows.delete(who, workflow)
        with pytest.raises(NotFound):
            await workflows.steps(who, workflow.id)
        with pytest.raises(NotFound):
            await workflows.get_step(who, step.id)
        with pytest.raises(NotFound):
            await workflows.update_step(who, step, done=True)
        with pytest.raises(NotFound):
            await workflows.add_step(who, workflow.id, "sneaky")
        with pytest.raises(NotFound):
            await workflows.delete_step(who, step)
        assert (await workflows.list(who)).items == []
        assert (await workflows.list(who, building_id=workflow.building_id)).items == []

    # Nothing changed for the owner.
    assert await workflows.get(owner.manager, workflow.id) == workflow
    assert await workflows.get_step(owner.manager, step.id) == step


async def test_technicians_see_only_their_buildings(workflows: Client) -> None:
    org = Org()
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    assigned = await workflows.create(org.manager, mine)
    elsewhere = await workflows.create(org.manager, theirs)
    step_elsewhere = (await workflows.steps(org.manager, elsewhere.id))[0]
    tech, scope = org.technician, [mine]

    assert await workflows.get(tech, assigned.id, scope=scope) == assigned
    listed = await workflows.list(tech, building_scope=scope)
    assert [item.id for item in listed.items] == [assigned.id]
    assert (await workflows.list(tech, building_scope=scope, building_id=theirs)).items == []
    assert (await workflows.list(tech, building_scope=[])).items == []

    with pytest.raises(NotFound):
        await workflows.get(tech, elsewhere.id, scope=scope)
    with pytest.raises(NotFound):
        await workflows.transition(tech, elsewhere, WorkflowStatus.IN_PROGRESS, scope=scope)
    with pytest.raises(NotFound):
        await workflows.steps(tech, elsewhere.id, scope=scope)
    with pytest.raises(NotFound):
        await workflows.get_step(tech, step_elsewhere.id, scope=scope)
    with pytest.raises(NotFound):
        await workflows.update_step(tech, step_elsewhere, done=True, scope=scope)

    # A manager given a scope is held to it as well.
    with pytest.raises(NotFound):
        await workflows.get(org.manager, elsewhere.id, scope=scope)
    with pytest.raises(NotFound):
        await workflows.create(org.manager, theirs, scope=scope)

    # In scope, a technician works the workflow: transitions and step outcomes.
    started = await workflows.transition(tech, assigned, WorkflowStatus.IN_PROGRESS, scope=scope)
    assert started.status is WorkflowStatus.IN_PROGRESS
    step = (await workflows.steps(tech, assigned.id, scope=scope))[0]
    done = await workflows.update_step(tech, step, done=True, value="ok", scope=scope)
    assert (done.done, done.value, done.completed_by) == (True, "ok", tech.user_id)
    assert await workflows.get(org.manager, elsewhere.id) == elsewhere


async def test_technicians_may_not_shape_workflows(workflows: Client) -> None:
    org = Org()
    building = uuid.uuid4()
    workflow = await workflows.create(org.manager, building)
    step = (await workflows.steps(org.manager, workflow.id))[0]
    tech, scope = org.technician, [building]

    with pytest.raises(Forbidden):
        await workflows.create(tech, building, scope=scope)
    with pytest.raises(Forbidden):
        await workflows.update(tech, workflow, name="renamed", scope=scope)
    with pytest.raises(Forbidden):
        await workflows.update(tech, workflow, assignee_id=tech.user_id, scope=scope)
    with pytest.raises(Forbidden):
        await workflows.delete(tech, workflow, scope=scope)
    with pytest.raises(Forbidden):
        await workflows.add_step(tech, workflow.id, "extra", scope=scope)
    with pytest.raises(Forbidden):
        await workflows.delete_step(tech, step, scope=scope)
    for change in ({"title": "easier"}, {"required": False}, {"position": 9}):
        with pytest.raises(Forbidden):
            await workflows.update_step(tech, step, scope=scope, **change)

    assert await workflows.get(org.manager, workflow.id) == workflow
    assert await workflows.get_step(org.manager, step.id) == step


async def test_a_technician_without_a_scope_is_refused(workflows: Client) -> None:
    org = Org()
    workflow = await workflows.create(org.manager, uuid.uuid4())
    with pytest.raises(ValidationFailed) as raised:
        await workflows.raw(contract.GET, body_of(org.technician, id=str(workflow.id)))
    assert [error["loc"] for error in raised.value.extensions["errors"]] == [
        ["body", "building_scope"]
    ]


TOO_LONG = "x" * 201


@pytest.mark.parametrize(
    ("subject", "fields", "location"),
    [
        (contract.CREATE, {"name": ""}, ["body", "name"]),
        (contract.CREATE, {"name": TOO_LONG}, ["body", "name"]),
        (contract.CREATE, {"name": "nul\x00"}, ["body", "name"]),
        (contract.CREATE, {"building_id": "not-a-uuid"}, ["body", "building_id"]),
        (contract.CREATE, {"idempotency_key": ""}, ["body", "idempotency_key"]),
        (contract.CREATE, {"due_date": "2031-02-30"}, ["body", "due_date"]),
        (contract.CREATE, {"status": "done"}, ["body", "status"]),
        (contract.LIST, {"limit": 0}, ["body", "limit"]),
        (contract.LIST, {"limit": 201}, ["body", "limit"]),
        (contract.LIST, {"cursor": "not-a-cursor"}, ["body", "cursor"]),
        (contract.UPDATE, {"version": 0}, ["body", "version"]),
        (contract.UPDATE, {"name": None}, ["body", "name"]),
        (contract.TRANSITION, {"status": "finished"}, ["body", "status"]),
        (contract.STEP_CREATE, {"title": ""}, ["body", "title"]),
        (contract.STEP_CREATE, {"position": -1}, ["body", "position"]),
        (contract.STEP_UPDATE, {"value": "v" * 4001}, ["body", "value"]),
        (contract.STEP_UPDATE, {"done": None}, ["body", "done"]),
        (contract.STEP_LIST, {"limit": 500}, ["body", "limit"]),
    ],
    ids=lambda value: str(value) if isinstance(value, str) else None,
)
async def test_invalid_fields_are_refused_with_their_path(
    workflows: Client, subject: str, fields: dict[str, Any], location: list[str]
) -> None:
    org = Org()
    workflow = await workflows.create(org.manager, uuid.uuid4())
    step = (await workflows.steps(org.manager, workflow.id))[0]
    valid: dict[str, dict[str, Any]] = {
        contract.CREATE: {"building_id": str(uuid.uuid4()), "idempotency_key": "k"},
        contract.LIST: {},
        contract.UPDATE: {"id": str(workflow.id), "version": 1},
        contract.TRANSITION: {"id": str(workflow.id), "version": 1, "status": "in_progress"},
        contract.STEP_CREATE: {"workflow_id": str(workflow.id), "title": "t"},
        contract.STEP_UPDATE: {"id": str(step.id), "version": 1},
        contract.STEP_LIST: {"workflow_id": str(workflow.id)},
    }
    with pytest.raises(ValidationFailed) as raised:
        await workflows.raw(subject, body_of(org.manager, **{**valid[subject], **fields}))
    assert location in [error["loc"] for error in raised.value.extensions["errors"]]
    # Nothing was written.
    assert await workflows.get(org.manager, workflow.id) == workflow
    assert await workflows.get_step(org.manager, step.id) == step


async def test_stale_writes_conflict_with_the_current_record(workflows: Client) -> None:
    org = Org()
    workflow = await workflows.create(org.manager, uuid.uuid4())
    current = await workflows.update(org.manager, workflow, name="Second")

    for stale_write in (
        workflows.update(org.manager, workflow, name="Lost update"),
        workflows.transition(org.manager, workflow, WorkflowStatus.IN_PROGRESS),
        workflows.delete(org.manager, workflow),
    ):
        with pytest.raises(Conflict) as raised:
            await stale_write
        assert raised.value.extensions["current_version"] == 2
        assert contract.Workflow.model_validate(raised.value.extensions["current"]) == current
    assert await workflows.get(org.manager, workflow.id) == current

    step = (await workflows.steps(org.manager, workflow.id))[0]
    step_now = await workflows.update_step(org.manager, step, value="first")
    for stale_step_write in (
        workflows.update_step(org.manager, step, value="lost"),
        workflows.delete_step(org.manager, step),
    ):
        with pytest.raises(Conflict) as raised:
            await stale_step_write
        assert raised.value.extensions["current_version"] == step_now.version
        assert contract.WorkflowStep.model_validate(raised.value.extensions["current"]) == step_now
    assert await workflows.get_step(org.manager, step.id) == step_now


async def test_updates_change_only_the_fields_given(workflows: Client) -> None:
    org = Org()
    assignee = uuid.uuid4()
    workflow = await workflows.create(
        org.manager, uuid.uuid4(), assignee_id=assignee, due_date=date(2030, 1, 2)
    )
    renamed = await workflows.update(org.manager, workflow, name="Renamed")
    assert (renamed.name, renamed.assignee_id, renamed.due_date) == (
        "Renamed",
        assignee,
        date(2030, 1, 2),
    )
    cleared = await workflows.update(org.manager, renamed, assignee_id=None)
    assert (cleared.name, cleared.assignee_id, cleared.due_date) == (
        "Renamed",
        None,
        date(2030, 1, 2),
    )
    # Nothing to change: no new version.
    unchanged = await workflows.update(org.manager, cleared, name="Renamed")
    assert unchanged == cleared
