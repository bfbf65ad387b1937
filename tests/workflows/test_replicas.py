"""Replicas share the `workflows` queue group: each request is handled exactly once.

Three processes' worth of replicas (each its own Bus, database pool and leased node id)
serve the routers; 300 step creations go out at once. A step's snowflake id carries the
node id of the replica that created it, so the stored steps tell who handled what.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from fieldsync.kit.db.engine import Database
from fieldsync.kit.embedded.nats import NatsEndpoints
from fieldsync.kit.ids import decompose
from fieldsync.kit.ids.lease import LeasedIds
from fieldsync.kit.messaging import Bus
from fieldsync.workflows.service import ROUTERS
from fieldsync.workflows.state import WorkflowsState, bound
from tests.workflows.support import Client, Org, rows

REQUESTS = 300
WORKFLOWS = 30


@dataclass
class Replica:
    bus: Bus
    database: Database
    leased: LeasedIds

    @property
    def node_id(self) -> int:
        assert self.leased.lease.node_id is not None
        return self.leased.lease.node_id


@pytest.fixture
async def replicas(
    nats_server: NatsEndpoints, workflows_database_url: str
) -> AsyncIterator[list[Replica]]:
    started: list[Replica] = []
    try:
        for index in range(3):
            database = Database(workflows_database_url, name=f"replica-{index}", pool_size=5)
            leased = LeasedIds(database.engine, ttl_seconds=30)
            ids = await leased.start()
            bus = await Bus.connect(nats_server.url, name=f"workflows-replica-{index}")
            started.append(Replica(bus, database, leased))
            with bound(WorkflowsState(database=database, ids=ids)):
                for router in ROUTERS:
                    await bus.serve(router)
        yield started
    finally:
        for replica in started:
            await replica.bus.close()
            with contextlib.suppress(Exception):
                await replica.leased.stop()
            await replica.database.dispose()


async def test_each_request_is_handled_once_by_one_of_three_replicas(
    bus: Bus, replicas: list[Replica]
) -> None:
    workflows = Client(bus)
    org = Org()
    created = [await workflows.create(org.manager) for _ in range(WORKFLOWS)]

    replies = await asyncio.gather(
        *(
            workflows.add_step(org.manager, created[n % WORKFLOWS].id, f"step {n}")
            for n in range(REQUESTS)
        )
    )
    assert sorted(reply.title for reply in replies) == sorted(f"step {n}" for n in range(REQUESTS))

    stored = await rows(
        replicas[0].database,
        "SELECT s.id, s.title FROM workflow_steps s JOIN workflows w ON w.id = s.workflow_id"
        " WHERE w.organization_id = :org AND s.title LIKE 'step %'",
        org=org.id,
    )
    # Exactly once: every request made one step, none made two.
    per_title = Counter(title for _, title in stored)
    assert set(per_title) == {f"step {n}" for n in range(REQUESTS)}
    assert set(per_title.values()) == {1}

    per_replica = Counter(decompose(step_id).node_id for step_id, _ in stored)
    nodes = {replica.node_id for replica in replicas}
    assert len(nodes) == 3
    assert set(per_replica) == nodes, per_replica
    assert sum(per_replica.values()) == REQUESTS
