"""Assigning users to buildings, and what an assignment lets a technician see."""

from __future__ import annotations

import uuid

import httpx

from tests.api.buildings.conftest import (
    assignee_url,
    building_url,
    create_building,
    get_building,
    listed_ids,
    walk,
)
from tests.api.conftest import Account, CreateUser, Register, assert_problem


async def assignee_ids(
    client: httpx.AsyncClient, account: Account, building_id: str, **params: int
) -> list[str]:
    items = await walk(client, account, f"{building_url(building_id)}/assignees", **params)
    return [item["id"] for item in items]


async def test_a_technician_sees_only_the_buildings_assigned_to_them(
    client: httpx.AsyncClient, register: Register, create_user: CreateUser
) -> None:
    admin = await register()
    manager = await create_user(admin, "manager")
    technician = await create_user(admin, "technician")
    colleague = await create_user(admin, "technician")
    school = await create_building(client, admin, name="School")
    depot = await create_building(client, admin, name="Depot")
    school_url, depot_url = building_url(school["id"]), building_url(depot["id"])

    assert await listed_ids(client, technician) == []
    assert_problem(await client.get(school_url, headers=technician.auth), 404)

    for _ in range(2):  # idempotent
        assigned = await client.put(
            assignee_url(school["id"], technician.user_id), headers=manager.auth
        )
        assert assigned.status_code == 204, assigned.text
        assert assigned.content == b""
    assert await assignee_ids(client, manager, school["id"]) == [technician.user_id]
    assert await assignee_ids(client, manager, depot["id"]) == []

    assert await listed_ids(client, technician) == [school["id"]]
    assert await listed_ids(client, technician, q="school", sort="-name") == [school["id"]]
    assert await listed_ids(client, technician, q="depot") == []
    assert (await get_building(client, technician, school["id"]))["name"] == "School"
    assert await assignee_ids(client, technician, school["id"]) == [technician.user_id]
    assert_problem(await client.get(depot_url, headers=technician.auth), 404)
    assert_problem(await client.get(f"{depot_url}/assignees", headers=technician.auth), 404)
    # Another technician's assignment does not show the building to everyone.
    assert await listed_ids(client, colleague) == []
    assert_problem(await client.get(school_url, headers=colleague.auth), 404)
    # Managers and admins see all of the organization's buildings.
    for account in (admin, manager):
        assert await listed_ids(client, account) == [school["id"], depot["id"]]

    removed = await client.delete(
        assignee_url(school["id"], technician.user_id), headers=manager.auth
    )
    assert removed.status_code == 204, removed.text
    again = await client.delete(assignee_url(school["id"], technician.user_id), headers=admin.auth)
    assert_problem(again, 404)
    assert await listed_ids(client, technician) == []
    assert_problem(await client.get(school_url, headers=technician.auth), 404)
    assert await assignee_ids(client, admin, school["id"]) == []

    # Assigning again after an unassignment restores access.
    back = await client.put(assignee_url(school["id"], technician.user_id), headers=admin.auth)
    assert back.status_code == 204, back.text
    assert await listed_ids(client, technician) == [school["id"]]
    assert await assignee_ids(client, admin, school["id"]) == [technician.user_id]


async def test_assignees_are_paged_and_any_member_can_be_assigned(
    client: httpx.AsyncClient, register: Register, create_user: CreateUser
) -> None:
    admin = await register()
    manager = await create_user(admin, "manager")
    technician = await create_user(admin, "technician")
    building = await create_building(client, admin)
    members = [admin, manager, technician]
    for member in members:
        response = await client.put(
            assignee_url(building["id"], member.user_id), headers=admin.auth
        )
        assert response.status_code == 204, response.text

    page = await client.get(f"{building_url(building['id'])}/assignees", headers=admin.auth)
    assert page.status_code == 200, page.text
    items = page.json()["items"]
    assert [item["id"] for item in items] == [member.user_id for member in members]
    assert {item["email"] for item in items} == {member.email for member in members}
    assert [item["role"] for item in items] == ["admin", "manager", "technician"]
    assert set(items[0]) == {"id", "name", "email", "role"}

    for limit in (1, 2, 3):
        paged = await assignee_ids(client, admin, building["id"], limit=limit)
        assert paged == [member.user_id for member in members], limit

    url = f"{building_url(building['id'])}/assignees"
    for params in ({"limit": 0}, {"limit": 201}, {"cursor": "!!"}):
        assert_problem(await client.get(url, params=params, headers=admin.auth), 422)

    # A deleted user drops out of the list.
    gone = await client.delete(f"/api/v1/users/{manager.user_id}", headers=admin.auth)
    assert gone.status_code == 204, gone.text
    assert await assignee_ids(client, admin, building["id"]) == [admin.user_id, technician.user_id]


async def test_only_active_users_of_your_organization_can_be_assigned(
    client: httpx.AsyncClient, register: Register, create_user: CreateUser
) -> None:
    admin = await register()
    building = await create_building(client, admin)
    other = await register()
    outsider = await create_user(other, "technician")

    for user_id in (outsider.user_id, other.user_id, str(uuid.uuid4())):
        assert_problem(
            await client.put(assignee_url(building["id"], user_id), headers=admin.auth), 404
        )
        assert_problem(
            await client.delete(assignee_url(building["id"], user_id), headers=admin.auth), 404
        )
    assert await assignee_ids(client, admin, building["id"]) == []
    assert await listed_ids(client, outsider) == []

    disabled = await create_user(admin, "technician")
    changed = await client.patch(
        f"/api/v1/users/{disabled.user_id}", json={"status": "disabled"}, headers=admin.auth
    )
    assert changed.status_code == 200, changed.text
    assert_problem(
        await client.put(assignee_url(building["id"], disabled.user_id), headers=admin.auth), 404
    )
    # Never assigned: unassigning is a 404 too.
    member = await create_user(admin, "technician")
    assert_problem(
        await client.delete(assignee_url(building["id"], member.user_id), headers=admin.auth), 404
    )
    assert await assignee_ids(client, admin, building["id"]) == []
    assert_problem(
        await client.put(assignee_url(str(uuid.uuid4()), member.user_id), headers=admin.auth), 404
    )
