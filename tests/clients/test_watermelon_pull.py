"""GET /api/v1/sync/watermelon against the real app: first, incremental, replacement,
migration and capped pulls, and a technician's scope."""

from __future__ import annotations

import httpx
import pytest

from fieldsync.kit.runtime import Runtime
from fieldsync.sync.tombstones import purge_once
from fieldsync.sync.watermelon import pull as watermelon_pull_module
from fieldsync.workflows.templates.service import DEFAULT_STEPS
from tests.api.conftest import assert_problem
from tests.clients.watermelon_http import (
    WATERMELON,
    assignee_url,
    building,
    everything_of,
    ids,
    pulled_when,
    push,
    raw,
    synced_admin_with,
    watermelon_pull,
)
from tests.sync.conftest import CreateUser, Register, create_building
from tests.waiting import eventually


async def test_a_first_sync_gets_everything_in_scope_as_created(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    empty = await watermelon_pull(client, admin)
    assert isinstance(empty["timestamp"], int)
    assert empty["timestamp"] >= 1
    assert set(empty["changes"]) == {"buildings", "workflows", "workflow_steps"}

    depot = await create_building(client, admin, name="Depot", floors=3)
    body = await pulled_when(client, admin, everything_of([depot["id"]]))
    changes = body["changes"]
    [pulled] = changes["buildings"]["created"]
    assert pulled["id"] == depot["id"]
    assert pulled["name"] == "Depot"
    assert pulled["floors"] == 3
    assert isinstance(pulled["updated_at"], int)  # milliseconds, as WatermelonDB keeps dates
    assert all(not changes[t]["updated"] and not changes[t]["deleted"] for t in changes)
    assert body["timestamp"] > empty["timestamp"]
    assert body["has_more"] is False
    assert "experimentalStrategy" not in body


async def test_later_pulls_get_changes_as_updated_and_deletes(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    (kept, doomed), timestamp = await synced_admin_with(client, admin, 2)
    patched = await client.patch(
        f"/api/v1/buildings/{kept['id']}", json={"city": "Bern"}, headers=admin.auth
    )
    assert patched.status_code == 200, patched.text
    deleted = await client.delete(f"/api/v1/buildings/{doomed['id']}", headers=admin.auth)
    assert deleted.status_code == 204

    body = await pulled_when(
        client,
        admin,
        lambda b: (
            doomed["id"] in ids(b["changes"], "buildings", "deleted")
            and len(b["changes"]["workflows"]["deleted"]) == 1
        ),
        last_pulled_at=timestamp,
    )
    changes = body["changes"]
    assert [b["city"] for b in changes["buildings"]["updated"]] == ["Bern"]
    assert ids(changes, "buildings", "updated") == {kept["id"]}
    assert all(not changes[t]["created"] for t in changes)
    assert body["timestamp"] > timestamp

    # Once the server's follow-up changes (the workflow's steps) are pulled, a pull
    # with nothing new returns nothing, and the same timestamp.
    latest = body["timestamp"]

    async def nothing_new() -> bool:
        nonlocal latest
        again = await watermelon_pull(client, admin, latest)
        if any(any(changes.values()) for changes in again["changes"].values()):
            latest = again["timestamp"]
            return False
        assert again["timestamp"] == latest
        return True

    await eventually(nothing_new)


async def test_a_cursor_past_the_tombstone_horizon_gets_a_replacement(
    client: httpx.AsyncClient, register: Register, runtime: Runtime
) -> None:
    admin = await register()
    (kept, doomed), timestamp = await synced_admin_with(client, admin, 2)
    assert (
        await client.delete(f"/api/v1/buildings/{doomed['id']}", headers=admin.auth)
    ).status_code == 204
    await pulled_when(
        client,
        admin,
        lambda b: len(b["changes"]["workflows"]["deleted"]) == 1,
        last_pulled_at=timestamp,
    )
    assert await purge_once(runtime.databases["sync"], horizon_seconds=0) > 0

    body = await watermelon_pull(client, admin, timestamp)
    assert body["experimentalStrategy"] == "replacement"
    changes = body["changes"]
    assert ids(changes, "buildings", "updated") == {kept["id"]}
    assert len(changes["workflows"]["updated"]) == 1
    assert all(not changes[t]["deleted"] and not changes[t]["created"] for t in changes)
    # A push from before the purge would miss the deletes: refused until it pulls.
    assert_problem(
        await push(client, admin, timestamp, {"buildings": {"updated": [raw(kept, name="x")]}}),
        409,
    )
    # Not from this server (ahead of its feed): a replacement too.
    ahead = await watermelon_pull(client, admin, body["timestamp"] + 1000)
    assert ahead["experimentalStrategy"] == "replacement"
    # The new timestamp is an ordinary one.
    assert "experimentalStrategy" not in await watermelon_pull(client, admin, body["timestamp"])


async def test_a_migration_sync_gets_the_tables_it_asks_for(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    [existing], timestamp = await synced_admin_with(client, admin, 1)
    unrelated = '{"from": 1, "tables": ["local_drafts"], "columns": []}'
    plain = await watermelon_pull(client, admin, timestamp, migration=unrelated)
    assert "experimentalStrategy" not in plain
    assert not plain["changes"]["buildings"]["updated"]

    added = '{"from": 1, "tables": [], "columns": [{"table": "buildings", "columns": ["notes"]}]}'
    migrated = await watermelon_pull(client, admin, timestamp, migration=added)
    assert migrated["experimentalStrategy"] == "replacement"
    assert ids(migrated["changes"], "buildings", "updated") == {existing["id"]}
    assert len(migrated["changes"]["workflow_steps"]["updated"]) == len(DEFAULT_STEPS)


async def test_a_pull_over_the_cap_comes_in_parts_at_version_boundaries(
    client: httpx.AsyncClient, register: Register, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = await register()
    made, _ = await synced_admin_with(client, admin, 3)
    everything = await watermelon_pull(client, admin)
    monkeypatch.setattr(watermelon_pull_module, "PAGE_SIZE", 2)
    monkeypatch.setattr(watermelon_pull_module, "MAX_CHANGES", 2)

    first = await watermelon_pull(client, admin)
    assert first["has_more"] is True
    received = {t: {r["id"] for r in first["changes"][t]["created"]} for t in first["changes"]}
    timestamp = first["timestamp"]
    parts = 1
    while True:
        part = await watermelon_pull(client, admin, timestamp)
        parts += 1
        for table, changes in part["changes"].items():
            received[table] |= {r["id"] for r in changes["updated"]}
        timestamp = part["timestamp"]
        if not part["has_more"]:
            break
    assert parts > 2
    assert timestamp == everything["timestamp"]
    assert received == {
        t: {r["id"] for r in everything["changes"][t]["created"]} for t in everything["changes"]
    }
    assert {b["id"] for b in made} == received["buildings"]

    # A replacement is never split: over its cap it is refused, saying what to do.
    monkeypatch.setattr(watermelon_pull_module, "MAX_REPLACEMENT_CHANGES", 2)
    too_big = await client.get(
        WATERMELON, params={"last_pulled_at": str(timestamp + 1000)}, headers=admin.auth
    )
    assert "last_pulled_at=null" in assert_problem(too_big, 413)["detail"]


async def test_a_technician_syncs_only_assigned_buildings(
    client: httpx.AsyncClient, register: Register, create_user: CreateUser
) -> None:
    admin = await register()
    technician = await create_user(admin, "technician")
    (assigned, other), _ = await synced_admin_with(client, admin, 2)
    put = await client.put(assignee_url(assigned["id"], technician.user_id), headers=admin.auth)
    assert put.status_code == 204
    body = await pulled_when(
        client, technician, lambda b: len(b["changes"]["workflow_steps"]["created"]) > 0
    )
    changes = body["changes"]
    assert ids(changes, "buildings", "created") == {assigned["id"]}
    assert len(changes["workflow_steps"]["created"]) == len(DEFAULT_STEPS)
    [workflow] = changes["workflows"]["created"]
    step = changes["workflow_steps"]["created"][0]
    timestamp = body["timestamp"]

    # A technician may tick steps, not rename buildings; either way nothing else applies.
    forbidden = await push(
        client,
        technician,
        timestamp,
        {
            "buildings": {"updated": [raw(assigned, name="Mine")]},
            "workflow_steps": {"updated": [raw(step, done=True)]},
        },
    )
    assert_problem(forbidden, 403)
    invisible = await push(client, technician, timestamp, {"buildings": {"deleted": [other["id"]]}})
    assert invisible.status_code == 200  # not in their scope: as if it did not exist
    assert (await building(client, admin, other["id"])).status_code == 200
    ticked = await push(
        client,
        technician,
        timestamp,
        {"workflow_steps": {"updated": [raw(step, done=True, value="12 bar")]}},
    )
    assert ticked.status_code == 200, ticked.text

    # The assignment ends: everything of the building arrives as deletes.
    removed = await client.delete(
        assignee_url(assigned["id"], technician.user_id), headers=admin.auth
    )
    assert removed.status_code == 204
    gone = await pulled_when(
        client,
        technician,
        lambda b: assigned["id"] in ids(b["changes"], "buildings", "deleted"),
        last_pulled_at=timestamp,
    )
    assert ids(gone["changes"], "workflows", "deleted") == {workflow["id"]}
    assert len(gone["changes"]["workflow_steps"]["deleted"]) == len(DEFAULT_STEPS)
