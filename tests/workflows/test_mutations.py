"""Pushed mutations of workflows (`workflows.apply`): create under the client's id, CAS
updates and deletes, rejections, and the ledger that applies each mutation once."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from fieldsync.contracts.changes import ChangeOp
from fieldsync.contracts.collections import WORKFLOW_STEPS, WORKFLOWS
from fieldsync.contracts.mutations import MutationResult, MutationStatus, RejectionCode
from fieldsync.contracts.workflows import MAX_BUILDING_SCOPE, WorkflowStatus
from fieldsync.kit.db.engine import Database
from fieldsync.kit.errors import NotFound, ValidationFailed
from fieldsync.kit.messaging import Bus
from fieldsync.kit.runtime import Runtime
from fieldsync.workflows.mutations.data import StepData, WorkflowData
from fieldsync.workflows.state import WorkflowsState
from fieldsync.workflows.templates.service import DEFAULT_STEPS, DEFAULT_TEMPLATE_NAME
from fieldsync.workflows.workflows.service import WorkflowService
from tests.workflows.support import (
    Client,
    Device,
    Org,
    applied,
    changes_of,
    conflict,
    rejected,
    rows,
)

FLOWS = WORKFLOWS.name
STEPS = WORKFLOW_STEPS.name


def test_the_data_models_accept_exactly_the_writable_wire_fields() -> None:
    assert set(WorkflowData.model_fields) == WORKFLOWS.writable
    assert set(StepData.model_fields) == WORKFLOW_STEPS.writable
    assert WORKFLOWS.apply_subject == WORKFLOW_STEPS.apply_subject == "workflows.apply"


# --- create -----------------------------------------------------------------------------


async def test_a_manager_creates_a_workflow_under_the_clients_id(
    workflows: Client, bus: Bus, database: Database
) -> None:
    org = Org()
    building, workflow_id, assignee = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    device = Device(bus, org.manager)

    result = await device.one(
        device.upsert(
            FLOWS,
            workflow_id,
            building_id=str(building),
            name="Roof check",
            assignee_id=str(assignee),
            due_date="2026-12-01",
            status="open",
        )
    )

    assert result == MutationResult(mutation_id=1, status=MutationStatus.APPLIED, version=1)
    created = await workflows.get(org.manager, workflow_id)
    assert (
        created.building_id,
        created.name,
        created.status,
        created.assignee_id,
        str(created.due_date),
        created.version,
    ) == (building, "Roof check", WorkflowStatus.OPEN, assignee, "2026-12-01", 1)
    # Like any new workflow, it starts with the default template's steps.
    steps = await workflows.steps(org.manager, workflow_id)
    assert [(step.title, step.required) for step in steps] == list(DEFAULT_STEPS)
    changes = await changes_of(database, org)
    assert [(change.collection, change.id, change.version) for change in changes] == [
        (FLOWS, workflow_id, 1),
        *((STEPS, step.id, 1) for step in steps),
    ]
    assert changes[0].data == created.model_dump(mode="json")


async def test_a_create_takes_defaults_and_ignores_server_fields(
    workflows: Client, bus: Bus
) -> None:
    org = Org()
    building, workflow_id = uuid.uuid4(), uuid.uuid4()
    device = Device(bus, org.admin)

    result = await device.one(
        device.upsert(
            FLOWS,
            workflow_id,
            building_id=str(building),
            id=str(uuid.uuid4()),
            version=7,
            updated_at="2020-01-01T00:00:00Z",
        )
    )

    applied(result, 1)
    created = await workflows.get(org.admin, workflow_id)
    assert (created.id, created.name, created.status, created.assignee_id, created.version) == (
        workflow_id,
        DEFAULT_TEMPLATE_NAME,
        WorkflowStatus.OPEN,
        None,
        1,
    )


async def test_invalid_creates_are_rejected_naming_the_field(workflows: Client, bus: Bus) -> None:
    org = Org()
    building = str(uuid.uuid4())
    device = Device(bus, org.manager)
    cases: list[tuple[dict[str, object], RejectionCode, str | None]] = [
        ({}, RejectionCode.VALIDATION, "building_id"),
        ({"building_id": "not-a-uuid"}, RejectionCode.VALIDATION, "building_id"),
        ({"building_id": None}, RejectionCode.VALIDATION, "building_id"),
        ({"building_id": building, "name": ""}, RejectionCode.VALIDATION, "name"),
        ({"building_id": building, "name": None}, RejectionCode.VALIDATION, "name"),
        ({"building_id": building, "name": "a\x00b"}, RejectionCode.VALIDATION, "name"),
        ({"building_id": building, "due_date": "tomorrow"}, RejectionCode.VALIDATION, "due_date"),
        ({"building_id": building, "color": "red"}, RejectionCode.VALIDATION, "color"),
        ({"building_id": building, "status": "weird"}, RejectionCode.VALIDATION, "status"),
        # A workflow starts open; anything else is a transition of its own.
        ({"building_id": building, "status": "done"}, RejectionCode.ILLEGAL_TRANSITION, None),
    ]
    ids = [uuid.uuid4() for _ in cases]

    results = await device.push(
        *(device.upsert(FLOWS, ids[n], **data) for n, (data, _, _) in enumerate(cases))
    )

    for result, (_, code, field) in zip(results, cases, strict=True):
        rejected(result, code, field)
    for workflow_id in ids:
        with pytest.raises(NotFound):
            await workflows.get(org.manager, workflow_id)


async def test_only_managers_create_and_only_in_their_scope(workflows: Client, bus: Bus) -> None:
    org = Org()
    building = uuid.uuid4()
    technician = Device(bus, org.technician, scope=[building])
    scoped_manager = Device(bus, org.manager, scope=[uuid.uuid4()])

    rejected(
        await technician.one(technician.upsert(FLOWS, uuid.uuid4(), building_id=str(building))),
        RejectionCode.FORBIDDEN,
    )
    rejected(
        await scoped_manager.one(
            scoped_manager.upsert(FLOWS, uuid.uuid4(), building_id=str(building))
        ),
        RejectionCode.NOT_FOUND,
    )
    assert (await workflows.list(org.manager, building_id=building)).items == []


async def test_an_id_in_use_is_a_conflict_only_for_those_who_may_see_it(
    workflows: Client, bus: Bus
) -> None:
    org, stranger_org = Org(), Org()
    building = uuid.uuid4()
    existing = await workflows.create(org.manager, building)
    device = Device(bus, org.manager)
    stranger = Device(bus, stranger_org.manager)
    out_of_scope = Device(bus, org.manager, scope=[uuid.uuid4()])
    again = {"building_id": str(building), "name": "Mine"}

    conflict(
        await device.one(device.upsert(FLOWS, existing.id, **again)),
        existing.model_dump(mode="json"),
        existing.version,
    )
    rejected(
        await stranger.one(stranger.upsert(FLOWS, existing.id, **again)), RejectionCode.NOT_FOUND
    )
    rejected(
        await out_of_scope.one(out_of_scope.upsert(FLOWS, existing.id, **again)),
        RejectionCode.NOT_FOUND,
    )

    deleted = await workflows.delete(org.manager, existing)
    conflict(await device.one(device.upsert(FLOWS, existing.id, **again)), None, deleted.version)
    with pytest.raises(NotFound):
        await workflows.get(org.manager, existing.id)


async def test_a_deleted_building_gets_no_new_workflow(
    workflows: Client, bus: Bus, workflows_runtime: Runtime
) -> None:
    org = Org()
    building = uuid.uuid4()
    state = WorkflowsState.of(workflows_runtime)
    async with state.transaction() as session:
        await WorkflowService(session, state.ids).retire_building(org.id, building)
    device = Device(bus, org.manager)

    result = await device.one(device.upsert(FLOWS, uuid.uuid4(), building_id=str(building)))

    rejected(result, RejectionCode.NOT_FOUND)
    assert (await workflows.list(org.manager, building_id=building)).items == []


async def test_two_devices_creating_one_id_at_once_make_one_workflow(
    workflows: Client, bus: Bus
) -> None:
    org = Org()
    workflow_id = uuid.uuid4()
    devices = [Device(bus, org.manager), Device(bus, org.admin)]

    results = await asyncio.gather(
        *(
            device.one(device.upsert(FLOWS, workflow_id, building_id=str(uuid.uuid4())))
            for device in devices
        )
    )

    winner = await workflows.get(org.manager, workflow_id)
    assert sorted(result.status for result in results) == [
        MutationStatus.APPLIED,
        MutationStatus.CONFLICT,
    ]
    (lost,) = [result for result in results if result.status is MutationStatus.CONFLICT]
    conflict(lost, winner.model_dump(mode="json"), 1)


async def test_a_client_id_equal_to_a_building_id_leaves_its_default_workflow_be(
    workflows: Client, bus: Bus, workflows_runtime: Runtime
) -> None:
    org = Org()
    building = uuid.uuid4()
    device = Device(bus, org.manager)
    applied(await device.one(device.upsert(FLOWS, building, building_id=str(building))), 1)

    state = WorkflowsState.of(workflows_runtime)
    async with state.transaction() as session:
        created = await WorkflowService(session, state.ids).ensure_default(org.id, building)

    assert created
    assert len((await workflows.list(org.manager, building_id=building)).items) == 2


# --- update -----------------------------------------------------------------------------


async def test_the_changes_of_one_mutation_make_one_version_and_one_change(
    workflows: Client, bus: Bus, database: Database
) -> None:
    org = Org()
    building, assignee = uuid.uuid4(), uuid.uuid4()
    workflow = await workflows.create(org.manager, building, assignee_id=assignee)
    before = len(await changes_of(database, org))
    device = Device(bus, org.manager)

    result = await device.one(
        device.upsert(
            FLOWS,
            workflow.id,
            1,
            name="Renamed",
            due_date="2027-01-31",
            assignee_id=None,
            status="in_progress",
        )
    )

    applied(result, 2)
    current = await workflows.get(org.manager, workflow.id)
    assert (current.name, str(current.due_date), current.assignee_id, current.status) == (
        "Renamed",
        "2027-01-31",
        None,
        WorkflowStatus.IN_PROGRESS,
    )
    changes = (await changes_of(database, org))[before:]
    assert [(change.id, change.op, change.version) for change in changes] == [
        (workflow.id, ChangeOp.UPSERT, 2)
    ]
    assert changes[0].data == current.model_dump(mode="json")

    # The same values again (the building included) change nothing: applied, no Change.
    unchanged = await device.one(
        device.upsert(
            FLOWS,
            workflow.id,
            2,
            building_id=str(building),
            name="Renamed",
            status="in_progress",
            assignee_id=None,
        )
    )
    applied(unchanged, 2)
    assert len(await changes_of(database, org)) == before + 1
    assert await workflows.get(org.manager, workflow.id) == current


async def test_stale_missing_and_deleted_workflows(workflows: Client, bus: Bus) -> None:
    org = Org()
    workflow = await workflows.create(org.manager, uuid.uuid4())
    elsewhere = await workflows.update(org.manager, workflow, name="Changed elsewhere")
    device = Device(bus, org.manager)

    stale, missing = await device.push(
        device.upsert(FLOWS, workflow.id, 1, name="Changed here"),
        device.upsert(FLOWS, uuid.uuid4(), 1, name="Nothing there"),
    )

    conflict(stale, elsewhere.model_dump(mode="json"), 2)
    rejected(missing, RejectionCode.NOT_FOUND)
    deleted = await workflows.delete(org.manager, elsewhere)
    conflict(
        await device.one(device.upsert(FLOWS, workflow.id, 2, name="Too late")),
        None,
        deleted.version,
    )


async def test_what_technicians_may_change(workflows: Client, bus: Bus) -> None:
    org = Org()
    building = uuid.uuid4()
    workflow = await workflows.create(org.manager, building)
    technician = Device(bus, org.technician, scope=[building])

    started, renamed, back, finished, moved = await technician.push(
        # The unchanged name is no change: a device may send the whole record.
        technician.upsert(FLOWS, workflow.id, 1, status="in_progress", name=workflow.name),
        technician.upsert(FLOWS, workflow.id, 2, name="Mine now"),
        technician.upsert(FLOWS, workflow.id, 2, status="open"),
        technician.upsert(FLOWS, workflow.id, 2, status="done"),
        technician.upsert(FLOWS, workflow.id, 2, building_id=str(uuid.uuid4())),
    )

    applied(started, 2)
    rejected(renamed, RejectionCode.FORBIDDEN)
    rejected(back, RejectionCode.ILLEGAL_TRANSITION)
    rejected(finished, RejectionCode.INVALID_STATE)  # required steps are not done
    rejected(moved, RejectionCode.VALIDATION, "building_id")

    for step in await workflows.steps(org.manager, workflow.id):
        await workflows.update_step(org.manager, step, done=True)
    done = await technician.one(technician.upsert(FLOWS, workflow.id, 2, status="done"))
    applied(done, 3)
    reopen = await technician.one(technician.upsert(FLOWS, workflow.id, 3, status="in_progress"))
    rejected(reopen, RejectionCode.FORBIDDEN)
    manager = Device(bus, org.manager)
    applied(await manager.one(manager.upsert(FLOWS, workflow.id, 3, status="in_progress")), 4)

    outside = Device(bus, org.technician, scope=[uuid.uuid4()])
    rejected(
        await outside.one(outside.upsert(FLOWS, workflow.id, 4, status="cancelled")),
        RejectionCode.NOT_FOUND,
    )
    assert (await workflows.get(org.manager, workflow.id)).version == 4


# --- delete -----------------------------------------------------------------------------


async def test_deletes_hold_once_the_workflow_is_gone(
    workflows: Client, bus: Bus, database: Database
) -> None:
    org = Org()
    workflow = await workflows.create(org.manager, uuid.uuid4())
    steps = await workflows.steps(org.manager, workflow.id)
    device = Device(bus, org.manager)
    technician = Device(bus, org.technician, scope=[workflow.building_id])
    before = len(await changes_of(database, org))

    rejected(
        await technician.one(technician.delete(FLOWS, workflow.id, 1)), RejectionCode.FORBIDDEN
    )
    stale, deleted, again, missing = await device.push(
        device.delete(FLOWS, workflow.id, 7),
        device.delete(FLOWS, workflow.id, 1),
        device.delete(FLOWS, workflow.id),
        device.delete(FLOWS, uuid.uuid4()),
    )

    conflict(stale, workflow.model_dump(mode="json"), 1)
    applied(deleted, 2)
    applied(again, 2)
    applied(missing, None)
    with pytest.raises(NotFound):
        await workflows.get(org.manager, workflow.id)
    changes = (await changes_of(database, org))[before:]
    assert [(change.id, change.op) for change in changes] == [
        (workflow.id, ChangeOp.DELETE),
        *((step.id, ChangeOp.DELETE) for step in steps),
    ]


# --- a push as a whole ------------------------------------------------------------------


async def test_a_replayed_push_answers_the_same_results_and_applies_nothing_again(
    workflows: Client, bus: Bus, database: Database
) -> None:
    org = Org()
    building, workflow_id, step_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    device = Device(bus, org.manager)
    request = device.request(
        device.upsert(FLOWS, workflow_id, building_id=str(building)),
        device.upsert(FLOWS, workflow_id, 1, name="Renamed", status="in_progress"),
        device.upsert(STEPS, step_id, workflow_id=str(workflow_id), title="Extra", done=True),
        device.upsert(FLOWS, workflow_id, 1, name="Stale"),
        device.upsert(FLOWS, workflow_id, 2, name=""),
        device.delete(FLOWS, uuid.uuid4()),
    )

    first = await device.send(request)
    stored = await workflows.get(org.manager, workflow_id)
    changes = await changes_of(database, org)
    replayed = await device.send(request)

    assert [result.status for result in first] == [
        MutationStatus.APPLIED,
        MutationStatus.APPLIED,
        MutationStatus.APPLIED,
        MutationStatus.CONFLICT,
        MutationStatus.REJECTED,
        MutationStatus.APPLIED,
    ]
    assert replayed == first
    assert await workflows.get(org.manager, workflow_id) == stored
    assert stored.version == 2
    assert await changes_of(database, org) == changes
    assert await rows(
        database,
        "SELECT mutation_id FROM applied_mutations WHERE user_id = :user AND client_id = :client"
        " ORDER BY mutation_id",
        user=org.manager.user_id,
        client=device.client_id,
    ) == [(n,) for n in range(1, 7)]

    # Another device of the same user names other mutations: its mutation 2 is new.
    other = Device(bus, org.manager)
    conflict(
        (await other.send(request.model_copy(update={"client_id": other.client_id})))[1],
        stored.model_dump(mode="json"),
        2,
    )


async def test_concurrent_identical_pushes_apply_once(
    workflows: Client, bus: Bus, database: Database
) -> None:
    org = Org()
    workflow_id = uuid.uuid4()
    device = Device(bus, org.manager)
    request = device.request(
        device.upsert(FLOWS, workflow_id, building_id=str(uuid.uuid4())),
        device.upsert(FLOWS, workflow_id, 1, name="Renamed"),
    )

    replies = await asyncio.gather(*(device.send(request) for _ in range(8)))

    for results in replies:
        assert results == replies[0]
    applied(replies[0][0], 1)
    applied(replies[0][1], 2)
    assert (await workflows.get(org.manager, workflow_id)).version == 2
    changes = await changes_of(database, org)
    assert [change.version for change in changes if change.id == workflow_id] == [1, 2]
    assert len(changes) == 2 + len(DEFAULT_STEPS)


async def test_a_rejection_in_a_batch_does_not_undo_the_others(workflows: Client, bus: Bus) -> None:
    org = Org()
    first, second = uuid.uuid4(), uuid.uuid4()
    device = Device(bus, org.manager)

    results = await device.push(
        device.upsert(FLOWS, first, building_id=str(uuid.uuid4())),
        device.upsert(FLOWS, first, 1, status="done"),
        device.upsert(FLOWS, first, 1, name="Kept"),
        device.upsert(FLOWS, second, building_id=str(uuid.uuid4()), color="red"),
        device.upsert(FLOWS, second, building_id=str(uuid.uuid4()), name="Second"),
        device.delete(FLOWS, first, 2),
    )

    applied(results[0], 1)
    rejected(results[1], RejectionCode.ILLEGAL_TRANSITION)
    applied(results[2], 2)
    rejected(results[3], RejectionCode.VALIDATION, "color")
    applied(results[4], 1)
    applied(results[5], 3)
    with pytest.raises(NotFound):
        await workflows.get(org.manager, first)
    assert (await workflows.get(org.manager, second)).name == "Second"


async def test_another_organizations_records_are_not_found_and_never_shown(
    workflows: Client, bus: Bus
) -> None:
    org, stranger_org = Org(), Org()
    workflow = await workflows.create(org.manager, uuid.uuid4())
    step = (await workflows.steps(org.manager, workflow.id))[0]
    stranger = Device(bus, stranger_org.admin)

    results = await stranger.push(
        stranger.upsert(FLOWS, workflow.id, 1, name="Taken over"),
        stranger.upsert(FLOWS, workflow.id, 7, name="Stale too"),
        stranger.upsert(FLOWS, workflow.id, building_id=str(workflow.building_id)),
        stranger.upsert(STEPS, step.id, 1, done=True),
        stranger.upsert(STEPS, step.id, workflow_id=str(workflow.id), title="Copy"),
        stranger.upsert(STEPS, uuid.uuid4(), workflow_id=str(workflow.id), title="Mine"),
        stranger.delete(FLOWS, workflow.id, 1),
        stranger.delete(STEPS, step.id),
    )

    for result in results[:6]:
        rejected(result, RejectionCode.NOT_FOUND)
    # A delete of what the caller cannot see holds like that of a missing record.
    applied(results[6], None)
    applied(results[7], None)
    assert await workflows.get(org.manager, workflow.id) == workflow
    assert await workflows.get_step(org.manager, step.id) == step


async def test_a_push_without_a_technicians_scope_is_refused_as_a_whole(
    workflows: Client, bus: Bus
) -> None:
    org = Org()
    workflow = await workflows.create(org.manager, uuid.uuid4())
    unscoped = Device(bus, org.technician)
    mutation = unscoped.upsert(FLOWS, workflow.id, 1, status="in_progress")

    with pytest.raises(ValidationFailed):
        await unscoped.push(mutation)

    unscoped.scope = [uuid.uuid4() for _ in range(MAX_BUILDING_SCOPE)] + [workflow.building_id]
    with pytest.raises(ValidationFailed):
        await unscoped.push(mutation)

    # Nothing was recorded: the same mutation with a scope is applied.
    unscoped.scope = [workflow.building_id]
    applied(await unscoped.one(mutation), 2)


async def test_an_unknown_collection_is_rejected(bus: Bus, workflows: Client) -> None:
    device = Device(bus, Org().manager)
    results = await device.push(
        device.upsert("buildings", uuid.uuid4(), name="Depot"),
        device.upsert("nonsense", uuid.uuid4()),
    )
    for result in results:
        rejected(result, RejectionCode.VALIDATION, "collection")
