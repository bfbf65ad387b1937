"""Calls of the RxDB endpoints and the documents an RxDB client sends, for the tests."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx

from tests.api.conftest import Account

RXDB = "/api/v1/sync/rxdb"
PROBLEM_JSON = "application/problem+json"
WORKFLOW_BACKLOG_SECONDS = 120.0


def url(collection: str, action: str, schema_version: int = 0) -> str:
    return f"{RXDB}/{collection}/{schema_version}/{action}"


def building(name: str, **fields: Any) -> dict[str, Any]:
    """A new building as an RxDB client holds it (every field, server fields unset)."""
    return {
        "id": str(uuid.uuid4()),
        "name": name,
        "address": None,
        "city": fields.pop("city", "Bern"),
        "country": None,
        "latitude": None,
        "longitude": None,
        "floors": fields.pop("floors", 2),
        "notes": None,
        "_deleted": False,
        **fields,
    }


async def push(
    http: httpx.AsyncClient,
    account: Account,
    rows: list[dict[str, Any]],
    collection: str = "buildings",
) -> list[dict[str, Any]]:
    response = await http.post(url(collection, "push"), json=rows, headers=account.auth)
    assert response.status_code == 200, response.text
    conflicts: list[dict[str, Any]] = response.json()
    return conflicts


async def pull(
    http: httpx.AsyncClient, account: Account, collection: str = "buildings", **params: Any
) -> dict[str, Any]:
    response = await http.get(url(collection, "pull"), params=params, headers=account.auth)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def pull_all(
    http: httpx.AsyncClient, account: Account, collection: str = "buildings"
) -> dict[str, dict[str, Any]]:
    """Every document of the collection, by id, as a client replicating from scratch."""
    documents: dict[str, dict[str, Any]] = {}
    checkpoint = {"id": "", "lwt": 0}
    while True:
        page = await pull(http, account, collection, limit=1000, **checkpoint)
        if not page["documents"]:
            return documents
        documents.update({document["id"]: document for document in page["documents"]})
        checkpoint = page["checkpoint"]


def created(document: dict[str, Any]) -> dict[str, Any]:
    return {"newDocumentState": document}


def changed(before: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"newDocumentState": {**before, **fields}, "assumedMasterState": before}


def is_problem(response: httpx.Response, status: int) -> bool:
    return response.status_code == status and response.headers["content-type"].startswith(
        PROBLEM_JSON
    )


def assignee_url(building_id: str, user_id: str) -> str:
    return f"/api/v1/buildings/{building_id}/assignees/{user_id}"


async def sse_data(lines: AsyncIterator[str]) -> Any:
    """The next `data:` payload of an event stream (comments are skipped)."""
    async for line in lines:
        if line.startswith("data: "):
            return json.loads(line[len("data: ") :])
    raise AssertionError("the stream ended")
