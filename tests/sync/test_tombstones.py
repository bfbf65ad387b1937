"""Deletes are remembered for the horizon; a checkpoint from before a purge gets 410."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx

from fieldsync.contracts.changes import Change, new_change
from fieldsync.kit.runtime import Runtime
from fieldsync.sync.ingest.writer import LOCK_ORGANIZATION, write_batch
from fieldsync.sync.tombstones import purge_once
from tests.sync.conftest import (
    PULL,
    Register,
    Replica,
    create_building,
    has_workflows,
    pulled_until,
)
from tests.workflows.support import eventually


async def test_a_checkpoint_older_than_purged_tombstones_is_gone(
    client: httpx.AsyncClient, register: Register, runtime: Runtime
) -> None:
    admin = await register()
    kept = await create_building(client, admin, name="Kept")
    doomed = await create_building(client, admin, name="Doomed")
    old = Replica(admin)
    await pulled_until(client, old, has_workflows(2))
    stale_checkpoint = old.checkpoint

    deleted = await client.delete(f"/api/v1/buildings/{doomed['id']}", headers=admin.auth)
    assert deleted.status_code == 204
    current = Replica(admin, checkpoint=stale_checkpoint, records=dict(old.records))
    # The building's delete, then its workflow's (the workflows service follows it).
    await pulled_until(
        client,
        current,
        lambda r: (
            doomed["id"] not in r.of("buildings")
            and len(r.of("workflows")) == 1
            and {step["workflow_id"] for step in r.of("workflow_steps").values()}
            == set(r.of("workflows"))
        ),
    )

    # Within the horizon the old checkpoint still gets the deletes.
    within = await client.post(PULL, json={"checkpoint": stale_checkpoint}, headers=admin.auth)
    assert within.status_code == 200
    assert {"collection": "buildings", "id": doomed["id"], "op": "delete", "data": None} in (
        within.json()["changes"]
    )

    assert await purge_once(runtime.databases["sync"], horizon_seconds=0) > 0

    gone = await client.post(PULL, json={"checkpoint": stale_checkpoint}, headers=admin.auth)
    assert gone.status_code == 410
    assert gone.headers["content-type"] == "application/problem+json"
    assert gone.json()["type"] == "urn:fieldsync:problem:gone"
    # A client already past the deletes is unaffected; one starting over gets the rest.
    assert (
        await client.post(PULL, json={"checkpoint": current.checkpoint}, headers=admin.auth)
    ).status_code == 200
    restarted = Replica(admin)
    await restarted.pull(client)
    assert set(restarted.of("buildings")) == {kept["id"]}
    assert restarted.records == current.records


async def test_malformed_pulls_are_refused_with_problems(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    for body in (
        {"checkpoint": "not-a-checkpoint"},
        {"checkpoint": "YzE6eHl6"},  # base64 of "c1:xyz"
        {"checkpoint": 5},
        {"checkpoint": None, "limit": 0},
        {"checkpoint": None, "limit": 1001},
        {"checkpoint": None, "limit": "many"},
        {"checkpoint": None, "extra": True},
        {"checkpoint": "x" * 500},
    ):
        response = await client.post(PULL, json=body, headers=admin.auth)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    not_json = await client.post(
        PULL, content=b"{", headers={**admin.auth, "content-type": "application/json"}
    )
    assert not_json.status_code in (400, 422)
    assert (await client.post(PULL, json={"checkpoint": None})).status_code == 401
    # A checkpoint from the future (another server, a restored database) starts over too.
    future = await client.post(PULL, json={"checkpoint": "YzE6OTk5OTk5"}, headers=admin.auth)
    assert future.status_code == 410


async def test_a_first_sync_in_pages_survives_an_earlier_purge(
    client: httpx.AsyncClient, register: Register, runtime: Runtime
) -> None:
    admin = await register()
    for index in range(3):
        await create_building(client, admin, name=f"Old {index}")
    doomed = await create_building(client, admin, name="Doomed")
    settled = Replica(admin)
    await pulled_until(client, settled, has_workflows(4))
    assert (await client.delete(f"/api/v1/buildings/{doomed['id']}", headers=admin.auth)).is_success
    await pulled_until(client, settled, has_workflows(3))
    assert await purge_once(runtime.databases["sync"], horizon_seconds=0) > 0

    # The records live at versions below the purge, but a client starting now holds
    # nothing that was deleted before it started: every page is served.
    fresh = Replica(admin)
    await fresh.pull(client, limit=2)
    assert fresh.records == settled.records


async def test_a_purge_during_a_paged_first_sync_is_gone(
    client: httpx.AsyncClient, register: Register, runtime: Runtime
) -> None:
    admin = await register()
    first = await create_building(client, admin, name="First")
    await create_building(client, admin, name="Second")
    settled = Replica(admin)
    await pulled_until(client, settled, has_workflows(2))

    page = await client.post(PULL, json={"checkpoint": None, "limit": 1}, headers=admin.auth)
    assert page.json()["has_more"] is True
    # A record the client may already hold is deleted and its tombstone purged before
    # the client asks for the next page: it could never learn of the delete.
    assert (await client.delete(f"/api/v1/buildings/{first['id']}", headers=admin.auth)).is_success
    await pulled_until(client, settled, has_workflows(1))
    assert await purge_once(runtime.databases["sync"], horizon_seconds=0) > 0

    gone = await client.post(
        PULL, json={"checkpoint": page.json()["checkpoint"], "limit": 1}, headers=admin.auth
    )
    assert gone.status_code == 410
    assert gone.headers["content-type"] == "application/problem+json"


async def test_a_purge_waits_for_a_writer_reviving_a_tombstone_instead_of_deadlocking(
    runtime: Runtime, sync_database_url: str
) -> None:
    organization, record = uuid.uuid4(), uuid.uuid4()

    def change(version: int, data: dict[str, Any] | None) -> Change:
        return new_change(
            "buildings",
            record_id=record,
            organization_id=organization,
            building_id=record,
            version=version,
            data=data,
        )

    writer = await asyncpg.connect(sync_database_url)
    try:
        await write_batch(writer, [change(2, None)])
        await writer.execute(
            "UPDATE sync_records SET changed_at = now() - interval '1 hour' WHERE record_id = $1",
            record,
        )
        async with writer.transaction():
            # A writer holds the organization's row, as the ingester and write-through do...
            await writer.fetchval(LOCK_ORGANIZATION, organization)
            purge = asyncio.create_task(purge_once(runtime.databases["sync"], horizon_seconds=60))

            async def purge_waits() -> bool:
                waiting = await writer.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
                return bool(waiting)

            await eventually(purge_waits)
            # ...and brings the tombstoned record back while the purge waits for the row.
            await write_batch(writer, [change(3, {"name": "Back"})])
        assert await asyncio.wait_for(purge, 10) == 0
        revived = await writer.fetchrow(
            "SELECT deleted, owner_version FROM sync_records WHERE record_id = $1", record
        )
        assert (revived["deleted"], revived["owner_version"]) == (False, 3)
    finally:
        await writer.execute("DELETE FROM sync_records WHERE organization_id = $1", organization)
        await writer.execute(
            "DELETE FROM sync_organizations WHERE organization_id = $1", organization
        )
        await writer.close()
