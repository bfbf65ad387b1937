"""Organizations cannot see each other, roles are enforced, and extra fields are refused."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.api.conftest import (
    STRONG_PASSWORD,
    Account,
    CreateUser,
    Register,
    assert_problem,
    login,
    unique_email,
)

USERS = "/api/v1/users"


async def snapshot(client: httpx.AsyncClient, admin: Account) -> list[dict[str, Any]]:
    response = await client.get(USERS, headers=admin.auth)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_another_organizations_users_are_not_found(
    client: httpx.AsyncClient, register: Register, create_user: CreateUser
) -> None:
    admin_a = await register()
    admin_b = await register()
    manager_b = await create_user(admin_b, "manager")
    before = await snapshot(client, admin_b)
    unknown = assert_problem(await client.get(f"{USERS}/{uuid.uuid4()}", headers=admin_a.auth), 404)

    for target in (admin_b, manager_b):
        path = f"{USERS}/{target.user_id}"
        got = assert_problem(await client.get(path, headers=admin_a.auth), 404)
        # Exactly what an id that exists nowhere answers: no existence oracle.
        assert (got["type"], got["detail"]) == (unknown["type"], unknown["detail"])
        for headers in (admin_a.auth, {**admin_a.auth, "If-Match": '"1"'}):
            patched = await client.patch(
                path, json={"role": "technician", "status": "disabled"}, headers=headers
            )
            assert_problem(patched, 404)
            assert_problem(await client.delete(path, headers=headers), 404)

    assert await snapshot(client, admin_b) == before
    assert (await login(client, manager_b.email, manager_b.password)).status_code == 200
    own = await snapshot(client, admin_a)
    assert [item["id"] for item in own] == [admin_a.user_id]


ADMIN_ENDPOINTS = [
    ("GET", USERS, None),
    ("POST", USERS, "create"),
    ("GET", USERS + "/{id}", None),
    ("PATCH", USERS + "/{id}", {"name": "Renamed"}),
    ("DELETE", USERS + "/{id}", None),
    ("GET", "/api/v1/audit", None),
]


@pytest.mark.parametrize("role", ["technician", "manager"])
async def test_non_admins_are_forbidden_the_admin_endpoints(
    client: httpx.AsyncClient, register: Register, create_user: CreateUser, role: str
) -> None:
    admin = await register()
    caller = await create_user(admin, role)
    colleague = await create_user(admin, "technician")
    before = await snapshot(client, admin)
    for method, template, body in ADMIN_ENDPOINTS:
        for target in (colleague, caller):
            json: Any = body
            if body == "create":
                json = {
                    "email": unique_email(),
                    "password": STRONG_PASSWORD,
                    "name": "Sneaky",
                    "role": "admin",
                }
            path = template.format(id=target.user_id)
            response = await client.request(method, path, json=json, headers=caller.auth)
            problem = assert_problem(response, 403)
            assert problem["type"] == "urn:fieldsync:problem:forbidden", (method, path)
    assert await snapshot(client, admin) == before


async def test_a_technician_cannot_change_their_own_role(
    client: httpx.AsyncClient, register: Register, create_user: CreateUser
) -> None:
    admin = await register()
    technician = await create_user(admin, "technician")
    for change in ({"role": "admin"}, {"role": "admin", "version": 1}):
        response = await client.patch(
            f"{USERS}/{technician.user_id}", json=change, headers=technician.auth
        )
        assert_problem(response, 403)
    me = await client.get(f"{USERS}/me", headers=technician.auth)
    assert me.json()["role"] == "technician"
    assert me.json()["version"] == 1


@pytest.mark.parametrize(
    "extra",
    [
        {"role": "technician"},
        {"organization_id": str(uuid.uuid4())},
        {"id": str(uuid.uuid4())},
        {"version": 9},
        {"status": "disabled"},
    ],
    ids=lambda extra: next(iter(extra)),
)
async def test_register_refuses_extra_fields(
    client: httpx.AsyncClient, extra: dict[str, Any]
) -> None:
    email = unique_email()
    body = {
        "email": email,
        "password": STRONG_PASSWORD,
        "name": "Eve",
        "organization_name": "Evil",
        **extra,
    }
    response = await client.post("/api/v1/auth/register", json=body)
    errors = assert_problem(response, 422)["errors"]
    assert [error["loc"] for error in errors] == [["body", next(iter(extra))]]
    assert_problem(await login(client, email, STRONG_PASSWORD), 401)  # nothing was created


ME_EXTRAS: list[dict[str, Any]] = [
    {"role": "admin"},
    {"organization_id": str(uuid.uuid4())},
    {"id": str(uuid.uuid4())},
    {"version": 9},
    {"status": "disabled"},
    {"email": "new@example.com"},
]


async def test_patch_me_refuses_extra_fields(
    client: httpx.AsyncClient, register: Register, create_user: CreateUser
) -> None:
    admin = await register()
    technician = await create_user(admin, "technician")
    before = (await client.get(f"{USERS}/me", headers=technician.auth)).json()
    for extra in ME_EXTRAS:
        response = await client.patch(
            f"{USERS}/me", json={"name": "Changed", **extra}, headers=technician.auth
        )
        errors = assert_problem(response, 422)["errors"]
        assert [error["loc"] for error in errors] == [["body", next(iter(extra))]], extra
    after = (await client.get(f"{USERS}/me", headers=technician.auth)).json()
    assert after == before  # not even the allowed `name` was applied
    assert after["role"] == "technician"
    # The same change without the extra field is accepted: only the extras were refused.
    renamed = await client.patch(f"{USERS}/me", json={"name": "Changed"}, headers=technician.auth)
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["name"], renamed.json()["role"]) == ("Changed", "technician")


async def test_admin_create_refuses_another_organization(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin_a = await register()
    admin_b = await register()
    email = unique_email()
    response = await client.post(
        USERS,
        json={
            "email": email,
            "password": STRONG_PASSWORD,
            "name": "Mole",
            "role": "admin",
            "organization_id": admin_b.claims["org"],
        },
        headers=admin_a.auth,
    )
    assert_problem(response, 422)
    assert [item["id"] for item in await snapshot(client, admin_b)] == [admin_b.user_id]
    assert_problem(await login(client, email, STRONG_PASSWORD), 401)


@pytest.mark.parametrize(
    ("change", "status"),
    [({"status": "disabled"}, 401), ({"role": "technician"}, 403), (None, 401)],
    ids=["disabled", "demoted", "deleted"],
)
async def test_a_former_admins_unexpired_token_manages_nothing(
    client: httpx.AsyncClient,
    register: Register,
    create_user: CreateUser,
    change: dict[str, str] | None,
    status: int,
) -> None:
    """The role in an access token is as old as the token: the database decides."""
    admin = await register()
    rogue = await create_user(admin, "admin")
    path = f"{USERS}/{rogue.user_id}"
    if change is None:
        response = await client.delete(path, headers=admin.auth)
    else:
        response = await client.patch(path, json=change, headers=admin.auth)
    assert response.status_code in (200, 204), response.text
    assert rogue.claims["role"] == "admin"  # what the still-valid token says

    backdoor = {
        "email": unique_email("backdoor"),
        "password": STRONG_PASSWORD,
        "name": "Backdoor",
        "role": "admin",
    }
    attempts = [
        await client.post(USERS, json=backdoor, headers=rogue.auth),
        await client.patch(
            f"{USERS}/{admin.user_id}", json={"status": "disabled"}, headers=rogue.auth
        ),
        await client.delete(f"{USERS}/{admin.user_id}", headers=rogue.auth),
        await client.get(USERS, headers=rogue.auth),
        await client.get(f"{USERS}/{admin.user_id}", headers=rogue.auth),
        await client.get("/api/v1/audit", headers=rogue.auth),
    ]
    for attempt in attempts:
        assert_problem(attempt, status)
    assert_problem(await login(client, backdoor["email"], STRONG_PASSWORD), 401)
    me = await client.get(f"{USERS}/{admin.user_id}", headers=admin.auth)
    assert (me.json()["status"], me.json()["role"]) == ("active", "admin")
