"""Fixtures for the api service: signed-up organizations and their users.

A test (or a whole module, through `pytestmark`) can run its runtime with other
settings by marking it `@pytest.mark.settings(rate_limit_per_user="5/minute", ...)`.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest

from fieldsync.kit.http.app import create_app
from fieldsync.kit.runtime import Endpoints, Runtime
from fieldsync.kit.settings import Settings
from fieldsync.workflows.service import SERVICE as WORKFLOWS

STRONG_PASSWORD = "correct horse battery staple 42"
PROBLEM_JSON = "application/problem+json"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "settings(**overrides): run the test's runtime with these settings changed"
    )


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The run's settings, changed by the closest `settings` marker (validated again)."""
    marker = request.node.get_closest_marker("settings")
    if marker is None:
        return settings
    return Settings.model_validate({**settings.model_dump(), **marker.kwargs})


def random_ip() -> str:
    """A client address no other test uses, so per-IP counters start at zero."""
    return "10." + ".".join(str(secrets.randbelow(254) + 1) for _ in range(3))


MakeClient = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def make_client(runtime: Runtime) -> AsyncIterator[MakeClient]:
    """Open more clients of the same app: from another address, or over https."""
    opened: list[httpx.AsyncClient] = []
    app = create_app(runtime)

    async def open_client(
        ip: str | None = None, base_url: str = "http://fieldsync.test"
    ) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(ip or random_ip(), 40000))
        http = httpx.AsyncClient(transport=transport, base_url=base_url)
        opened.append(http)
        return http

    yield open_client
    for http in opened:
        await http.aclose()


@dataclass
class Account:
    """A signed-in user and their tokens."""

    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def auth(self) -> dict[str, str]:
        """The Authorization header of this account."""
        return {"Authorization": f"Bearer {self.access_token}"}

    @property
    def claims(self) -> dict[str, Any]:
        """The access token's claims (read without verifying: the test issued it)."""
        claims: dict[str, Any] = jwt.decode(self.access_token, options={"verify_signature": False})
        return claims

    @property
    def user_id(self) -> str:
        """The user's public id."""
        return str(uuid.UUID(self.claims["sub"]))

    @property
    def session_id(self) -> str:
        """The public id of the session these tokens belong to."""
        return str(uuid.UUID(self.claims["sid"]))


def unique_email(prefix: str = "user") -> str:
    """An email no other test uses."""
    return f"{prefix}-{secrets.token_hex(6)}@example.com"


def bearer(access_token: str) -> dict[str, str]:
    """An Authorization header for a raw access token."""
    return {"Authorization": f"Bearer {access_token}"}


async def login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    """POST /auth/login."""
    return await client.post("/api/v1/auth/login", json={"email": email, "password": password})


async def sign_in(client: httpx.AsyncClient, account: Account) -> Account:
    """Another session of `account` (as from a second device)."""
    response = await login(client, account.email, account.password)
    assert response.status_code == 200, response.text
    body = response.json()
    return Account(account.email, account.password, body["access_token"], body["refresh_token"])


async def refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    """POST /auth/refresh."""
    return await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})


async def audit_events(
    client: httpx.AsyncClient, admin: Account, *, limit: int = 200
) -> list[dict[str, Any]]:
    """Every audit event the admin's organization can see (all pages), newest first."""
    events: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        response = await client.get("/api/v1/audit", params=params, headers=admin.auth)
        assert response.status_code == 200, response.text
        page = response.json()
        events.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return events


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with `status`; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:fieldsync:problem:")
    return body


Register = Callable[..., Awaitable[Account]]


@pytest.fixture
def register(client: httpx.AsyncClient) -> Register:
    """Sign up a new organization; returns its admin."""

    async def sign_up(email: str | None = None, password: str = STRONG_PASSWORD) -> Account:
        address = email or unique_email("admin")
        response = await client.post(
            "/api/v1/auth/register",
            json={
                "email": address,
                "password": password,
                "name": "Ada Admin",
                "organization_name": "Acme",
            },
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return Account(address, password, body["access_token"], body["refresh_token"])

    return sign_up


CreateUser = Callable[..., Awaitable[Account]]


@pytest.fixture
def create_user(client: httpx.AsyncClient) -> CreateUser:
    """An admin adds a user with `role`; returns that user, signed in."""

    async def add(admin: Account, role: str, password: str = STRONG_PASSWORD) -> Account:
        address = unique_email(role)
        created = await client.post(
            "/api/v1/users",
            json={"email": address, "password": password, "name": role.title(), "role": role},
            headers=admin.auth,
        )
        assert created.status_code == 201, created.text
        response = await login(client, address, password)
        assert response.status_code == 200, response.text
        body = response.json()
        return Account(address, password, body["access_token"], body["refresh_token"])

    return add


@pytest.fixture
async def start_workflows(
    settings: Settings, endpoints: Endpoints, workflows_database_url: str
) -> AsyncIterator[Callable[[], Awaitable[Runtime]]]:
    """Start a workflows runtime on the test NATS (stopped after the test)."""
    started: list[Runtime] = []

    async def start() -> Runtime:
        workflows_endpoints = Endpoints(
            nats_url=endpoints.nats_url,
            nats_monitor_url=endpoints.nats_monitor_url,
            database_urls={"workflows": workflows_database_url},
            redis_url=endpoints.redis_url,
        )
        runtime = Runtime(settings, workflows_endpoints, [WORKFLOWS])
        await runtime.start()
        started.append(runtime)
        return runtime

    yield start
    for runtime in started:
        await runtime.stop()
