"""Calling /api/v1/sync/watermelon as WatermelonDB's `synchronize()` does, for the tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson

from fieldsync.workflows.templates.service import DEFAULT_STEPS
from tests.sync.conftest import Account, create_building
from tests.waiting import eventually

WATERMELON = "/api/v1/sync/watermelon"
Changes = dict[str, dict[str, list[Any]]]


async def watermelon_pull(
    client: httpx.AsyncClient, account: Account, last_pulled_at: int | None = None, **params: Any
) -> dict[str, Any]:
    """One WatermelonDB pull, as `synchronize()` sends it."""
    query = {"last_pulled_at": "null" if last_pulled_at is None else str(last_pulled_at)}
    query.update({"schema_version": "1", "migration": "null", **params})
    response = await client.get(WATERMELON, params=query, headers=account.auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def pulled_when(
    client: httpx.AsyncClient,
    account: Account,
    condition: Callable[[dict[str, Any]], bool],
    last_pulled_at: int | None = None,
) -> dict[str, Any]:
    """Pull until `condition` holds for the reply (the replica catches up asynchronously)."""
    found: dict[str, Any] = {}

    async def check() -> bool:
        found.update(await watermelon_pull(client, account, last_pulled_at))
        return condition(found)

    await eventually(check)
    return found


def ids(changes: Changes, table: str, kind: str) -> set[str]:
    """The ids of one table's created, updated (records) or deleted (ids) changes."""
    entries = changes[table][kind]
    return {entry if isinstance(entry, str) else entry["id"] for entry in entries}


def everything_of(building_ids: list[str]) -> Callable[[dict[str, Any]], bool]:
    """The pull holds these buildings, each with its workflow and steps (as created)."""

    def check(body: dict[str, Any]) -> bool:
        changes = body["changes"]
        return set(building_ids) <= ids(changes, "buildings", "created") and len(
            changes["workflow_steps"]["created"]
        ) == len(building_ids) * len(DEFAULT_STEPS)

    return check


async def push(
    client: httpx.AsyncClient, account: Account, last_pulled_at: int, changes: Any
) -> httpx.Response:
    """One WatermelonDB push."""
    return await client.post(
        WATERMELON,
        params={"last_pulled_at": str(last_pulled_at)},
        content=orjson.dumps(changes),
        headers={**account.auth, "Content-Type": "application/json"},
    )


async def building(client: httpx.AsyncClient, account: Account, building_id: str) -> httpx.Response:
    """The building as the api serves it."""
    return await client.get(f"/api/v1/buildings/{building_id}", headers=account.auth)


def raw(record: dict[str, Any], **changed: Any) -> dict[str, Any]:
    """A record as WatermelonDB pushes it: every column, plus its sync bookkeeping."""
    return {**record, **changed, "_status": "updated", "_changed": ",".join(changed)}


async def synced_admin_with(
    client: httpx.AsyncClient, admin: Account, count: int
) -> tuple[list[dict[str, Any]], int]:
    """`count` new buildings, and a first pull's timestamp that has them all."""
    made = [await create_building(client, admin, name=f"B{n}") for n in range(count)]
    body = await pulled_when(client, admin, everything_of([b["id"] for b in made]))
    pulled = {b["id"]: b for b in body["changes"]["buildings"]["created"]}
    return [pulled[b["id"]] for b in made], body["timestamp"]


def assignee_url(building_id: str, user_id: str) -> str:
    return f"/api/v1/buildings/{building_id}/assignees/{user_id}"
