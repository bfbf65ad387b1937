"""An admin manages the users of their organization."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.conftest import (
    STRONG_PASSWORD,
    Account,
    CreateUser,
    Register,
    assert_problem,
    login,
    refresh,
    unique_email,
)

USERS = "/api/v1/users"


async def get_user(client: httpx.AsyncClient, admin: Account, user_id: str) -> dict[str, Any]:
    response = await client.get(f"{USERS}/{user_id}", headers=admin.auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def patch_user(
    client: httpx.AsyncClient, admin: Account, user_id: str, **change: Any
) -> httpx.Response:
    return await client.patch(f"{USERS}/{user_id}", json=change, headers=admin.auth)


async def test_create_user(client: httpx.AsyncClient, register: Register) -> None:
    admin = await register()
    email = unique_email("Tech")
    response = await client.post(
        USERS,
        json={"email": email, "password": STRONG_PASSWORD, "name": "Tess", "role": "technician"},
        headers=admin.auth,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["email"] == email.lower()
    assert created["role"] == "technician"
    assert created["status"] == "active"
    assert created["version"] == 1
    assert created["organization_id"] == admin.claims["org"]
    assert not {"password", "password_hash"} & set(created)
    assert await get_user(client, admin, created["id"]) == created
    assert (await login(client, email, STRONG_PASSWORD)).status_code == 200


async def test_list_pages_through_every_user_once(
    client: httpx.AsyncClient, register: Register, create_user: CreateUser
) -> None:
    admin = await register()
    members = [admin, await create_user(admin, "manager"), await create_user(admin, "technician")]
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 1}
        if cursor is not None:
            params["cursor"] = cursor
        response = await client.get(USERS, params=params, headers=admin.auth)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 1
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [member.user_id for member in members]  # oldest first, no duplicates

    whole = await client.get(USERS, headers=admin.auth)
    assert [item["id"] for item in whole.json()["items"]] == seen
    assert whole.json()["next_cursor"] is None
    assert_problem(await client.get(USERS, params={"limit": 0}, headers=admin.auth), 422)
    assert_problem(await client.get(USERS, params={"cursor": "!!"}, headers=admin.auth), 422)


async def test_patch_with_if_match_and_a_stale_version(
    client: httpx.AsyncClient, register: Register, create_user: CreateUser
) -> None:
    admin = await register()
    technician = await create_user(admin, "technician")
    changed = await client.patch(
        f"{USERS}/{technician.user_id}",
        json={"role": "manager", "name": "Manny"},
        headers={**admin.auth, "If-Match": '"1"'},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["role"] == "manager"
    assert changed.json()["name"] == "Manny"
    assert changed.json()["version"] == 2

    stale = await client.patch(
        f"{USERS}/{technician.user_id}",
        json={"role": "technician"},
        headers={**admin.auth, "If-Match": '"1"'},
    )
    assert assert_problem(stale, 409)["current_version"] == 2
    stale_body = await patch_user(client, admin, technician.user_id, role="admin", version=1)
    assert assert_problem(stale_body, 409)["current_version"] == 2
    assert (await get_user(client, admin, technician.user_id))["role"] == "manager"

    weak_etag = await client.patch(
        f"{USERS}/{technician.user_id}",
        json={"name": "Manuela"},
        headers={**admin.auth, "If-Match": 'W/"2"'},
    )
    assert weak_etag.status_code == 200, weak_etag.text
    assert weak_etag.json()["version"] == 3
    bad = await client.patch(
        f"{USERS}/{technician.user_id}",
        json={"name": "X"},
        headers={**admin.auth, "If-Match": "*"},
    )
    assert_problem(bad, 422)


async def test_disabling_a_user_ends_their_sessions_and_sign_in(
    client: httpx.AsyncClient, register: Register, create_user: CreateUser
) -> None:
    admin = await register()
    technician = await create_user(admin, "technician")
    disabled = await patch_user(client, admin, technician.user_id, status="disabled")
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["status"] == "disabled"

    assert_problem(await refresh(client, technician.refresh_token), 401)
    assert_problem(await login(client, technician.email, technician.password), 401)

    enabled = await patch_user(client, admin, technician.user_id, status="active")
    assert enabled.status_code == 200, enabled.text
    assert (await login(client, technician.email, technician.password)).status_code == 200
    # The sessions ended by disabling stay ended.
    assert_problem(await refresh(client, technician.refresh_token), 401)


async def test_delete_is_soft_and_final(
    client: httpx.AsyncClient, register: Register, create_user: CreateUser
) -> None:
    admin = await register()
    technician = await create_user(admin, "technician")
    stale = await client.delete(
        f"{USERS}/{technician.user_id}", headers={**admin.auth, "If-Match": '"7"'}
    )
    assert_problem(stale, 409)
    deleted = await client.delete(
        f"{USERS}/{technician.user_id}", headers={**admin.auth, "If-Match": '"1"'}
    )
    assert deleted.status_code == 204, deleted.text

    assert_problem(await client.get(f"{USERS}/{technician.user_id}", headers=admin.auth), 404)
    assert_problem(await patch_user(client, admin, technician.user_id, name="Ghost"), 404)
    assert_problem(await client.delete(f"{USERS}/{technician.user_id}", headers=admin.auth), 404)
    assert_problem(await login(client, technician.email, technician.password), 401)
    assert_problem(await refresh(client, technician.refresh_token), 401)
    listed = await client.get(USERS, headers=admin.auth)
    assert technician.user_id not in {item["id"] for item in listed.json()["items"]}
    # Soft: the email stays taken, so nobody can take over the deleted account's identity.
    again = await client.post(
        USERS,
        json={
            "email": technician.email,
            "password": STRONG_PASSWORD,
            "name": "New",
            "role": "technician",
        },
        headers=admin.auth,
    )
    assert_problem(again, 409)


async def test_the_last_active_admin_stays(
    client: httpx.AsyncClient, register: Register, create_user: CreateUser
) -> None:
    admin = await register()
    for change in ({"role": "manager"}, {"role": "technician"}, {"status": "disabled"}):
        assert_problem(await patch_user(client, admin, admin.user_id, **change), 409)
    assert_problem(await client.delete(f"{USERS}/{admin.user_id}", headers=admin.auth), 409)
    me = await get_user(client, admin, admin.user_id)
    assert (me["role"], me["status"], me["version"]) == ("admin", "active", 1)

    # A disabled admin does not count as a second one.
    dormant = await create_user(admin, "admin")
    disabled = await patch_user(client, admin, dormant.user_id, status="disabled")
    assert disabled.status_code == 200, disabled.text
    assert_problem(await patch_user(client, admin, admin.user_id, role="manager"), 409)

    second = await create_user(admin, "admin")
    demoted = await patch_user(client, second, admin.user_id, role="manager")
    assert demoted.status_code == 200, demoted.text
    assert demoted.json()["role"] == "manager"
    # Now `second` is the last active admin.
    assert_problem(await patch_user(client, second, second.user_id, status="disabled"), 409)
    assert_problem(await client.delete(f"{USERS}/{second.user_id}", headers=second.auth), 409)
    # With the first promoted back, the second may go.
    promoted = await patch_user(client, second, admin.user_id, role="admin")
    assert promoted.status_code == 200, promoted.text
    gone = await client.delete(f"{USERS}/{second.user_id}", headers=second.auth)
    assert gone.status_code == 204, gone.text


async def test_duplicate_email_is_a_conflict_whatever_its_case(
    client: httpx.AsyncClient, register: Register, create_user: CreateUser
) -> None:
    admin = await register()
    technician = await create_user(admin, "technician")
    for email in (technician.email, technician.email.upper(), admin.email.title()):
        response = await client.post(
            USERS,
            json={"email": email, "password": STRONG_PASSWORD, "name": "Dup", "role": "manager"},
            headers=admin.auth,
        )
        assert_problem(response, 409)
    signup = await client.post(
        "/api/v1/auth/register",
        json={
            "email": technician.email.upper(),
            "password": STRONG_PASSWORD,
            "name": "Dup",
            "organization_name": "Other",
        },
    )
    assert_problem(signup, 409)
    listed = await client.get(USERS, headers=admin.auth)
    assert len(listed.json()["items"]) == 2
