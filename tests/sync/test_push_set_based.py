"""A large push of creates (applied set-based by the owner) reaches the replica once each."""

from __future__ import annotations

import uuid

import httpx

from tests.sync.conftest import Register, Replica, create_building, pulled_until
from tests.sync.test_push import mutation, push


async def test_a_large_mixed_push_reaches_the_next_pull_once_per_change(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    taken = await create_building(client, admin, name="Taken", floors=1)
    replica = Replica(admin)
    # Made over HTTP, it reaches the replica through the stream: wait for it.
    await pulled_until(client, replica, lambda r: taken["id"] in r.of("buildings"))
    new_ids = [str(uuid.uuid4()) for _ in range(120)]
    twice = new_ids[0]
    batch = [
        mutation(n, "buildings", building_id, op="upsert", data={"name": f"B{n}", "floors": n})
        for n, building_id in enumerate(new_ids, 1)
    ]
    batch += [
        mutation(121, "buildings", twice, op="upsert", data={"floors": 0}, base_version=1),
        mutation(122, "buildings", taken["id"], op="upsert", data={"name": "Copy"}),
        mutation(
            123, "buildings", str(uuid.uuid4()), op="upsert", data={"name": "Tall", "floors": 999}
        ),
    ]

    results = await push(client, admin, batch, "device-bulk")

    assert results[:120] == [
        {"mutation_id": n, "status": "applied", "version": 1} for n in range(1, 121)
    ]
    assert results[120] == {"mutation_id": 121, "status": "applied", "version": 2}
    # The conflict carries the record exactly as the pull gave it.
    assert results[121]["status"] == "conflict"
    assert results[121]["record"] == replica.of("buildings")[taken["id"]]
    assert (results[122]["status"], results[122]["error"]["field"]) == ("rejected", "floors")
    # Read-your-writes, and each record's change once, at its last version.
    received = await replica.pull(client)
    pushed = [change for change in received if change["collection"] == "buildings"]
    assert sorted(change["id"] for change in pushed) == sorted(new_ids)
    buildings = replica.of("buildings")
    assert buildings[twice]["version"] == 2
    assert buildings[twice]["floors"] == 0
    assert all(buildings[i]["version"] == 1 for i in new_ids[1:])
    assert buildings[new_ids[5]]["name"] == "B6"

    # A replay answers the same and the replica gets nothing new.
    assert await push(client, admin, batch, "device-bulk") == results
    again = await replica.pull(client)
    assert [change for change in again if change["collection"] == "buildings"] == []
