"""Creating, reading, changing and deleting buildings; who may do which."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select

from fieldsync.api.buildings.models import Building
from fieldsync.kit.runtime import Runtime
from tests.api.buildings.conftest import (
    BUILDINGS,
    assignee_url,
    building_url,
    create_building,
    get_building,
    listed_ids,
)
from tests.api.conftest import CreateUser, Register, assert_problem

PUBLIC_FIELDS = {
    "id",
    "name",
    "address",
    "city",
    "country",
    "latitude",
    "longitude",
    "floors",
    "notes",
    "created_at",
    "updated_at",
    "version",
}


def timestamp(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_managers_and_admins_create_with_the_workflow_pending(
    client: httpx.AsyncClient, register: Register, create_user: CreateUser
) -> None:
    admin = await register()
    manager = await create_user(admin, "manager")
    fields = {
        "name": "Harbour Office",
        "address": "Am Kai 1",
        "city": "Hamburg",
        "country": "DE",
        "latitude": 53.54,
        "longitude": 9.98,
        "floors": 4,
        "notes": "Loading dock at the back",
    }
    response = await client.post(BUILDINGS, json=fields, headers=manager.auth)
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == PUBLIC_FIELDS | {"workflow", "workflow_status"}
    assert {key: created[key] for key in fields} == fields
    assert created["version"] == 1
    # No workflows service runs in this runtime: the workflow follows later.
    assert created["workflow"] is None
    assert created["workflow_status"] == "pending"
    assert created["created_at"] == created["updated_at"]
    uuid.UUID(created["id"])
    assert response.headers["Location"] == building_url(created["id"])

    located = await client.get(response.headers["Location"], headers=admin.auth)
    assert located.status_code == 200, located.text
    assert located.json() == {key: created[key] for key in PUBLIC_FIELDS}

    by_admin = await create_building(client, admin, name="Admin Annex")
    assert await listed_ids(client, admin) == [created["id"], by_admin["id"]]

    # Managers change and delete any building of the organization, not only their own.
    renamed = await client.patch(
        building_url(by_admin["id"]), json={"name": "Annex"}, headers=manager.auth
    )
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["name"], renamed.json()["version"]) == ("Annex", 2)
    removed = await client.delete(building_url(by_admin["id"]), headers=manager.auth)
    assert removed.status_code == 204, removed.text
    assert await listed_ids(client, manager) == [created["id"]]


async def test_technicians_cannot_create_change_or_delete(
    client: httpx.AsyncClient, register: Register, create_user: CreateUser
) -> None:
    admin = await register()
    technician = await create_user(admin, "technician")
    building = await create_building(client, admin, name="Plant", floors=1)
    assigned = await client.put(
        assignee_url(building["id"], technician.user_id), headers=admin.auth
    )
    assert assigned.status_code == 204, assigned.text
    # Assigned, so the technician can read it, yet writes stay refused.
    assert (await get_building(client, technician, building["id"]))["name"] == "Plant"

    url = building_url(building["id"])
    assert_problem(await client.post(BUILDINGS, json={"name": "X"}, headers=technician.auth), 403)
    assert_problem(await client.patch(url, json={"name": "Mine"}, headers=technician.auth), 403)
    assert_problem(
        await client.patch(url, json={"floors": 9}, headers={**technician.auth, "If-Match": '"1"'}),
        403,
    )
    assert_problem(await client.delete(url, headers=technician.auth), 403)
    assert_problem(
        await client.put(assignee_url(building["id"], admin.user_id), headers=technician.auth),
        403,
    )
    assert_problem(
        await client.delete(
            assignee_url(building["id"], technician.user_id), headers=technician.auth
        ),
        403,
    )
    after = await get_building(client, admin, building["id"])
    assert (after["name"], after["floors"], after["version"]) == ("Plant", 1, 1)
    assert await listed_ids(client, admin) == [building["id"]]
    assert await listed_ids(client, technician) == [building["id"]]


async def test_patch_is_based_on_a_version_from_if_match_or_the_body(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    building = await create_building(client, admin, name="Mill", city="Leeds", floors=3)
    url = building_url(building["id"])

    quoted = await client.patch(
        url, json={"name": "Old Mill"}, headers={**admin.auth, "If-Match": '"1"'}
    )
    assert quoted.status_code == 200, quoted.text
    assert (quoted.json()["name"], quoted.json()["version"]) == ("Old Mill", 2)
    assert timestamp(quoted.json()["updated_at"]) > timestamp(building["updated_at"])
    assert quoted.json()["created_at"] == building["created_at"]

    bare = await client.patch(url, json={"floors": 4}, headers={**admin.auth, "If-Match": "2"})
    assert bare.status_code == 200, bare.text
    assert (bare.json()["floors"], bare.json()["version"]) == (4, 3)

    in_body = await client.patch(url, json={"country": "GB", "version": 3}, headers=admin.auth)
    assert in_body.status_code == 200, in_body.text
    assert (in_body.json()["country"], in_body.json()["version"]) == ("GB", 4)
    current = in_body.json()

    # Stale: 409, and the problem carries the record as it is now.
    for stale in (
        client.patch(url, json={"name": "Lost"}, headers={**admin.auth, "If-Match": '"3"'}),
        client.patch(url, json={"name": "Lost"}, headers={**admin.auth, "If-Match": "1"}),
        client.patch(url, json={"name": "Lost", "version": 2}, headers=admin.auth),
    ):
        problem = assert_problem(await stale, 409)
        assert problem["current_version"] == 4
        assert problem["current"] == current
    assert await get_building(client, admin, building["id"]) == current

    # Without a version the change applies to whatever is current (last writer wins).
    blind = await client.patch(
        url, json={"notes": "roof leaks", "address": None}, headers=admin.auth
    )
    assert blind.status_code == 200, blind.text
    after = blind.json()
    assert (after["notes"], after["version"], after["name"]) == ("roof leaks", 5, "Old Mill")
    assert (after["city"], after["floors"], after["country"]) == ("Leeds", 4, "GB")
    assert await get_building(client, admin, building["id"]) == after

    assert_problem(
        await client.patch(url, json={"name": "X"}, headers={**admin.auth, "If-Match": "*"}), 422
    )


async def test_delete_is_soft_and_hides_the_building(
    client: httpx.AsyncClient, register: Register, create_user: CreateUser, runtime: Runtime
) -> None:
    admin = await register()
    technician = await create_user(admin, "technician")
    kept = await create_building(client, admin, name="Kept")
    doomed = await create_building(client, admin, name="Doomed")
    url = building_url(doomed["id"])
    for building in (kept, doomed):
        assigned = await client.put(
            assignee_url(building["id"], technician.user_id), headers=admin.auth
        )
        assert assigned.status_code == 204, assigned.text

    stale = await client.delete(url, headers={**admin.auth, "If-Match": '"2"'})
    assert assert_problem(stale, 409)["current_version"] == 1
    deleted = await client.delete(url, headers={**admin.auth, "If-Match": '"1"'})
    assert deleted.status_code == 204, deleted.text

    for account in (admin, technician):
        assert_problem(await client.get(url, headers=account.auth), 404)
        assert await listed_ids(client, account) == [kept["id"]]
    assert_problem(await client.patch(url, json={"name": "Back"}, headers=admin.auth), 404)
    assert_problem(await client.delete(url, headers=admin.auth), 404)
    assert_problem(await client.get(f"{url}/assignees", headers=admin.auth), 404)
    assert_problem(
        await client.put(assignee_url(doomed["id"], admin.user_id), headers=admin.auth), 404
    )

    # Soft: the row stays, marked deleted, its version bumped like any write.
    async with runtime.databases["api"].sessions() as session:
        row = await session.scalar(select(Building).where(Building.uuid == uuid.UUID(doomed["id"])))
        assert row is not None
        assert row.deleted_at is not None
        assert (row.name, row.version) == ("Doomed", 2)


async def test_other_organizations_buildings_do_not_exist_for_you(
    client: httpx.AsyncClient, register: Register, create_user: CreateUser
) -> None:
    owner = await register()
    member = await create_user(owner, "technician")
    building = await create_building(client, owner, name="Private", floors=2)
    assigned = await client.put(assignee_url(building["id"], member.user_id), headers=owner.auth)
    assert assigned.status_code == 204, assigned.text

    stranger = await register()
    stranger_tech = await create_user(stranger, "technician")
    url = building_url(building["id"])
    missing = building_url(str(uuid.uuid4()))
    for target in (url, missing):
        assert_problem(await client.get(target, headers=stranger.auth), 404)
        assert_problem(await client.get(target, headers=stranger_tech.auth), 404)
        assert_problem(
            await client.patch(target, json={"name": "Taken"}, headers=stranger.auth), 404
        )
        assert_problem(
            await client.patch(
                target, json={"name": "Taken"}, headers={**stranger.auth, "If-Match": '"1"'}
            ),
            404,
        )
        assert_problem(await client.delete(target, headers=stranger.auth), 404)
        assert_problem(await client.get(f"{target}/assignees", headers=stranger.auth), 404)
    for user_id in (stranger_tech.user_id, member.user_id):
        assert_problem(
            await client.put(assignee_url(building["id"], user_id), headers=stranger.auth), 404
        )
        assert_problem(
            await client.delete(assignee_url(building["id"], user_id), headers=stranger.auth), 404
        )
    assert await listed_ids(client, stranger) == []
    assert await listed_ids(client, stranger_tech) == []

    untouched: dict[str, Any] = await get_building(client, owner, building["id"])
    assert (untouched["name"], untouched["version"]) == ("Private", 1)
    assignees = await client.get(f"{url}/assignees", headers=owner.auth)
    assert [item["id"] for item in assignees.json()["items"]] == [member.user_id]


async def test_requests_without_a_valid_token_are_401(client: httpx.AsyncClient) -> None:
    some_id = str(uuid.uuid4())
    for method, path in (
        ("GET", BUILDINGS),
        ("POST", BUILDINGS),
        ("GET", building_url(some_id)),
        ("PATCH", building_url(some_id)),
        ("DELETE", building_url(some_id)),
        ("GET", f"{building_url(some_id)}/assignees"),
        ("PUT", assignee_url(some_id, some_id)),
    ):
        response = await client.request(method, path, json={"name": "x"})
        assert_problem(response, 401)
        forged = await client.request(
            method, path, json={"name": "x"}, headers={"Authorization": "Bearer not.a.token"}
        )
        assert_problem(forged, 401)
