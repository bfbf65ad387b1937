"""Write-through: a push's own changes reach the replica with the owner's answer, and
the stream's copies of them change nothing there."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import nats
import orjson
import pytest

from fieldsync.contracts.changes import CHANGES_STREAM, Change, new_change
from fieldsync.kit.embedded.nats import NatsEndpoints
from fieldsync.kit.runtime import Endpoints, Runtime
from fieldsync.kit.settings import Settings
from fieldsync.sync.ingest.ingester import INGEST_CONSUMER, not_yet_held, parse, unpack
from fieldsync.sync.ingest.writer import write_batch
from tests.sync.conftest import (
    PUSH,
    Register,
    Replica,
    has_workflows,
    pulled_until,
    without_ingester,
)
from tests.workflows.support import eventually


def mutation(mutation_id: int, record_id: str, **fields: Any) -> dict[str, Any]:
    return {"mutation_id": mutation_id, "collection": "buildings", "id": record_id, **fields}


async def pushed(
    client: httpx.AsyncClient, headers: dict[str, str], mutations: list[dict[str, Any]]
) -> list[tuple[str, int | None]]:
    response = await client.post(
        PUSH, json={"client_id": "device-w", "mutations": mutations}, headers=headers
    )
    assert response.status_code == 200, response.text
    return [(result["status"], result.get("version")) for result in response.json()["results"]]


class TestWithoutTheIngester:
    """The sync service runs without its ingester: nothing reaches the replica by the
    stream, so whatever a pull returns came with the owners' answers."""

    @pytest.fixture
    async def runtime(self, settings: Settings, endpoints: Endpoints) -> AsyncIterator[Runtime]:
        # A push that had to wait for the stream would give up (503) quickly.
        quick = settings.model_copy(update={"sync_push_wait_seconds": 1.0})
        started = without_ingester(quick, endpoints)
        await started.start()
        yield started
        await started.stop()

    async def test_a_push_is_pulled_back_at_once(
        self, client: httpx.AsyncClient, register: Register
    ) -> None:
        admin = await register()
        replica = Replica(admin)
        await replica.pull(client)
        kept, renamed, dropped = (str(uuid.uuid4()) for _ in range(3))

        results = await pushed(
            client,
            admin.auth,
            [
                mutation(1, kept, op="upsert", data={"name": "Kept", "city": "Linz"}),
                mutation(2, renamed, op="upsert", data={"name": "Old name"}),
                mutation(3, dropped, op="upsert", data={"name": "Dropped"}),
                mutation(4, renamed, op="upsert", data={"name": "New name"}, base_version=1),
                mutation(5, dropped, op="delete", base_version=1),
            ],
        )

        assert results == [
            ("applied", 1),
            ("applied", 1),
            ("applied", 1),
            ("applied", 2),
            ("applied", 2),
        ]
        changes = await replica.pull(client)
        assert {(c["id"], c["op"]) for c in changes} >= {(kept, "upsert"), (renamed, "upsert")}
        buildings = replica.of("buildings")
        assert set(buildings) == {kept, renamed}
        assert (buildings[kept]["city"], buildings[kept]["version"]) == ("Linz", 1)
        assert (buildings[renamed]["name"], buildings[renamed]["version"]) == ("New name", 2)
        # The default workflows the new buildings get come by the stream: not here.
        assert replica.of("workflows") == {}


async def test_the_ingester_acknowledges_the_copies_it_passes_over(
    client: httpx.AsyncClient,
    register: Register,
    runtime: Runtime,
    sync_database_url: str,
    nats_server: NatsEndpoints,
) -> None:
    admin = await register()
    building = str(uuid.uuid4())
    assert await pushed(
        client, admin.auth, [mutation(1, building, op="upsert", data={"name": "Once"})]
    ) == [("applied", 1)]
    connection = await asyncpg.connect(sync_database_url)
    try:
        query = (
            "SELECT owner_version, sync_version, changed_at, change FROM sync_records"
            " WHERE collection = 'buildings' AND record_id = $1"
        )
        written = await connection.fetchrow(query, uuid.UUID(building))
        assert written is not None
        assert written["owner_version"] == 1
        # Its default workflow is published after the building's change, and the
        # ingester takes the stream in order: once the workflow is pulled, the stream's
        # copy of the building's change has been through the ingester too.
        await pulled_until(client, Replica(admin), has_workflows(1))
        assert await connection.fetchrow(query, uuid.UUID(building)) == written
    finally:
        await connection.close()

    # Whether it dropped a copy or wrote a change, the ingester acks through the end of
    # the stream once it is quiet.
    admin_client = await nats.connect(nats_server.url)
    try:
        stream = admin_client.jetstream()

        async def caught_up() -> bool:
            last = (await stream.stream_info(CHANGES_STREAM.name)).state.last_seq
            consumer = await stream.consumer_info(CHANGES_STREAM.name, INGEST_CONSUMER.durable)
            return bool(consumer.ack_floor and consumer.ack_floor.stream_seq == last)

        await eventually(caught_up)
    finally:
        await admin_client.close()


@dataclass
class Delivered:
    """What the ingester reads of a delivered message."""

    data: bytes
    subject: str = "changes.test"


async def test_the_ingester_drops_what_the_replica_holds_before_validating_it(
    sync_database_url: str,
) -> None:
    organization, building = uuid.uuid4(), uuid.uuid4()

    def change(version: int, name: str) -> Change:
        return new_change(
            "buildings",
            record_id=building,
            organization_id=organization,
            building_id=building,
            version=version,
            data={"name": name},
        )

    def delivered(change: Change) -> Delivered:
        return Delivered(change.model_dump_json().encode())

    connection = await asyncpg.connect(sync_database_url)
    try:
        (written,) = await write_batch(connection, [change(3, "Written through")])
        older, copy, newer = (
            delivered(change(2, "Older")),
            delivered(change(3, "Copy")),
            delivered(change(4, "Newer")),
        )
        malformed = Delivered(b'{"collection": "buildings", "id": "not a uuid", "version": 5}')
        assignment = Delivered(b'{"collection": "assignments", "id": "x", "version": 1}')
        batch = [
            older,
            Delivered(b"[" + copy.data + b"," + malformed.data + b"]"),
            newer,
            assignment,
        ]

        # The older change and the stream's copy of what is held go; what is newer, and
        # whatever cannot be read that way, stay for validation (which skips the bad).
        fresh = await not_yet_held(connection, unpack(batch))  # type: ignore[arg-type]
        assert fresh == [orjson.loads(m.data) for m in (malformed, newer, assignment)]
        (poke,) = await write_batch(connection, parse(fresh))
        assert poke.version == written.version + 1
        name = await connection.fetchval(
            "SELECT change::jsonb -> 'data' ->> 'name' FROM sync_records"
            " WHERE collection = 'buildings' AND record_id = $1",
            building,
        )
        assert name == "Newer"
    finally:
        await connection.execute(
            "DELETE FROM sync_records WHERE organization_id = $1", organization
        )
        await connection.execute(
            "DELETE FROM sync_organizations WHERE organization_id = $1", organization
        )
        await connection.close()
