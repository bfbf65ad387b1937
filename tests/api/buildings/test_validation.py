"""What a building may hold: bounds of every field, unknown fields, client-chosen ids."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.api.buildings.conftest import (
    BUILDINGS,
    building_url,
    create_building,
    get_building,
    listed_ids,
)
from tests.api.conftest import Register, assert_problem


def error_locs(body: dict[str, Any]) -> list[list[Any]]:
    return [error["loc"] for error in body["errors"]]


async def test_fields_at_their_bounds_are_stored_as_given(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    lowest = await create_building(
        client,
        admin,
        name="N",
        address="",
        city="Berlin",
        country="DE",
        latitude=-90,
        longitude=-180,
        floors=0,
        notes="",
    )
    highest = await create_building(
        client,
        admin,
        name="n" * 200,
        address="a" * 500,
        country="nz",  # case-insensitive on input, upper-case when stored
        latitude=90,
        longitude=180,
        floors=300,
        notes="Key at the front desk.\nAsk for Jo. ✓",
    )
    precise = await create_building(client, admin, latitude=52.520008, longitude=-13.404954)

    assert (lowest["latitude"], lowest["longitude"], lowest["floors"]) == (-90, -180, 0)
    assert (lowest["country"], lowest["city"], lowest["address"], lowest["notes"]) == (
        "DE",
        "Berlin",
        "",
        "",
    )
    assert (highest["latitude"], highest["longitude"], highest["floors"]) == (90, 180, 300)
    assert highest["name"] == "n" * 200
    assert highest["country"] == "NZ"
    assert highest["notes"] == "Key at the front desk.\nAsk for Jo. ✓"
    assert (precise["latitude"], precise["longitude"]) == (52.520008, -13.404954)
    minimal = await create_building(client, admin, name="Only a name")
    for field in ("address", "city", "country", "latitude", "longitude", "floors", "notes"):
        assert minimal[field] is None, field
    # What POST answered is what GET reads back.
    for created in (lowest, highest, precise, minimal):
        stored = await get_building(client, admin, created["id"])
        assert stored == {
            key: value
            for key, value in created.items()
            if key not in {"workflow", "workflow_status"}
        }


INVALID_CREATES: list[tuple[dict[str, Any], str]] = [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "n" * 201}, "name"),
    ({"name": None}, "name"),
    ({"name": "Nul\x00byte"}, "name"),
    ({"name": "B", "country": "XX"}, "country"),
    ({"name": "B", "country": "DEU"}, "country"),
    ({"name": "B", "country": "D"}, "country"),
    ({"name": "B", "latitude": 90.000001}, "latitude"),
    ({"name": "B", "latitude": -91}, "latitude"),
    ({"name": "B", "latitude": "north"}, "latitude"),
    ({"name": "B", "longitude": 180.5}, "longitude"),
    ({"name": "B", "longitude": -180.000001}, "longitude"),
    ({"name": "B", "floors": -1}, "floors"),
    ({"name": "B", "floors": 301}, "floors"),
    ({"name": "B", "floors": 2.5}, "floors"),
    ({"name": "B", "address": "a" * 501}, "address"),
    ({"name": "B", "city": ""}, "city"),
    ({"name": "B", "notes": "n" * 5001}, "notes"),
    ({"name": "B", "notes": "nul\x00"}, "notes"),
    ({"name": "B", "colour": "red"}, "colour"),
    ({"name": "B", "organization_id": str(uuid.uuid4())}, "organization_id"),
    ({"name": "B", "version": 3}, "version"),
    ({"name": "B", "id": "not-a-uuid"}, "id"),
]


async def test_invalid_fields_are_a_422_naming_the_field(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    for body, field in INVALID_CREATES:
        response = await client.post(BUILDINGS, json=body, headers=admin.auth)
        problem = assert_problem(response, 422)
        assert ["body", field] in error_locs(problem), (body, problem)
    assert await listed_ids(client, admin) == []  # nothing invalid was stored


async def test_patch_validates_like_create_and_name_cannot_be_null(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    building = await create_building(client, admin, name="Depot", city="Bonn", floors=2)
    url = building_url(building["id"])
    invalid: list[tuple[dict[str, Any], str]] = [
        ({"name": ""}, "name"),
        ({"name": "n" * 201}, "name"),
        ({"country": "XX"}, "country"),
        ({"country": "DEU"}, "country"),
        ({"latitude": 91}, "latitude"),
        ({"longitude": -181}, "longitude"),
        ({"floors": 301}, "floors"),
        ({"floors": -1}, "floors"),
        ({"colour": "red"}, "colour"),
        ({"id": str(uuid.uuid4())}, "id"),
        ({"version": 0}, "version"),
    ]
    for body, field in invalid:
        problem = assert_problem(await client.patch(url, json=body, headers=admin.auth), 422)
        assert ["body", field] in error_locs(problem), (body, problem)

    null_name = assert_problem(
        await client.patch(url, json={"name": None, "city": "Köln"}, headers=admin.auth), 422
    )
    assert any("name" in error["msg"] or "name" in error["loc"] for error in null_name["errors"])

    unchanged = await get_building(client, admin, building["id"])
    assert (unchanged["name"], unchanged["city"], unchanged["floors"]) == ("Depot", "Bonn", 2)
    assert unchanged["version"] == 1

    # Optional fields, unlike the name, may be cleared with null.
    cleared = await client.patch(url, json={"city": None, "floors": None}, headers=admin.auth)
    assert cleared.status_code == 200, cleared.text
    assert (cleared.json()["city"], cleared.json()["floors"]) == (None, None)
    assert cleared.json()["name"] == "Depot"


async def test_a_client_chosen_id_is_kept_and_cannot_be_taken_twice(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    chosen = str(uuid.uuid4())
    created = await client.post(
        BUILDINGS, json={"id": chosen, "name": "Offline HQ"}, headers=admin.auth
    )
    assert created.status_code == 201, created.text
    assert created.json()["id"] == chosen
    assert created.headers["Location"] == building_url(chosen)
    assert (await get_building(client, admin, chosen))["name"] == "Offline HQ"

    again = await client.post(BUILDINGS, json={"id": chosen, "name": "Dup"}, headers=admin.auth)
    assert_problem(again, 409)
    # Not within another organization either: ids are global.
    other = await register()
    elsewhere = await client.post(
        BUILDINGS, json={"id": chosen, "name": "Theirs"}, headers=other.auth
    )
    assert_problem(elsewhere, 409)
    assert await listed_ids(client, other) == []

    # A deleted building's id stays taken (sync clients may still hold it).
    gone = await client.delete(building_url(chosen), headers=admin.auth)
    assert gone.status_code == 204, gone.text
    assert_problem(
        await client.post(BUILDINGS, json={"id": chosen, "name": "Reborn"}, headers=admin.auth),
        409,
    )
    assert await listed_ids(client, admin) == []
    assert_problem(await client.get(building_url(chosen), headers=admin.auth), 404)
