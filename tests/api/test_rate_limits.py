"""Rate limits answer 429 with Retry-After as problem+json, and lift again.

Every test calls from its own client address, so per-IP counters (kept in Redis for
the whole run) start at zero. Limits are tightened per test with the `settings`
marker. Recovery tests wait for what Retry-After says, a real wait of about a second,
because waiting out the window is the behaviour under test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest

from tests.api.conftest import (
    STRONG_PASSWORD,
    MakeClient,
    Register,
    assert_problem,
    login,
    refresh,
    unique_email,
)

WRONG = "not the password 123"


@pytest.fixture
async def client(make_client: MakeClient) -> httpx.AsyncClient:
    """This test's own client address."""
    return await make_client()


def assert_limited(response: httpx.Response, *, max_retry_after: int) -> int:
    """A 429 problem whose Retry-After is a whole number of seconds in range; returns it."""
    body = assert_problem(response, 429)
    assert body["type"] == "urn:fieldsync:problem:too-many-requests"
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= max_retry_after
    assert body["retry_after"] == retry_after
    return retry_after


async def until_limited(call: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
    """Repeat `call` until it answers 429 (bounded, so a missing limit fails the test)."""
    for _ in range(30):
        response = await call()
        if response.status_code == 429:
            return response
    raise AssertionError(f"never limited; last answer {response.status_code}")


async def after_waiting(
    limited: httpx.Response, call: Callable[[], Awaitable[httpx.Response]]
) -> httpx.Response:
    """Wait as long as Retry-After says and call again; up to 4 rounds."""
    response = limited
    for _ in range(4):
        await asyncio.sleep(int(response.headers["retry-after"]))
        response = await call()
        if response.status_code != 429:
            return response
    return response


@pytest.mark.settings(rate_limit_failed_logins_per_account="3/minute")
async def test_failed_logins_lock_the_account(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    bystander = await register()
    # A success forgets earlier failures.
    for _ in range(2):
        assert_problem(await login(client, admin.email, WRONG), 401)
    assert (await login(client, admin.email, STRONG_PASSWORD)).status_code == 200
    for _ in range(3):
        assert_problem(await login(client, admin.email, WRONG), 401)

    # Locked: even the right password is refused, without being checked.
    locked = await login(client, admin.email, STRONG_PASSWORD)
    assert_limited(locked, max_retry_after=60)
    assert_limited(await login(client, admin.email.upper(), STRONG_PASSWORD), max_retry_after=60)
    # Only that account: another one signs in from the same address, and the locked
    # account's existing session keeps working.
    assert (await login(client, bystander.email, STRONG_PASSWORD)).status_code == 200
    assert (await refresh(client, admin.refresh_token)).status_code == 200


@pytest.mark.settings(rate_limit_failed_logins_per_account="3/second")
async def test_a_locked_account_recovers(client: httpx.AsyncClient, register: Register) -> None:
    admin = await register()
    limited = await until_limited(lambda: login(client, admin.email, WRONG))
    assert_limited(limited, max_retry_after=1)
    recovered = await after_waiting(limited, lambda: login(client, admin.email, STRONG_PASSWORD))
    assert recovered.status_code == 200, recovered.text


@pytest.mark.settings(rate_limit_auth_per_ip="5/minute")
async def test_auth_endpoints_are_limited_per_address(
    client: httpx.AsyncClient, make_client: MakeClient, register: Register
) -> None:
    admin = await register()  # 1
    assert_problem(await login(client, admin.email, WRONG), 401)  # 2
    assert_problem(await login(client, unique_email(), WRONG), 401)  # 3
    assert_problem(await refresh(client, "no-such-token"), 401)  # 4
    assert (await login(client, admin.email, STRONG_PASSWORD)).status_code == 200  # 5

    sign_up = {
        "email": unique_email(),
        "password": STRONG_PASSWORD,
        "name": "Late",
        "organization_name": "Late",
    }
    for response in (
        await login(client, admin.email, STRONG_PASSWORD),
        await refresh(client, admin.refresh_token),
        await client.post("/api/v1/auth/register", json=sign_up),
        await client.post(
            "/api/v1/auth/token", data={"username": admin.email, "password": STRONG_PASSWORD}
        ),
    ):
        assert_limited(response, max_retry_after=60)
    # Other endpoints, and other addresses, are not affected.
    assert (await client.get("/api/v1/users/me", headers=admin.auth)).status_code == 200
    elsewhere = await make_client()
    assert (await login(elsewhere, admin.email, STRONG_PASSWORD)).status_code == 200


@pytest.mark.settings(rate_limit_auth_per_ip="3/second")
async def test_the_auth_limit_lifts_after_retry_after(client: httpx.AsyncClient) -> None:
    limited = await until_limited(lambda: refresh(client, "no-such-token"))
    assert_limited(limited, max_retry_after=1)
    recovered = await after_waiting(limited, lambda: refresh(client, "no-such-token"))
    assert_problem(recovered, 401)


@pytest.mark.settings(rate_limit_per_user="5/minute")
async def test_authenticated_calls_are_limited_per_user(
    client: httpx.AsyncClient, register: Register
) -> None:
    busy = await register()
    calm = await register()
    for _ in range(5):
        assert (await client.get("/api/v1/users/me", headers=busy.auth)).status_code == 200
    assert_limited(await client.get("/api/v1/users/me", headers=busy.auth), max_retry_after=60)
    # Every authenticated endpoint shares the user's budget...
    assert_limited(await client.get("/api/v1/auth/sessions", headers=busy.auth), max_retry_after=60)
    # ...and only that user's: another user from the same address is served.
    assert (await client.get("/api/v1/users/me", headers=calm.auth)).status_code == 200
    assert (await client.get("/health/live")).status_code == 200


@pytest.mark.settings(rate_limit_per_ip="8/minute")
async def test_every_request_is_limited_per_address_except_health(
    client: httpx.AsyncClient, make_client: MakeClient
) -> None:
    served = 0
    while True:
        response = await client.get("/api/v1/users/me")
        if response.status_code == 429:
            break
        assert_problem(response, 401)
        served += 1
        assert served <= 8
    assert served == 8
    assert_limited(response, max_retry_after=60)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-request-id"]
    assert_limited(await client.get("/openapi.json"), max_retry_after=60)

    for _ in range(10):
        for path in ("/health/live", "/health/ready", "/metrics"):
            answer = await client.get(path)
            assert answer.status_code == 200, (path, answer.text)
    elsewhere = await make_client()
    assert_problem(await elsewhere.get("/api/v1/users/me"), 401)


@pytest.mark.settings(rate_limit_per_ip="3/second")
async def test_the_address_limit_lifts_after_retry_after(client: httpx.AsyncClient) -> None:
    limited = await until_limited(lambda: client.get("/openapi.json"))
    assert_limited(limited, max_retry_after=1)
    recovered = await after_waiting(limited, lambda: client.get("/openapi.json"))
    assert recovered.status_code == 200, recovered.text
