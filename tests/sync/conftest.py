"""A runtime hosting api, workflows and sync together, as `fieldsync up` does."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn

from fieldsync.api.service import SERVICE as API
from fieldsync.kit.embedded.nats import NatsEndpoints, free_port
from fieldsync.kit.http.app import create_app
from fieldsync.kit.runtime import Endpoints, Runtime
from fieldsync.kit.settings import Settings
from fieldsync.sync.ingest.ingester import ingest
from fieldsync.sync.service import SERVICE as SYNC
from fieldsync.workflows.service import SERVICE as WORKFLOWS
from fieldsync.workflows.templates.service import DEFAULT_STEPS
from tests.api.conftest import (  # noqa: F401 - fixtures, re-exported for these tests
    Account,
    CreateUser,
    Register,
    create_user,
    register,
)
from tests.waiting import eventually, until

PULL = "/api/v1/sync/pull"
PUSH = "/api/v1/sync/push"


@pytest.fixture
def endpoints(
    nats_server: NatsEndpoints,
    api_database_url: str,
    workflows_database_url: str,
    sync_database_url: str,
    redis_url: str,
) -> Endpoints:
    """Every server address of a runtime hosting all three services."""
    return Endpoints(
        nats_url=nats_server.url,
        nats_monitor_url=nats_server.monitor_url,
        database_urls={
            "api": api_database_url,
            "workflows": workflows_database_url,
            "sync": sync_database_url,
        },
        redis_url=redis_url,
    )


@pytest.fixture
async def runtime(settings: Settings, endpoints: Endpoints) -> AsyncIterator[Runtime]:
    """A started runtime hosting api, workflows and sync."""
    started = Runtime(settings, endpoints, [API, WORKFLOWS, SYNC])
    await started.start()
    yield started
    await started.stop()


def without_ingester(settings: Settings, endpoints: Endpoints) -> Runtime:
    """A runtime like `runtime`'s whose sync service does not ingest CHANGES (a test
    starts `ingest` itself, or checks what reaches the replica without it)."""
    sync = dataclasses.replace(
        SYNC, background=tuple(task for task in SYNC.background if task is not ingest)
    )
    return Runtime(settings, endpoints, [API, WORKFLOWS, sync])


@dataclass
class Replica:
    """What one client has pulled: records by (collection, id), and its checkpoint."""

    account: Account
    checkpoint: str | None = None
    records: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    async def pull(self, client: httpx.AsyncClient, *, limit: int = 500) -> list[dict[str, Any]]:
        """Pull until nothing more waits; every change received, in order."""
        received: list[dict[str, Any]] = []
        while True:
            response = await client.post(
                PULL,
                json={"checkpoint": self.checkpoint, "limit": limit},
                headers=self.account.auth,
            )
            assert response.status_code == 200, response.text
            page = response.json()
            for change in page["changes"]:
                key = (change["collection"], change["id"])
                if change["op"] == "delete":
                    self.records.pop(key, None)
                else:
                    self.records[key] = change["data"]
            received.extend(page["changes"])
            self.checkpoint = page["checkpoint"]
            if not page["has_more"]:
                return received

    def of(self, collection: str) -> dict[str, dict[str, Any]]:
        """This client's records of one collection, by id."""
        return {key[1]: data for key, data in self.records.items() if key[0] == collection}


def has_workflows(count: int) -> Callable[[Replica], bool]:
    """The client holds `count` default workflows, each with all its template steps."""

    def check(replica: Replica) -> bool:
        steps = replica.of("workflow_steps").values()
        return len(replica.of("workflows")) == count and len(steps) == count * len(DEFAULT_STEPS)

    return check


async def pulled_until(
    client: httpx.AsyncClient,
    replica: Replica,
    condition: Callable[[Replica], bool],
) -> Replica:
    """Pull until `condition` holds for the client's copy (changes arrive asynchronously)."""

    async def check() -> bool:
        await replica.pull(client)
        return condition(replica)

    await eventually(check)
    return replica


async def create_building(
    client: httpx.AsyncClient, account: Account, **fields: Any
) -> dict[str, Any]:
    """POST a building through the api; its body."""
    body = {"name": f"Building {uuid.uuid4().hex[:6]}", **fields}
    response = await client.post("/api/v1/buildings", json=body, headers=account.auth)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


Push = Callable[..., Awaitable[httpx.Response]]


@pytest.fixture
async def live_url(runtime: Runtime) -> AsyncIterator[str]:
    """The app served by uvicorn on a real socket (streams need a real connection)."""
    port = free_port()
    config = uvicorn.Config(
        create_app(runtime), host="127.0.0.1", port=port, log_config=None, lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await until(lambda: server.started)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task
