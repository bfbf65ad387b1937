"""A password hash made with weaker parameters is upgraded at the next sign-in."""

from __future__ import annotations

import httpx
import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import select, update

from fieldsync.api.users.models import User
from fieldsync.kit.runtime import Runtime
from tests.api.conftest import Register, assert_problem, login

# The runtime hashes with 3 passes; the stored hash below was made with 2.
pytestmark = pytest.mark.settings(
    password_hash_memory_kib=19456, password_hash_time_cost=3, password_hash_parallelism=1
)
WEAKER = Argon2Hasher(time_cost=2, memory_cost=19456, parallelism=1)
CURRENT = Argon2Hasher(time_cost=3, memory_cost=19456, parallelism=1)


async def stored_hash(runtime: Runtime, email: str) -> str:
    async with runtime.databases["api"].sessions() as session:
        found = await session.scalar(select(User.password_hash).where(User.email == email))
    assert found is not None
    return found


async def test_a_weaker_hash_is_upgraded_on_login(
    client: httpx.AsyncClient, runtime: Runtime, register: Register
) -> None:
    admin = await register()
    assert "t=3" in await stored_hash(runtime, admin.email)  # the runtime's own parameters
    weak = WEAKER.hash(admin.password)
    async with runtime.databases["api"].sessions() as session:
        await session.execute(
            update(User).where(User.email == admin.email).values(password_hash=weak)
        )
        await session.commit()

    assert_problem(await login(client, admin.email, "a wrong password 99"), 401)
    assert await stored_hash(runtime, admin.email) == weak  # a failed login upgrades nothing

    response = await login(client, admin.email, admin.password)
    assert response.status_code == 200, response.text
    upgraded = await stored_hash(runtime, admin.email)
    assert upgraded != weak
    assert upgraded.startswith("$argon2id$")
    assert "m=19456,t=3,p=1" in upgraded
    assert PasswordHash((CURRENT,)).verify(admin.password, upgraded)
    assert not CURRENT.check_needs_rehash(upgraded)

    # The upgraded hash keeps working, and is not rewritten again.
    assert (await login(client, admin.email, admin.password)).status_code == 200
    assert await stored_hash(runtime, admin.email) == upgraded
