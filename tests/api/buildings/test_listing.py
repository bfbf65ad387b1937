"""The building list: keyset pages in every ordering, filters, and cursors it refuses."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import httpx
import orjson

from tests.api.buildings.conftest import (
    BUILDINGS,
    building_url,
    create_building,
    listed_ids,
    walk,
)
from tests.api.conftest import Account, Register, assert_problem

SORTS = ["created_at", "-created_at", "updated_at", "-updated_at", "name", "-name"]


def forged_cursor(content: Any) -> str:
    """A cursor shaped like the server's (base64 of JSON) with any content."""
    return base64.urlsafe_b64encode(orjson.dumps(content)).decode().rstrip("=")


def expected_order(buildings: list[dict[str, Any]], sort: str) -> list[str]:
    """The order the server must list `buildings` (given oldest first) in.

    Ties are broken by creation order, in the same direction as the sort.
    """
    column = sort.lstrip("-")
    created = {building["id"]: position for position, building in enumerate(buildings)}

    def key(building: dict[str, Any]) -> tuple[Any, int]:
        if column == "created_at":
            return (created[building["id"]], 0)
        if column == "updated_at":
            return (datetime.fromisoformat(building["updated_at"]), created[building["id"]])
        return (building["name"], created[building["id"]])

    ordered = sorted(buildings, key=key, reverse=sort.startswith("-"))
    return [building["id"] for building in ordered]


async def seed(client: httpx.AsyncClient, admin: Account) -> list[dict[str, Any]]:
    """Seven buildings, oldest first: names repeat (ties) and updates reorder updated_at."""
    names = ["delta", "alpha", "charlie", "alpha", "bravo", "delta", "alpha"]
    ids = [(await create_building(client, admin, name=name))["id"] for name in names]
    # Touch the second and the oldest: their updated_at now comes after everyone's.
    for building_id in (ids[1], ids[0]):
        changed = await client.patch(
            building_url(building_id), json={"floors": 1}, headers=admin.auth
        )
        assert changed.status_code == 200, changed.text
    return await walk(client, admin, BUILDINGS, limit=200)


