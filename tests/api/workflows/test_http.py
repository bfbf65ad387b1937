"""Workflows over HTTP: the api forwards to a real workflows runtime over NATS."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from fieldsync.kit.runtime import Runtime
from tests.api.conftest import Account, CreateUser, Register


@pytest.fixture
async def workflows_up(start_workflows: Callable[[], Awaitable[Runtime]]) -> None:
    await start_workflows()


async def new_building(client: httpx.AsyncClient, admin: Account) -> dict[str, Any]:
    created = await client.post(
        "/api/v1/buildings", json={"name": "Pump House"}, headers=admin.auth
    )
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    assert body["workflow_status"] == "created", body
    return body


async def test_a_workflow_moves_through_its_life(
    client: httpx.AsyncClient, register: Register, create_user: CreateUser, workflows_up: None
) -> None:
    admin = await register()
    technician = await create_user(admin, "technician")
    building = await new_building(client, admin)
    workflow_id = building["workflow"]["id"]
    assign = await client.put(
        f"/api/v1/buildings/{building['id']}/assignees/{technician.user_id}", headers=admin.auth
    )
    assert assign.status_code == 204

    listed = await client.get(
        f"/api/v1/buildings/{building['id']}/workflows", headers=technician.auth
    )
    assert [item["id"] for item in listed.json()["items"]] == [workflow_id]

    started = await client.post(
        f"/api/v1/workflows/{workflow_id}/transitions",
        json={"to": "in_progress"},
        headers=technician.auth,
    )
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "in_progress"

    early = await client.post(
        f"/api/v1/workflows/{workflow_id}/transitions", json={"to": "done"}, headers=admin.auth
    )
    assert early.status_code == 409
    assert early.headers["content-type"] == "application/problem+json"

    steps = (
        await client.get(
            f"/api/v1/workflows/{workflow_id}/steps?limit=200", headers=technician.auth
        )
    ).json()
    assert steps["items"]
    for step in steps["items"]:
        done = await client.patch(
            f"/api/v1/workflows/{workflow_id}/steps/{step['id']}",
            json={"done": True, "value": "ok"},
            headers=technician.auth,
        )
        assert done.status_code == 200, done.text
        assert done.json()["completed_by"] == technician.user_id
    forbidden = await client.patch(
        f"/api/v1/workflows/{workflow_id}/steps/{steps['items'][0]['id']}",
        json={"required": False},
        headers=technician.auth,
    )
    assert forbidden.status_code == 403

    finished = await client.post(
        f"/api/v1/workflows/{workflow_id}/transitions", json={"to": "done"}, headers=admin.auth
    )
    assert finished.status_code == 200, finished.text
    reopen = await client.post(
        f"/api/v1/workflows/{workflow_id}/transitions",
        json={"to": "in_progress"},
        headers=technician.auth,
    )
    assert reopen.status_code in (403, 409)  # technicians may not reopen
    illegal = await client.post(
        f"/api/v1/workflows/{workflow_id}/transitions", json={"to": "open"}, headers=admin.auth
    )
    assert illegal.status_code == 409
    assert illegal.json()["allowed"] == ["in_progress"]


async def test_stale_versions_scope_and_isolation(
    client: httpx.AsyncClient, register: Register, create_user: CreateUser, workflows_up: None
) -> None:
    admin = await register()
    other = await register()
    unassigned = await create_user(admin, "technician")
    building = await new_building(client, admin)
    workflow = building["workflow"]
    url = f"/api/v1/workflows/{workflow['id']}"

    renamed = await client.patch(
        url, json={"name": "Boiler check"}, headers={**admin.auth, "If-Match": '"1"'}
    )
    assert renamed.status_code == 200, renamed.text
    stale = await client.patch(url, json={"name": "Again", "version": 1}, headers=admin.auth)
    assert stale.status_code == 409
    assert stale.json()["current"]["name"] == "Boiler check"

    assert (await client.get(url, headers=other.auth)).status_code == 404
    assert (await client.get(url, headers=unassigned.auth)).status_code == 404
    assert (await client.patch(url, json={"name": "x"}, headers=unassigned.auth)).status_code == 403
    bad = await client.patch(url, json={"name": None}, headers=admin.auth)
    assert bad.status_code == 422
    created = await client.post(
        "/api/v1/workflows",
        json={"building_id": building["id"], "name": "Follow-up"},
        headers={**admin.auth, "Idempotency-Key": "follow-up-1"},
    )
    assert created.status_code == 201, created.text
    again = await client.post(
        "/api/v1/workflows",
        json={"building_id": building["id"], "name": "Follow-up"},
        headers={**admin.auth, "Idempotency-Key": "follow-up-1"},
    )
    assert again.json()["id"] == created.json()["id"]
    deleted = await client.delete(f"/api/v1/workflows/{created.json()['id']}", headers=admin.auth)
    assert deleted.status_code == 204
    assert (
        await client.get(f"/api/v1/workflows/{created.json()['id']}", headers=admin.auth)
    ).status_code == 404
