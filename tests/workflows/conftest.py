"""Fixtures for the workflows service: its own migrated database, and a runtime hosting it.

The runtime lives for one test module: modules that serve the handlers themselves (the
replica test) then have the `workflows` queue group to themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fieldsync.kit.db.engine import Database
from fieldsync.kit.embedded.nats import NatsEndpoints
from fieldsync.kit.messaging import Bus
from fieldsync.kit.runtime import Endpoints, Runtime
from fieldsync.kit.settings import Settings
from fieldsync.workflows.service import SERVICE
from tests.workflows.support import Client


@pytest.fixture(scope="session")
def workflows_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings of the in-test runtimes (server URLs come from the fixtures)."""
    data_dir: Path = tmp_path_factory.mktemp("workflows")
    return Settings(data_dir=data_dir, node_lease_seconds=30, db_pool_size=5)


@pytest.fixture(scope="module")
async def workflows_runtime(
    nats_server: NatsEndpoints, workflows_database_url: str, workflows_settings: Settings
) -> AsyncIterator[Runtime]:
    """A started runtime hosting the workflows service, its handlers subscribed."""
    endpoints = Endpoints(
        nats_url=nats_server.url,
        nats_monitor_url=nats_server.monitor_url,
        database_urls={"workflows": workflows_database_url},
        redis_url=None,
    )
    runtime = Runtime(workflows_settings, endpoints, [SERVICE])
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


@pytest.fixture
def workflows(bus: Bus, workflows_runtime: Runtime) -> Client:
    """A client of the workflows subjects, with the service running."""
    return Client(bus)


@pytest.fixture
def database(workflows_runtime: Runtime) -> Database:
    """The workflows database, to check what the service stored."""
    return workflows_runtime.databases["workflows"]
