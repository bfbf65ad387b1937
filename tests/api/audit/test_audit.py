"""The security log: what is recorded, paging, and organization scoping."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.conftest import (
    Account,
    CreateUser,
    Register,
    audit_events,
    login,
    sign_in,
    unique_email,
)


def of_kind(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [event for event in events if event["kind"] == kind]


async def test_security_events_are_recorded(
    client: httpx.AsyncClient, register: Register, create_user: CreateUser
) -> None:
    admin = await register()
    technician: Account = await create_user(admin, "technician")  # signs in once
    failed = await login(client, technician.email, "not the password 1")
    assert failed.status_code == 401
    promoted = await client.patch(
        f"/api/v1/users/{technician.user_id}", json={"role": "manager"}, headers=admin.auth
    )
    assert promoted.status_code == 200, promoted.text
    disabled = await client.patch(
        f"/api/v1/users/{technician.user_id}", json={"status": "disabled"}, headers=admin.auth
    )
    assert disabled.status_code == 200, disabled.text
    laptop = await sign_in(client, admin)
    ended = await client.delete(f"/api/v1/auth/sessions/{laptop.session_id}", headers=admin.auth)
    assert ended.status_code == 204, ended.text

    events = await audit_events(client, admin)
    kinds = [event["kind"] for event in events]
    for kind in (
        "organization.registered",
        "user.created",
        "login.succeeded",
        "login.failed",
        "user.role_changed",
        "user.status_changed",
        "session.revoked",
    ):
        assert kind in kinds, kind

    (failure,) = of_kind(events, "login.failed")
    assert failure["user_id"] == technician.user_id
    assert failure["detail"] == {"reason": "credentials"}
    assert failure["ip"] == "127.0.0.1"

    logins = of_kind(events, "login.succeeded")
    assert {event["user_id"] for event in logins} == {technician.user_id, admin.user_id}

    (role_change,) = of_kind(events, "user.role_changed")
    assert role_change["actor_id"] == admin.user_id
    assert role_change["user_id"] == technician.user_id
    assert role_change["detail"] == {"before": "technician", "after": "manager"}

    (status_change,) = of_kind(events, "user.status_changed")
    assert status_change["detail"] == {"before": "active", "after": "disabled"}

    (revoked,) = of_kind(events, "session.revoked")
    assert revoked["actor_id"] == admin.user_id
    assert revoked["detail"] == {"session": laptop.session_id, "reason": "revoked"}

    # Newest first.
    assert [int(event["id"]) for event in events] == sorted(
        (int(event["id"]) for event in events), reverse=True
    )
    assert kinds[0] == "session.revoked"
    assert kinds[-1] == "organization.registered"


async def test_audit_pages_with_a_cursor(
    client: httpx.AsyncClient, register: Register, create_user: CreateUser
) -> None:
    admin = await register()
    await create_user(admin, "technician")
    for _ in range(3):
        await sign_in(client, admin)
    everything = await audit_events(client, admin)
    assert len(everything) >= 6

    paged = await audit_events(client, admin, limit=2)
    assert [event["id"] for event in paged] == [event["id"] for event in everything]
    assert len({event["id"] for event in paged}) == len(paged)

    first = await client.get("/api/v1/audit", params={"limit": 2}, headers=admin.auth)
    assert len(first.json()["items"]) == 2
    assert first.json()["next_cursor"] is not None
    bad = await client.get("/api/v1/audit", params={"cursor": "x"}, headers=admin.auth)
    assert bad.status_code == 422


async def test_another_organizations_events_never_appear(
    client: httpx.AsyncClient, register: Register, create_user: CreateUser
) -> None:
    admin_a = await register()
    admin_b = await register()
    technician_b = await create_user(admin_b, "technician")
    await login(client, technician_b.email, "wrong password b 1")
    demoted = await client.patch(
        f"/api/v1/users/{technician_b.user_id}", json={"role": "manager"}, headers=admin_b.auth
    )
    assert demoted.status_code == 200
    # An unknown email belongs to no organization, so it shows in nobody's log.
    await login(client, unique_email("ghost"), "whatever password 1")

    events_a = await audit_events(client, admin_a)
    events_b = await audit_events(client, admin_b)
    people_b = {admin_b.user_id, technician_b.user_id}
    for event in events_a:
        assert event["user_id"] not in people_b, event
        assert event["actor_id"] not in people_b, event
    assert {event["user_id"] for event in events_a} == {admin_a.user_id}
    assert not {event["id"] for event in events_a} & {event["id"] for event in events_b}
    assert {"login.failed", "user.role_changed"} <= {event["kind"] for event in events_b}
    assert all(event["user_id"] is not None for event in events_a + events_b)
