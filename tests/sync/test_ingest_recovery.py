"""The ingester after a leader stopped mid-batch: what that leader took but never
handled still reaches the replica."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from fieldsync.contracts.changes import CHANGES_STREAM
from fieldsync.kit.runtime import Endpoints, Runtime
from fieldsync.kit.settings import Settings
from fieldsync.sync.ingest.ingester import INGEST_CONSUMER, ingest
from tests.sync.conftest import Register, Replica, create_building, pulled_until, without_ingester


@pytest.fixture
async def runtime(settings: Settings, endpoints: Endpoints) -> AsyncIterator[Runtime]:
    """Sync without its ingester: the test plays the stopped leader, then starts one."""
    started = without_ingester(settings, endpoints)
    await started.start()
    yield started
    await started.stop()


async def test_a_batch_taken_by_a_stopped_leader_reaches_the_replica(
    client: httpx.AsyncClient, register: Register, runtime: Runtime
) -> None:
    admin = await register()
    jetstream = runtime.bus.jetstream
    await jetstream.ensure_stream(CHANGES_STREAM)
    await jetstream.ensure_consumer(INGEST_CONSUMER)
    taken = await create_building(client, admin, name="Taken by a stopped leader")

    # The stopped leader fetched through the building's change and never acked it.
    stopped = await jetstream.pull(INGEST_CONSUMER)
    deadline = time.monotonic() + 10.0
    try:
        while True:
            assert time.monotonic() < deadline, "the building's change never came"
            batch = await stopped.fetch(1000, timeout=1.0)
            if any(taken["id"].encode() in message.data for message in batch):
                break
    finally:
        await stopped.close()
    after = await create_building(client, admin, name="Created after the stop")

    # The next leader's first ack covers everything delivered before it, the taken
    # change included: it must have been delivered again, and written, by then.
    leader = asyncio.create_task(ingest(runtime))
    try:
        replica = await pulled_until(
            client, Replica(admin), lambda replica: after["id"] in replica.of("buildings")
        )
        assert replica.of("buildings")[taken["id"]]["name"] == "Taken by a stopped leader"
    finally:
        leader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await leader
