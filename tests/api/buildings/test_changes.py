"""Every building and assignment write reaches CHANGES through the api outbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx

from fieldsync.contracts.changes import Change, ChangeOp
from fieldsync.kit.runtime import Runtime
from tests.api.buildings.conftest import (
    OpenFeed,
    assignee_url,
    building_url,
    create_building,
    payload_of,
    wait_until_published,
)
from tests.api.conftest import CreateUser, Register

BUILDINGS = "buildings"
ASSIGNMENTS = "building_assignments"


def synced_fields(body: dict[str, Any]) -> dict[str, Any]:
    """What a building Change carries: the public fields, without created_at."""
    return {
        key: value
        for key, value in body.items()
        if key not in {"created_at", "workflow", "workflow_status"}
    }


async def test_building_writes_are_published_in_order(
    client: httpx.AsyncClient, register: Register, runtime: Runtime, change_feed: OpenFeed
) -> None:
    admin = await register()
    organization = admin.claims["org"]
    feed = await change_feed(organization)
    created = await create_building(
        client,
        admin,
        name="Station",
        address="Platz 1",
        city="Bern",
        country="CH",
        latitude=46.948,
        longitude=7.4474,
        floors=2,
        notes="badge needed",
    )
    url = building_url(created["id"])
    patched = await client.patch(
        url, json={"floors": 3, "notes": None}, headers={**admin.auth, "If-Match": '"1"'}
    )
    assert patched.status_code == 200, patched.text
    # Sending values the building already has is not a write: same version, no change.
    same = await client.patch(
        url,
        json={"floors": 3, "latitude": 46.948, "country": "CH", "version": 2},
        headers=admin.auth,
    )
    assert same.status_code == 200, same.text
    assert same.json()["version"] == 2
    deleted = await client.delete(url, headers={**admin.auth, "If-Match": '"2"'})
    assert deleted.status_code == 204, deleted.text

    changes = await feed.wait_for_count(BUILDINGS, 3)
    # The relay publishes in commit order: once the delete is here, nothing else can
    # still come from these three writes.
    assert len(changes) == 3
    assert feed.subjects == [f"changes.{organization}.buildings"] * 3
    building_id = uuid.UUID(created["id"])
    for change in changes:
        assert change.collection == BUILDINGS
        assert change.id == building_id
        assert change.building_id == building_id
        assert change.organization_id == uuid.UUID(organization)
    assert [(change.op, change.version) for change in changes] == [
        (ChangeOp.UPSERT, 1),
        (ChangeOp.UPSERT, 2),
        (ChangeOp.DELETE, 3),
    ]
    assert changes[0].data == synced_fields(created)
    assert changes[1].data == synced_fields(patched.json())
    assert changes[1].data is not None
    assert (changes[1].data["floors"], changes[1].data["notes"]) == (3, None)
    assert changes[2].data is None
    occurred = [change.occurred_at for change in changes]
    assert occurred == sorted(occurred)
    assert occurred[0] >= datetime.fromisoformat(created["created_at"])

    # The outbox holds exactly these, each marked published and in the stream once.
    rows = await wait_until_published(runtime, organization, count=3)
    feed.assert_carried(rows)
    assert [Change.model_validate(payload_of(row)) for row in rows] == changes
    assert all(row.subject == f"changes.{organization}.buildings" for row in rows)


async def test_assignments_are_published_and_idempotent_writes_are_not(
    client: httpx.AsyncClient,
    register: Register,
    create_user: CreateUser,
    runtime: Runtime,
    change_feed: OpenFeed,
) -> None:
    admin = await register()
    technician = await create_user(admin, "technician")
    organization = admin.claims["org"]
    feed = await change_feed(organization)
    building = await create_building(client, admin, name="Annex")
    url = assignee_url(building["id"], technician.user_id)

    for _ in range(2):  # the second PUT changes nothing, so it publishes nothing
        assert (await client.put(url, headers=admin.auth)).status_code == 204
    assert (await client.delete(url, headers=admin.auth)).status_code == 204
    assert (await client.delete(url, headers=admin.auth)).status_code == 404
    assert (await client.put(url, headers=admin.auth)).status_code == 204

    assignments = await feed.wait_for_count(ASSIGNMENTS, 3)
    assert len(assignments) == 3
    assert len(feed.changes) == 4  # the building's creation, then the three
    assert feed.changes[0].collection == BUILDINGS
    assert feed.subjects[1:] == [f"changes.{organization}.building_assignments"] * 3
    assert [(change.op, change.version) for change in assignments] == [
        (ChangeOp.UPSERT, 1),
        (ChangeOp.DELETE, 2),
        (ChangeOp.UPSERT, 3),
    ]
    link = {"building_id": building["id"], "user_id": technician.user_id}
    assert [change.data for change in assignments] == [link, None, link]
    # One assignment record, unassigned and assigned again: the same id throughout.
    assert len({change.id for change in assignments}) == 1
    assert assignments[0].id != uuid.UUID(building["id"])
    for change in assignments:
        assert change.building_id == uuid.UUID(building["id"])
        assert change.organization_id == uuid.UUID(organization)

    feed.assert_carried(await wait_until_published(runtime, organization, count=4))


async def test_each_organization_has_its_own_subjects(
    client: httpx.AsyncClient, register: Register, runtime: Runtime, change_feed: OpenFeed
) -> None:
    first = await register()
    second = await register()
    first_feed = await change_feed(first.claims["org"])
    second_feed = await change_feed(second.claims["org"])
    mine = await create_building(client, first, name="Mine")
    theirs = await create_building(client, second, name="Theirs")
    renamed = await client.patch(
        building_url(theirs["id"]), json={"name": "Theirs, renamed"}, headers=second.auth
    )
    assert renamed.status_code == 200, renamed.text

    await second_feed.wait_for_count(BUILDINGS, 2)
    assert [change.id for change in second_feed.changes] == [uuid.UUID(theirs["id"])] * 2
    assert [change.version for change in second_feed.changes] == [1, 2]
    await first_feed.wait_for_count(BUILDINGS, 1)
    # The second organization's writes are in the stream (its feed read them): none of
    # them reaches the first organization's consumer.
    await first_feed.drain()
    assert [change.id for change in first_feed.changes] == [uuid.UUID(mine["id"])]
    assert first_feed.subjects == [f"changes.{first.claims['org']}.buildings"]
    first_feed.assert_carried(await wait_until_published(runtime, first.claims["org"], count=1))
