"""The sign-up to sign-out journey, through the real app and database."""

from __future__ import annotations

import httpx

from tests.api.conftest import CreateUser, Register


async def test_register_me_refresh_logout(client: httpx.AsyncClient, register: Register) -> None:
    admin = await register()
    me = await client.get("/api/v1/users/me", headers=admin.auth)
    assert me.status_code == 200, me.text
    assert me.json()["email"] == admin.email
    assert me.json()["role"] == "admin"

    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": admin.refresh_token}
    )
    assert refreshed.status_code == 200, refreshed.text
    pair = refreshed.json()
    assert pair["token_type"] == "bearer"
    assert pair["refresh_token"] != admin.refresh_token
    assert refreshed.headers["cache-control"] == "no-store"

    out = await client.post(
        "/api/v1/auth/logout", headers={"Authorization": f"Bearer {pair['access_token']}"}
    )
    assert out.status_code == 204
    after = await client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert after.status_code == 401


async def test_admin_creates_technician_who_signs_in(
    client: httpx.AsyncClient, register: Register, create_user: CreateUser
) -> None:
    admin = await register()
    technician = await create_user(admin, "technician")
    me = await client.get("/api/v1/users/me", headers=technician.auth)
    assert me.json()["role"] == "technician"
    forbidden = await client.get("/api/v1/users", headers=technician.auth)
    assert forbidden.status_code == 403
    audit = await client.get("/api/v1/audit", headers=admin.auth)
    assert audit.status_code == 200
    kinds = [event["kind"] for event in audit.json()["items"]]
    assert "user.created" in kinds
    assert "login.succeeded" in kinds
