"""Pull: API writes reach the replica in order and come out of the feed in scope."""

from __future__ import annotations

import httpx

from tests.sync.conftest import (
    PULL,
    Register,
    Replica,
    create_building,
    has_workflows,
    pulled_until,
)


async def test_a_new_building_and_its_workflow_arrive_in_a_pull(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    building = await create_building(client, admin, city="Basel", country="CH", floors=4)
    replica = Replica(admin)
    await pulled_until(client, replica, has_workflows(1))

    pulled = replica.of("buildings")[building["id"]]
    assert set(pulled) == {
        "id",
        "name",
        "address",
        "city",
        "country",
        "latitude",
        "longitude",
        "floors",
        "notes",
        "updated_at",
        "version",
    }
    assert (pulled["city"], pulled["floors"], pulled["version"]) == ("Basel", 4, 1)
    (workflow,) = replica.of("workflows").values()
    assert workflow["building_id"] == building["id"]
    assert workflow["status"] == "open"
    for step in replica.of("workflow_steps").values():
        assert step["workflow_id"] == workflow["id"]
        assert set(step) == {
            "id",
            "workflow_id",
            "title",
            "position",
            "done",
            "value",
            "updated_at",
            "version",
        }

    # Nothing new: an empty page at the same checkpoint.
    again = await client.post(PULL, json={"checkpoint": replica.checkpoint}, headers=admin.auth)
    assert again.status_code == 200
    assert again.json() == {"changes": [], "checkpoint": replica.checkpoint, "has_more": False}


async def test_updates_and_deletes_arrive_and_other_organizations_stay_out(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    other = await register()
    building = await create_building(client, admin)
    foreign = await create_building(client, other)
    replica = Replica(admin)
    await pulled_until(client, replica, lambda r: building["id"] in r.of("buildings"))
    assert foreign["id"] not in replica.of("buildings")

    url = f"/api/v1/buildings/{building['id']}"
    patched = await client.patch(url, json={"floors": 9, "version": 1}, headers=admin.auth)
    assert patched.status_code == 200
    await pulled_until(client, replica, lambda r: r.of("buildings")[building["id"]]["floors"] == 9)

    assert (await client.delete(url, headers=admin.auth)).status_code == 204
    await pulled_until(
        client,
        replica,
        lambda r: building["id"] not in r.of("buildings") and not r.of("workflows"),
    )
