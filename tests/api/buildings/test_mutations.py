"""Building mutations pushed over NATS (`api.buildings.apply`), as the sync service sends them.

The api runtime serves the handler on the test NATS; each test sends real requests
and checks the outcome through the HTTP API, the outbox and CHANGES.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from fieldsync.contracts.changes import Change, ChangeOp
from fieldsync.contracts.mutations import (
    AppliedMutations,
    Mutation,
    MutationResult,
    MutationStatus,
    RejectionCode,
)
from fieldsync.kit.errors import Unauthorized
from fieldsync.kit.messaging import Bus
from fieldsync.kit.runtime import Runtime
from tests.api.buildings.conftest import (
    OpenFeed,
    Push,
    apply_request,
    building_url,
    create_building,
    delete,
    get_building,
    listed_ids,
    outbox_changes,
    outbox_rows,
    payload_of,
    upsert,
)
from tests.api.buildings.test_default_workflow import workflows_of
from tests.api.buildings.test_validation import INVALID_CREATES
from tests.api.conftest import Account, CreateUser, Register
from tests.workflows.support import eventually

SUBJECT = "api.buildings.apply"
STATION = {
    "name": "Station",
    "address": "Platz 1",
    "city": "Bern",
    "country": "CH",
    "latitude": 46.948,
    "longitude": 7.4474,
    "floors": 2,
    "notes": "badge needed",
}


def wire(body: dict[str, Any]) -> dict[str, Any]:
    """A building as sync clients hold it: the HTTP body without created_at."""
    return {key: value for key, value in body.items() if key != "created_at"}


def is_applied(result: MutationResult, version: int | None) -> bool:
    return (result.status, result.version, result.record, result.error) == (
        MutationStatus.APPLIED,
        version,
        None,
        None,
    )


def is_rejected(result: MutationResult, code: RejectionCode, field: str | None = None) -> bool:
    error = result.error
    return (
        result.status == MutationStatus.REJECTED
        and (result.version, result.record) == (None, None)
        and error is not None
        and error.code == code
        and (field is None or error.field == field)
    )


async def stored(client: httpx.AsyncClient, account: Account, building_id: str) -> dict[str, Any]:
    return wire(await get_building(client, account, building_id))


async def test_a_manager_creates_updates_and_deletes_by_push(
    client: httpx.AsyncClient,
    register: Register,
    create_user: CreateUser,
    push: Push,
    runtime: Runtime,
    change_feed: OpenFeed,
) -> None:
    admin = await register()
    manager = await create_user(admin, "manager")
    organization = admin.claims["org"]
    feed = await change_feed(organization)
    building_id = str(uuid.uuid4())

    created, updated, deleted = await push(
        manager,
        upsert(1, building_id, STATION),
        upsert(2, building_id, {"floors": 3, "notes": None}, base_version=1),
        delete(3, building_id, base_version=2),
    )

    assert is_applied(created, 1)
    assert is_applied(updated, 2)
    assert is_applied(deleted, 3)
    response = await client.get(building_url(building_id), headers=admin.auth)
    assert response.status_code == 404
    changes = await feed.wait_for_count("buildings", 3)
    assert [(change.op, change.version) for change in changes] == [
        (ChangeOp.UPSERT, 1),
        (ChangeOp.UPSERT, 2),
        (ChangeOp.DELETE, 3),
    ]
    assert {change.id for change in changes} == {uuid.UUID(building_id)}
    first, second = (change.data or {} for change in changes[:2])
    assert {key: first[key] for key in STATION} == STATION
    assert (second["floors"], second["notes"], second["version"]) == (3, None, 2)
    assert changes[2].data is None
    assert len(await outbox_changes(runtime, organization)) == 3


async def test_an_admin_push_creates_what_http_reads(
    client: httpx.AsyncClient, register: Register, push: Push, runtime: Runtime
) -> None:
    admin = await register()
    building_id = str(uuid.uuid4())

    (result,) = await push(admin, upsert(1, building_id, {"name": "Only a name"}))

    assert is_applied(result, 1)
    body = await stored(client, admin, building_id)
    assert (body["name"], body["version"]) == ("Only a name", 1)
    (row,) = await outbox_rows(runtime, admin.claims["org"])
    assert Change.model_validate(payload_of(row)).data == body


async def test_buildings_are_read_only_to_technicians(
    client: httpx.AsyncClient,
    register: Register,
    create_user: CreateUser,
    push: Push,
    runtime: Runtime,
) -> None:
    admin = await register()
    technician = await create_user(admin, "technician")
    building = await create_building(client, admin, name="Assigned")
    assigned = await client.put(
        f"{building_url(building['id'])}/assignees/{technician.user_id}", headers=admin.auth
    )
    assert assigned.status_code == 204, assigned.text
    rows_before = len(await outbox_changes(runtime, admin.claims["org"]))

    results = await push(
        technician,
        upsert(1, uuid.uuid4(), {"name": "Mine now"}),
        upsert(2, building["id"], {"name": "Renamed"}, base_version=1),
        delete(3, building["id"], base_version=1),
        delete(4, uuid.uuid4()),
        building_scope=[uuid.UUID(building["id"])],
    )

    assert all(is_rejected(result, RejectionCode.FORBIDDEN) for result in results), results
    assert await stored(client, admin, building["id"]) == wire(
        {
            key: value
            for key, value in building.items()
            if key not in {"workflow_status", "workflow"}
        }
    )
    assert len(await outbox_changes(runtime, admin.claims["org"])) == rows_before


async def test_creating_with_an_id_in_use(
    client: httpx.AsyncClient, register: Register, push: Push
) -> None:
    admin = await register()
    other = await register()
    live = await create_building(client, admin, name="Live")
    gone = await create_building(client, admin, name="Gone")
    assert (await client.delete(building_url(gone["id"]), headers=admin.auth)).status_code == 204
    theirs = await create_building(client, other, name="Theirs")

    on_live, on_gone, on_theirs = await push(
        admin,
        upsert(1, live["id"], {"name": "Copy"}),
        upsert(2, gone["id"], {"name": "Reborn"}),
        upsert(3, theirs["id"], {"name": "Stolen"}),
    )

    # The current record, as the client would have received it from sync.
    assert on_live.status == MutationStatus.CONFLICT
    assert (on_live.version, on_live.error) == (1, None)
    assert on_live.record == await stored(client, admin, live["id"])
    # Deleted: nothing to show, only the version of its tombstone.
    assert (on_gone.status, on_gone.record, on_gone.version) == (MutationStatus.CONFLICT, None, 2)
    # Another organization's: indistinguishable from an id nobody uses.
    assert is_rejected(on_theirs, RejectionCode.NOT_FOUND)
    assert (await stored(client, other, theirs["id"]))["name"] == "Theirs"
    assert await listed_ids(client, admin) == [live["id"]]


async def test_updates_compare_and_set(
    client: httpx.AsyncClient, register: Register, push: Push, runtime: Runtime
) -> None:
    admin = await register()
    other = await register()
    organization = admin.claims["org"]
    building = await create_building(client, admin, **STATION)
    gone = await create_building(client, admin, name="Gone")
    assert (await client.delete(building_url(gone["id"]), headers=admin.auth)).status_code == 204
    theirs = await create_building(client, other, name="Theirs")
    rows_before = len(await outbox_changes(runtime, organization))

    fresh, stale, unchanged, on_gone, missing, foreign = await push(
        admin,
        upsert(1, building["id"], {"city": "Basel", "latitude": 47.5596}, base_version=1),
        upsert(2, building["id"], {"city": "Zug"}, base_version=1),
        # The values it already has: applied, but not a write.
        upsert(3, building["id"], {"city": "Basel", "floors": 2, "country": "CH"}, base_version=2),
        upsert(4, gone["id"], {"name": "Back"}, base_version=1),
        upsert(5, uuid.uuid4(), {"name": "Nowhere"}, base_version=1),
        upsert(6, theirs["id"], {"name": "Mine"}, base_version=1),
    )

    current = await stored(client, admin, building["id"])
    assert (current["city"], current["latitude"], current["version"]) == ("Basel", 47.5596, 2)
    assert (current["name"], current["floors"]) == ("Station", 2)  # untouched fields stay
    assert is_applied(fresh, 2)
    assert (stale.status, stale.version, stale.record) == (MutationStatus.CONFLICT, 2, current)
    assert is_applied(unchanged, 2)
    assert (on_gone.status, on_gone.version, on_gone.record) == (MutationStatus.CONFLICT, 2, None)
    assert is_rejected(missing, RejectionCode.NOT_FOUND)
    assert is_rejected(foreign, RejectionCode.NOT_FOUND)
    assert (await stored(client, other, theirs["id"]))["version"] == 1
    # One write, one change: the no-op and the refused ones recorded nothing.
    changes = await outbox_changes(runtime, organization)
    assert len(changes) == rows_before + 1
    # A conflict's record is what the change feed carries for that version.
    assert changes[-1]["data"] == stale.record


async def test_deletes_compare_and_set_and_hold_when_already_gone(
    client: httpx.AsyncClient, register: Register, push: Push, runtime: Runtime
) -> None:
    admin = await register()
    other = await register()
    organization = admin.claims["org"]
    kept = await create_building(client, admin, name="Kept")
    renamed = await client.patch(
        building_url(kept["id"]), json={"name": "Kept, renamed"}, headers=admin.auth
    )
    assert renamed.status_code == 200, renamed.text
    whatever = await create_building(client, admin, name="Any version")
    theirs = await create_building(client, other, name="Theirs")
    rows_before = len(await outbox_changes(runtime, organization))

    stale, unconditional, again, missing, foreign = await push(
        admin,
        delete(1, kept["id"], base_version=1),
        delete(2, whatever["id"]),
        delete(3, whatever["id"], base_version=1),
        delete(4, uuid.uuid4(), base_version=3),
        delete(5, theirs["id"]),
    )

    assert (stale.status, stale.version) == (MutationStatus.CONFLICT, 2)
    assert stale.record == await stored(client, admin, kept["id"])
    assert is_applied(unconditional, 2)
    assert is_applied(again, 2)  # already deleted: the client's wish holds, nothing written
    assert is_applied(missing, None)
    assert is_applied(foreign, None)  # says nothing, and touches nothing
    assert (await stored(client, other, theirs["id"]))["version"] == 1
    assert await listed_ids(client, admin) == [kept["id"]]
    assert len(await outbox_changes(runtime, organization)) == rows_before + 1


INVALID_UPDATES: list[tuple[dict[str, Any], str]] = [
    ({"name": None}, "name"),
    ({"name": ""}, "name"),
    ({"name": "n" * 201}, "name"),
    ({"country": "XX"}, "country"),
    ({"latitude": 91}, "latitude"),
    ({"longitude": -181}, "longitude"),
    ({"floors": 301}, "floors"),
    ({"floors": -1}, "floors"),
    ({"notes": "nul\x00"}, "notes"),
    ({"colour": "red"}, "colour"),
    ({"id": str(uuid.uuid4())}, "id"),
    ({"version": 4}, "version"),
    ({"updated_at": "2026-01-01T00:00:00Z"}, "updated_at"),
]


async def test_values_are_bounded_as_on_http(
    client: httpx.AsyncClient, register: Register, push: Push, runtime: Runtime
) -> None:
    admin = await register()
    building = await create_building(client, admin, name="Depot", city="Bonn")
    rows_before = len(await outbox_changes(runtime, admin.claims["org"]))
    creates = [
        upsert(number, uuid.uuid4(), data) for number, (data, _) in enumerate(INVALID_CREATES, 1)
    ]
    updates = [
        upsert(100 + number, building["id"], data, base_version=1)
        for number, (data, _) in enumerate(INVALID_UPDATES)
    ]

    results = await push(admin, *creates, *updates)

    fields = [field for _, field in (*INVALID_CREATES, *INVALID_UPDATES)]
    for result, field in zip(results, fields, strict=True):
        assert is_rejected(result, RejectionCode.VALIDATION, field), (field, result)
    assert await listed_ids(client, admin) == [building["id"]]
    assert (await stored(client, admin, building["id"]))["version"] == 1
    assert len(await outbox_changes(runtime, admin.claims["org"])) == rows_before


async def test_what_only_a_broken_sender_would_send_is_rejected(
    client: httpx.AsyncClient, register: Register, push: Push
) -> None:
    admin = await register()
    building_id = uuid.uuid4()
    wrong_collection = Mutation(
        mutation_id=1,
        collection="workflows",
        id=building_id,
        op=ChangeOp.UPSERT,
        data={"name": "A workflow?"},
    )

    results = await push(
        admin,
        wrong_collection,
        upsert(2, building_id, None),
        upsert(3, building_id, None, base_version=1),
    )

    assert is_rejected(results[0], RejectionCode.VALIDATION, "collection")
    assert is_rejected(results[1], RejectionCode.VALIDATION, "data")
    assert is_rejected(results[2], RejectionCode.VALIDATION, "data")
    assert await listed_ids(client, admin) == []


async def test_a_rejection_inside_a_batch_undoes_only_itself(
    client: httpx.AsyncClient, register: Register, push: Push, runtime: Runtime
) -> None:
    admin = await register()
    first, second, third = (str(uuid.uuid4()) for _ in range(3))

    results = await push(
        admin,
        upsert(1, first, {"name": "First"}),
        upsert(2, second, {"name": "Second", "floors": 301}),
        upsert(3, first, {"name": "First, renamed"}, base_version=1),
        upsert(4, first, {"name": "Lost"}, base_version=1),
        upsert(5, third, {"name": "Third"}),
    )

    assert [result.status for result in results] == [
        MutationStatus.APPLIED,
        MutationStatus.REJECTED,
        MutationStatus.APPLIED,
        MutationStatus.CONFLICT,
        MutationStatus.APPLIED,
    ]
    assert sorted(await listed_ids(client, admin)) == sorted([first, third])
    assert (await stored(client, admin, first))["name"] == "First, renamed"
    assert len(await outbox_changes(runtime, admin.claims["org"])) == 3


@pytest.mark.usefixtures("runtime")
async def test_a_caller_whose_organization_is_gone_fails_the_request(
    register: Register, bus: Bus
) -> None:
    admin = await register()
    request = apply_request(admin, [upsert(1, uuid.uuid4(), {"name": "Orphan"})])
    request.caller = request.caller.model_copy(update={"organization_id": uuid.uuid4()})

    with pytest.raises(Unauthorized):
        await bus.request(SUBJECT, request, AppliedMutations)


async def test_a_pushed_building_gets_its_default_workflow(
    client: httpx.AsyncClient,
    register: Register,
    push: Push,
    start_workflows: Callable[[], Awaitable[Runtime]],
) -> None:
    admin = await register()
    await start_workflows()
    building_id = str(uuid.uuid4())

    (result,) = await push(admin, upsert(1, building_id, {"name": "Offline depot"}))

    assert is_applied(result, 1)

    async def has_one_workflow() -> bool:
        return len(await workflows_of(client, admin.auth, building_id)) == 1

    await eventually(has_one_workflow, timeout=30)