async def test_every_sort_pages_through_each_building_once(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    buildings = await seed(client, admin)
    assert len(buildings) == 7
    by_created = [building["id"] for building in buildings]  # the default: oldest first
    assert expected_order(buildings, "updated_at")[-2:] == [by_created[1], by_created[0]]

    for sort in SORTS:
        expected = expected_order(buildings, sort)
        whole = await client.get(BUILDINGS, params={"sort": sort, "limit": 200}, headers=admin.auth)
        assert whole.status_code == 200, whole.text
        assert [item["id"] for item in whole.json()["items"]] == expected, sort
        assert whole.json()["next_cursor"] is None
        for limit in (1, 2, 3, 7):
            paged = await listed_ids(client, admin, sort=sort, limit=limit)
            assert paged == expected, (sort, limit)  # no duplicates, no gaps, same order

    exactly_full = await client.get(BUILDINGS, params={"limit": 7}, headers=admin.auth)
    assert len(exactly_full.json()["items"]) == 7
    assert exactly_full.json()["next_cursor"] is None


async def test_limits_and_cursors_the_server_did_not_issue_are_422(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    for name in ("a", "b", "c"):
        await create_building(client, admin, name=name)
    assert len(await listed_ids(client, admin, limit=200)) == 3
    for limit in (0, -1, 201, 10_000):
        assert_problem(
            await client.get(BUILDINGS, params={"limit": limit}, headers=admin.auth), 422
        )
    assert_problem(await client.get(BUILDINGS, params={"sort": "floors"}, headers=admin.auth), 422)

    issued: dict[str, str] = {}
    for sort in SORTS:
        page = await client.get(BUILDINGS, params={"sort": sort, "limit": 1}, headers=admin.auth)
        assert page.status_code == 200, page.text
        issued[sort] = page.json()["next_cursor"]
        assert issued[sort] is not None
    for sort in SORTS:
        for other, cursor in issued.items():
            response = await client.get(
                BUILDINGS, params={"sort": sort, "cursor": cursor, "limit": 1}, headers=admin.auth
            )
            if other == sort:
                assert response.status_code == 200, response.text
            else:  # a cursor is only valid in the ordering that issued it
                problem = assert_problem(response, 422)
                assert problem["errors"][0]["loc"] == ["query", "cursor"]

    garbage = [
        "!!",
        "not-a-cursor",
        "",
        "x" * 513,
        forged_cursor(["name", "a\u0000b", 1]),
        forged_cursor(["name", 42, 1]),
        forged_cursor(["name", "n" * 201, 1]),
        forged_cursor(["created_at", None, True]),
        forged_cursor(["created_at", None, -1]),
        forged_cursor(["created_at", None, 2**63]),
        forged_cursor(["created_at", None, "7"]),
        forged_cursor(["updated_at", "yesterday", 1]),
        forged_cursor(["updated_at", 1700000000, 1]),
        forged_cursor(["updated_at", "2026-01-01T00:00:00", 1]),
        forged_cursor({"kind": "name", "value": "a", "id": 1}),
        forged_cursor(["name", "a"]),
        forged_cursor("name"),
    ]
    for cursor in garbage:
        for sort in SORTS:
            response = await client.get(
                BUILDINGS, params={"sort": sort, "cursor": cursor}, headers=admin.auth
            )
            assert_problem(response, 422)


async def test_filters_search_name_and_address_city_country_and_recency(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()

    async def make(name: str, **fields: Any) -> str:
        return str((await create_building(client, admin, name=name, **fields))["id"])

    plaza = await make("100% Plaza", address="Main Street 5", city="Berlin", country="DE")
    block_a = await make("Block_A", address="Hafenstraße 2", city="berlin", country="DE")
    block_xa = await make("BlockXA", address="Ring 3", city="Hamburg", country="DE")
    tower = await make("Tower", address="10 Main Street", city="BERLIN", country="AT")
    cabin = await make("Cabin", city="München", country="DE")
    bare = await make("Shed")

    async def search(**params: Any) -> set[str]:
        return set(await listed_ids(client, admin, **params))

    assert await search(q="plaza") == {plaza}
    assert await search(q="PLAZA") == {plaza}
    assert await search(q="main street") == {plaza, tower}  # address, case-insensitive
    assert await search(q="hafenSTRASSE") == set()  # no folding beyond case
    assert await search(q="hafenstraße") == {block_a}
    assert await search(q="%") == {plaza}  # `%` is a character, not a wildcard
    assert await search(q="_") == {block_a}  # so is `_`
    assert await search(q="block_a") == {block_a}  # not BlockXA
    assert await search(q="0% p") == {plaza}
    assert await search(q="\\") == set()
    assert await search(q="nowhere") == set()

    assert await search(city="berlin") == {plaza, block_a, tower}
    assert await search(city="BERLIN") == {plaza, block_a, tower}
    assert await search(city="Berl") == set()  # city matches whole, not a part
    assert await search(city="MÜNCHEN") == {cabin}
    assert await search(country="DE") == {plaza, block_a, block_xa, cabin}
    assert await search(country="at") == {tower}
    assert await search(country="FR") == set()
    assert await search(city="berlin", country="DE") == {plaza, block_a}
    assert await search(q="block", city="Hamburg") == {block_xa}
    assert await search() == {plaza, block_a, block_xa, tower, cabin, bare}

    # updated_since: changed at or after the instant, newest writes only.
    touched = await client.patch(building_url(block_xa), json={"floors": 3}, headers=admin.auth)
    assert touched.status_code == 200, touched.text
    since = touched.json()["updated_at"]
    assert await search(updated_since=since) == {block_xa}
    assert await search(updated_since="2000-01-01T00:00:00Z") == await search()
    assert await search(updated_since="2999-01-01T00:00:00+00:00") == set()
    ordered = await listed_ids(client, admin, updated_since=since, sort="-updated_at", limit=1)
    assert ordered == [block_xa]

    for bad in ({"country": "DEU"}, {"country": "D1"}, {"updated_since": "last week"}):
        assert_problem(await client.get(BUILDINGS, params=bad, headers=admin.auth), 422)
    assert_problem(await client.get(BUILDINGS, params={"q": "x" * 201}, headers=admin.auth), 422)
