"""Password policy, password change, and sign-in failures that reveal nothing."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import (
    STRONG_PASSWORD,
    Account,
    CreateUser,
    Register,
    assert_problem,
    audit_events,
    login,
    refresh,
    sign_in,
    unique_email,
)

NEW_PASSWORD = "a brand new passphrase 77"
ME = "/api/v1/users/me"


def sign_up_body(password: str, email: str | None = None) -> dict[str, str]:
    return {
        "email": email or unique_email(),
        "password": password,
        "name": "Pat",
        "organization_name": "Acme",
    }


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("Sh0rt!pw9", "at least 10 characters"),  # 9 characters
        ("password123", "most common"),
        ("qwertyuiop", "most common"),
        ("PassWord123", "most common"),  # case does not make it less common
    ],
)
async def test_register_rejects_weak_passwords(
    client: httpx.AsyncClient, password: str, problem: str
) -> None:
    body = sign_up_body(password)
    response = await client.post("/api/v1/auth/register", json=body)
    errors = assert_problem(response, 422)["errors"]
    assert [error["loc"] for error in errors] == [["body", "password"]]
    assert problem in errors[0]["msg"]
    # Nothing was created.
    assert_problem(await login(client, body["email"], password), 401)


async def test_register_rejects_the_email_as_password(client: httpx.AsyncClient) -> None:
    email = unique_email("samepass")
    response = await client.post("/api/v1/auth/register", json=sign_up_body(email, email))
    assert assert_problem(response, 422)["errors"][0]["loc"] == ["body", "password"]


async def test_ten_characters_are_enough(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/auth/register", json=sign_up_body("Zq7#kd9!Lm"))
    assert response.status_code == 201, response.text


async def test_admin_created_users_get_the_same_policy(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    for password in ("tooShort1", "qwertyuiop"):
        response = await client.post(
            "/api/v1/users",
            json={"email": unique_email(), "password": password, "name": "T", "role": "technician"},
            headers=admin.auth,
        )
        assert assert_problem(response, 422)["errors"][0]["loc"] == ["body", "password"]


async def test_password_change_needs_the_current_password(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    wrong = await client.patch(
        ME,
        json={"current_password": "not my password 1", "new_password": NEW_PASSWORD},
        headers=admin.auth,
    )
    assert assert_problem(wrong, 422)["errors"][0]["loc"] == ["body", "current_password"]
    missing = await client.patch(ME, json={"new_password": NEW_PASSWORD}, headers=admin.auth)
    assert assert_problem(missing, 422)["errors"][0]["loc"] == ["body", "current_password"]
    weak = await client.patch(
        ME,
        json={"current_password": STRONG_PASSWORD, "new_password": "password123"},
        headers=admin.auth,
    )
    assert assert_problem(weak, 422)["errors"][0]["loc"] == ["body", "new_password"]
    # None of these changed anything.
    assert (await login(client, admin.email, STRONG_PASSWORD)).status_code == 200
    assert_problem(await login(client, admin.email, NEW_PASSWORD), 401)
    assert (await refresh(client, admin.refresh_token)).status_code == 200


async def test_password_change_ends_every_other_session(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    laptop = await sign_in(client, admin)
    phone = await sign_in(client, admin)
    changed = await client.patch(
        ME,
        json={"current_password": STRONG_PASSWORD, "new_password": NEW_PASSWORD},
        headers=phone.auth,
    )
    assert changed.status_code == 200, changed.text
    assert "password" not in changed.text.replace("password_", "")  # no hash is echoed

    for other in (admin, laptop):
        assert_problem(await refresh(client, other.refresh_token), 401)
    kept = await refresh(client, phone.refresh_token)
    assert kept.status_code == 200, kept.text
    sessions = await client.get("/api/v1/auth/sessions", headers=phone.auth)
    assert [item["id"] for item in sessions.json()["items"]] == [phone.session_id]

    assert_problem(await login(client, admin.email, STRONG_PASSWORD), 401)
    assert (await login(client, admin.email, NEW_PASSWORD)).status_code == 200
    events = await audit_events(client, phone)
    changes = [event for event in events if event["kind"] == "user.password_changed"]
    assert len(changes) == 1
    assert changes[0]["user_id"] == admin.user_id
    assert changes[0]["detail"]["sessions_ended"] == 2


async def test_unknown_email_and_wrong_password_look_the_same(
    client: httpx.AsyncClient, register: Register, create_user: CreateUser
) -> None:
    admin = await register()
    technician: Account = await create_user(admin, "technician")
    disabled = await client.patch(
        f"/api/v1/users/{technician.user_id}", json={"status": "disabled"}, headers=admin.auth
    )
    assert disabled.status_code == 200, disabled.text

    answers = [
        await login(client, unique_email("nobody"), STRONG_PASSWORD),
        await login(client, admin.email, "wrong password 1234"),
        await login(client, admin.email.upper(), "wrong password 1234"),
        await login(client, technician.email, STRONG_PASSWORD),  # right password, disabled
    ]
    bodies = [assert_problem(answer, 401) for answer in answers]
    for body in bodies[1:]:
        assert body == bodies[0]
    assert {answer.headers["content-type"] for answer in answers} == {
        answers[0].headers["content-type"]
    }


async def test_login_email_is_case_insensitive(
    client: httpx.AsyncClient, register: Register
) -> None:
    email = unique_email("Mixed")
    admin = await register(email=email.replace("mixed", "MiXeD"))
    assert (await login(client, email.upper(), admin.password)).status_code == 200
