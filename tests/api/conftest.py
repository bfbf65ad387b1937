"""Fixtures for the api service: signed-up organizations and their users."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest

STRONG_PASSWORD = "correct horse battery staple 42"


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


def unique_email(prefix: str = "user") -> str:
    """An email no other test uses."""
    return f"{prefix}-{secrets.token_hex(6)}@example.com"


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
        login = await client.post(
            "/api/v1/auth/login", json={"email": address, "password": password}
        )
        assert login.status_code == 200, login.text
        body = login.json()
        return Account(address, password, body["access_token"], body["refresh_token"])

    return add
