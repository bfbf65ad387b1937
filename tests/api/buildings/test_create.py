"""POST /buildings at its edges: one statement checks the organization and the id."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy import text

from fieldsync.kit.runtime import Runtime
from tests.api.buildings.conftest import (
    BUILDINGS,
    get_building,
    outbox_rows,
    payload_of,
)
from tests.api.conftest import Register, assert_problem


async def count_buildings(runtime: Runtime, public_id: str) -> int:
    async with runtime.databases["api"].engine.connect() as connection:
        found = await connection.scalar(
            text("SELECT count(*) FROM buildings WHERE uuid = :id"), {"id": uuid.UUID(public_id)}
        )
    return int(found or 0)


async def test_a_gone_organization_creates_nothing_and_is_a_401(
    client: httpx.AsyncClient, register: Register, runtime: Runtime
) -> None:
    admin = await register()
    organization_id = admin.claims["org"]
    async with runtime.databases["api"].engine.begin() as connection:
        await connection.execute(
            text("UPDATE organizations SET deleted_at = now() WHERE uuid = :id"),
            {"id": uuid.UUID(organization_id)},
        )
    chosen = str(uuid.uuid4())

    response = await client.post(
        BUILDINGS, json={"id": chosen, "name": "Orphan"}, headers=admin.auth
    )

    assert_problem(response, 401)
    assert await count_buildings(runtime, chosen) == 0
    assert await outbox_rows(runtime, organization_id) == []


async def test_one_id_created_at_once_is_created_once(
    client: httpx.AsyncClient, register: Register, runtime: Runtime
) -> None:
    admin = await register()
    chosen = str(uuid.uuid4())
    names = [f"Depot {number}" for number in range(6)]

    responses = await asyncio.gather(
        *(
            client.post(BUILDINGS, json={"id": chosen, "name": name}, headers=admin.auth)
            for name in names
        )
    )

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201, 409, 409, 409, 409, 409], [r.text for r in responses]
    (winner,) = [response.json() for response in responses if response.status_code == 201]
    for lost in (response for response in responses if response.status_code == 409):
        assert_problem(lost, 409)
    stored = await get_building(client, admin, chosen)
    assert (stored["name"], stored["version"]) == (winner["name"], 1)
    assert await count_buildings(runtime, chosen) == 1
    (row,) = await outbox_rows(runtime, admin.claims["org"])
    change = payload_of(row)
    assert (change["id"], change["op"], change["version"]) == (chosen, "upsert", 1)
    assert change["data"] == {key: value for key, value in stored.items() if key != "created_at"}


async def test_an_id_taken_in_another_organization_writes_nothing_there(
    client: httpx.AsyncClient, register: Register, runtime: Runtime
) -> None:
    owner, other = await register(), await register()
    chosen = str(uuid.uuid4())
    created = await client.post(BUILDINGS, json={"id": chosen, "name": "Mine"}, headers=owner.auth)
    assert created.status_code == 201, created.text

    taken = await client.post(BUILDINGS, json={"id": chosen, "name": "Theirs"}, headers=other.auth)

    assert_problem(taken, 409)
    assert await outbox_rows(runtime, other.claims["org"]) == []
    assert (await get_building(client, owner, chosen))["name"] == "Mine"
