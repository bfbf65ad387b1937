"""Push: checked per mutation, applied once by the owner, visible to the next pull."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from fieldsync.client import SyncClient
from tests.sync.conftest import (
    PULL,
    PUSH,
    CreateUser,
    Register,
    Replica,
    create_building,
    pulled_until,
)


def mutation(mutation_id: int, collection: str, record_id: str, **fields: Any) -> dict[str, Any]:
    return {"mutation_id": mutation_id, "collection": collection, "id": record_id, **fields}


async def push(
    client: httpx.AsyncClient, account: Any, mutations: list[dict[str, Any]], client_id: str
) -> list[dict[str, Any]]:
    response = await client.post(
        PUSH, json={"client_id": client_id, "mutations": mutations}, headers=account.auth
    )
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


async def test_pushed_building_is_in_the_next_pull_and_replays_apply_nothing(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    replica = Replica(admin)
    await replica.pull(client)
    building_id = str(uuid.uuid4())
    batch = [
        mutation(
            1,
            "buildings",
            building_id,
            op="upsert",
            data={"name": "Pushed", "city": "Graz", "version": 99, "updated_at": "ignored"},
        ),
        mutation(2, "buildings", building_id, op="upsert", data={"floors": 3}, base_version=1),
    ]
    results = await push(client, admin, batch, "device-a")
    assert results == [
        {"mutation_id": 1, "status": "applied", "version": 1},
        {"mutation_id": 2, "status": "applied", "version": 2},
    ]
    # Read-your-writes: no waiting, the very next pull has it.
    await replica.pull(client)
    pulled = replica.of("buildings")[building_id]
    assert (pulled["name"], pulled["city"], pulled["floors"], pulled["version"]) == (
        "Pushed",
        "Graz",
        3,
        2,
    )

    # The same push again (a lost reply): the same results, nothing applied twice.
    assert await push(client, admin, batch, "device-a") == results
    again = await client.post(PULL, json={"checkpoint": replica.checkpoint}, headers=admin.auth)
    assert [c["id"] for c in again.json()["changes"] if c["collection"] == "buildings"] == []
    got = await client.get(f"/api/v1/buildings/{building_id}", headers=admin.auth)
    assert got.json()["version"] == 2
    # Its default workflow follows, as for a building made over HTTP.
    await pulled_until(client, replica, lambda r: len(r.of("workflows")) == 1)


async def test_conflicts_carry_the_server_record_and_rejections_say_why(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    building = await create_building(client, admin, name="Shared", floors=1)
    patched = await client.patch(
        f"/api/v1/buildings/{building['id']}", json={"floors": 2}, headers=admin.auth
    )
    assert patched.status_code == 200
    replica = Replica(admin)
    await pulled_until(
        client, replica, lambda r: r.of("buildings").get(building["id"], {}).get("version") == 2
    )
    results = await push(
        client,
        admin,
        [
            mutation(
                1, "buildings", building["id"], op="upsert", data={"floors": 7}, base_version=1
            ),
            mutation(
                2, "buildings", building["id"], op="upsert", data={"colour": "red"}, base_version=2
            ),
            mutation(
                3, "buildings", building["id"], op="upsert", data={"floors": 1000}, base_version=2
            ),
            mutation(4, "buildings", str(uuid.uuid4()), op="upsert"),
        ],
        "device-b",
    )
    conflict, unknown, out_of_range, no_data = results
    assert conflict["status"] == "conflict"
    assert conflict["version"] == 2
    assert conflict["record"] == replica.of("buildings")[building["id"]]
    assert conflict["record"]["floors"] == 2
    assert unknown["status"] == "rejected"
    assert unknown["error"]["code"] == "validation"
    assert unknown["error"]["field"] == "colour"
    assert out_of_range["status"] == "rejected"
    assert out_of_range["error"]["field"] == "floors"
    assert no_data["error"] == {
        "code": "validation",
        "detail": "an upsert carries data",
        "field": "data",
    }
    current = await client.get(f"/api/v1/buildings/{building['id']}", headers=admin.auth)
    assert (current.json()["floors"], current.json()["version"]) == (2, 2)


async def test_pushes_outside_the_scope_are_rejected_without_leaking(
    client: httpx.AsyncClient, register: Register, create_user: CreateUser
) -> None:
    admin = await register()
    technician = await create_user(admin, "technician")
    theirs = await create_building(client, admin, name="Theirs")
    not_theirs = await create_building(client, admin, name="Not theirs")
    stranger = await register()
    foreign = await create_building(client, stranger, name="Foreign")
    url = f"/api/v1/buildings/{theirs['id']}/assignees/{technician.user_id}"
    assert (await client.put(url, headers=admin.auth)).status_code == 204
    replica = Replica(technician)
    await pulled_until(client, replica, lambda r: len(r.of("workflows")) == 1)
    await pulled_until(client, Replica(stranger), lambda r: foreign["id"] in r.of("buildings"))

    results = await push(
        client,
        technician,
        [
            mutation(1, "buildings", theirs["id"], op="upsert", data={"floors": 1}, base_version=1),
            mutation(
                2, "buildings", not_theirs["id"], op="upsert", data={"floors": 1}, base_version=1
            ),
            mutation(3, "buildings", foreign["id"], op="delete", base_version=1),
            mutation(4, "buildings", str(uuid.uuid4()), op="upsert", data={"name": "Mine"}),
        ],
        "tech-device",
    )
    assert [r["status"] for r in results] == ["rejected"] * 4
    assert results[3]["error"]["code"] == "forbidden"  # technicians create no buildings
    assert results[0]["error"]["code"] == "forbidden"  # in scope, but read-only to them
    assert results[1]["error"]["code"] == "not_found"
    assert results[2]["error"]["code"] == "not_found"
    assert all("record" not in r for r in results)

    # An admin of another organization gets the same answer for the foreign building.
    (result,) = await push(
        client, admin, [mutation(1, "buildings", foreign["id"], op="delete")], "admin-device"
    )
    assert result["status"] == "rejected"
    assert result["error"]["code"] == "not_found"
    still = await client.get(f"/api/v1/buildings/{foreign['id']}", headers=stranger.auth)
    assert still.status_code == 200


async def test_malformed_pushes_are_refused_whole(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    new_id = str(uuid.uuid4())
    good = mutation(1, "buildings", new_id, op="upsert", data={"name": "Never"})
    for body in (
        {"client_id": "d", "mutations": [good, mutation(2, "rockets", new_id, op="upsert")]},
        {"client_id": "d", "mutations": [good, {**good, "mutation_id": 1}]},
        {"client_id": "d", "mutations": [{**good, "op": "merge"}]},
        {"client_id": "d", "mutations": [{**good, "id": "not-a-uuid"}]},
        {"client_id": "d", "mutations": [{**good, "base_version": "one"}]},
        {"client_id": "d", "mutations": [{**good, "extra": 1}]},
        {"client_id": "", "mutations": [good]},
        {"client_id": "d", "mutations": []},
        {
            "client_id": "d",
            "mutations": [
                mutation(i + 1, "buildings", str(uuid.uuid4()), op="delete") for i in range(501)
            ],
        },
        {"client_id": "d", "mutations": "all of them"},
    ):
        response = await client.post(PUSH, json=body, headers=admin.auth)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get(f"/api/v1/buildings/{new_id}", headers=admin.auth)).status_code == 404
    assert (
        await client.post(PUSH, json={"client_id": "d", "mutations": [good]})
    ).status_code == 401


async def test_the_python_client_edits_offline_and_converges(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    device = SyncClient(client)
    device.use_tokens(admin.access_token, admin.refresh_token)
    await device.pull()
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    device.upsert("buildings", first, {"name": "One"})
    device.upsert("buildings", first, {"city": "Linz"})  # folded into the unsent create
    device.upsert("buildings", second, {"name": "Two"})
    device.delete("buildings", second)  # created and deleted offline: never sent
    assert set(device.store.view("buildings")) == {first}
    await device.sync()
    assert device.store.pending == []
    assert device.store.view("buildings")[first]["city"] == "Linz"
    assert (await client.get(f"/api/v1/buildings/{second}", headers=admin.auth)).status_code == 404

    other = SyncClient(client)
    other.use_tokens(admin.access_token)
    await other.pull()
    assert other.store.view("buildings") == device.store.view("buildings")
