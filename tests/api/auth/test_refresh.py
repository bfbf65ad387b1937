"""Refresh-token rotation within the reuse grace, and the caller's sessions."""

from __future__ import annotations

import uuid

import httpx

from tests.api.conftest import (
    Account,
    CreateUser,
    Register,
    assert_problem,
    audit_events,
    bearer,
    refresh,
    sign_in,
)

SESSIONS = "/api/v1/auth/sessions"


async def rotate(client: httpx.AsyncClient, refresh_token: str) -> dict[str, str]:
    response = await refresh(client, refresh_token)
    assert response.status_code == 200, response.text
    pair: dict[str, str] = response.json()
    return pair


async def test_reuse_within_the_grace_answers_a_new_pair_and_retires_the_lost_one(
    client: httpx.AsyncClient, register: Register
) -> None:
    """A retry after a lost response (default grace: 5 s) is not treated as theft."""
    admin = await register()
    token_a = admin.refresh_token
    pair_b = await rotate(client, token_a)
    pair_c = await rotate(client, token_a)  # the client never saw B and retries with A
    assert pair_c["refresh_token"] not in (token_a, pair_b["refresh_token"])

    # B was issued but superseded: refused, and refusing it does not end the session.
    assert_problem(await refresh(client, pair_b["refresh_token"]), 401)
    pair_d = await rotate(client, pair_c["refresh_token"])
    me = await client.get("/api/v1/users/me", headers=bearer(pair_d["access_token"]))
    assert me.status_code == 200, me.text
    kinds = [event["kind"] for event in await audit_events(client, admin)]
    assert "refresh.reused" not in kinds


async def test_logout_all_ends_every_session(client: httpx.AsyncClient, register: Register) -> None:
    admin = await register()
    laptop = await sign_in(client, admin)
    phone = await sign_in(client, admin)
    listed = await client.get(SESSIONS, headers=laptop.auth)
    assert len(listed.json()["items"]) == 3

    out = await client.post("/api/v1/auth/logout-all", headers=laptop.auth)
    assert out.status_code == 204, out.text
    for account in (admin, laptop, phone):
        assert_problem(await refresh(client, account.refresh_token), 401)
    remaining = await client.get(SESSIONS, headers=laptop.auth)
    assert remaining.status_code == 200, remaining.text
    assert remaining.json()["items"] == []
    # A new sign-in still works: logout-all ends sessions, not the account.
    fresh = await sign_in(client, admin)
    assert (await refresh(client, fresh.refresh_token)).status_code == 200


async def test_sessions_list_marks_the_callers_own(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    other = await sign_in(client, admin)
    response = await client.get(SESSIONS, headers=other.auth)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert {item["id"] for item in items} == {admin.session_id, other.session_id}
    current = [item["id"] for item in items if item["current"]]
    assert current == [other.session_id]

    paged = await client.get(SESSIONS, params={"limit": 1}, headers=other.auth)
    first = paged.json()
    assert len(first["items"]) == 1
    assert first["next_cursor"] is not None
    rest = await client.get(
        SESSIONS, params={"limit": 1, "cursor": first["next_cursor"]}, headers=other.auth
    )
    assert [item["id"] for item in first["items"] + rest.json()["items"]] == [
        item["id"] for item in items
    ]


async def test_ending_another_session_of_mine(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    phone = await sign_in(client, admin)
    ended = await client.delete(f"{SESSIONS}/{phone.session_id}", headers=admin.auth)
    assert ended.status_code == 204, ended.text

    assert_problem(await refresh(client, phone.refresh_token), 401)
    listed = await client.get(SESSIONS, headers=admin.auth)
    assert [item["id"] for item in listed.json()["items"]] == [admin.session_id]
    assert (await refresh(client, admin.refresh_token)).status_code == 200
    # Ending it again: it is gone.
    again = await client.delete(f"{SESSIONS}/{phone.session_id}", headers=admin.auth)
    assert_problem(again, 404)
    events = await audit_events(client, admin)
    revoked = [event for event in events if event["kind"] == "session.revoked"]
    assert [event["detail"]["session"] for event in revoked] == [phone.session_id]


async def test_someone_elses_session_is_not_found(
    client: httpx.AsyncClient, register: Register, create_user: CreateUser
) -> None:
    mine: Account = await register()
    colleague = await create_user(mine, "technician")  # same organization, another user
    stranger = await register()  # another organization
    unknown = await client.delete(f"{SESSIONS}/{uuid.uuid4()}", headers=mine.auth)
    expected = assert_problem(unknown, 404)
    for theirs in (colleague, stranger):
        response = await client.delete(f"{SESSIONS}/{theirs.session_id}", headers=mine.auth)
        # Indistinguishable from a session that does not exist at all.
        assert assert_problem(response, 404)["detail"] == expected["detail"]
        # Their session is untouched.
        assert (await refresh(client, theirs.refresh_token)).status_code == 200
