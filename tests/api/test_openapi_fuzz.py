"""Schemathesis over the OpenAPI schema, against a real `fieldsync run api` process.

At least 100 generated examples per operation, authenticated as an admin of a
freshly registered organization. No operation may answer 5xx or violate its schema.
"""

from __future__ import annotations

import secrets
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from fieldsync.kit.embedded.nats import NatsEndpoints, free_port
from tests.api.conftest import STRONG_PASSWORD
from tests.conftest import FAST_PASSWORD_HASHING
from tests.processes import Running, clean_env


@dataclass(frozen=True)
class Replicas:
    """Base URLs of the running replicas."""

    api: str
    sync: str


# Module scope: the workflows replica must be gone before other modules count the
# subscribers of queue group `workflows` on the shared NATS server.
@pytest.fixture(scope="module")
def api_process(
    nats_server: NatsEndpoints,
    api_database_url: str,
    workflows_database_url: str,
    sync_database_url: str,
    signing_key_file: Path,
    redis_url: str,
) -> Iterator[Replicas]:
    """Real api, workflows and sync replicas, as `fieldsync run` starts them."""
    port = free_port()
    env = clean_env(
        FIELDSYNC_NATS_URL=nats_server.url,
        FIELDSYNC_NATS_MONITOR_URL=nats_server.monitor_url,
        FIELDSYNC_API_DATABASE_URL=api_database_url,
        FIELDSYNC_WORKFLOWS_DATABASE_URL=workflows_database_url,
        FIELDSYNC_JWT_PRIVATE_KEY_FILE=str(signing_key_file),
        FIELDSYNC_HTTP_PORT=str(port),
        FIELDSYNC_LOG_LEVEL="warning",
        FIELDSYNC_RATE_LIMIT_PER_IP="100000/minute",
        FIELDSYNC_RATE_LIMIT_PER_USER="100000/minute",
        FIELDSYNC_RATE_LIMIT_AUTH_PER_IP="100000/minute",
        FIELDSYNC_RATE_LIMIT_FAILED_LOGINS_PER_ACCOUNT="100000/minute",
        **{f"FIELDSYNC_{key.upper()}": str(value) for key, value in FAST_PASSWORD_HASHING.items()},
    )
    workflows_port = free_port()
    workflows = Running(["run", "workflows"], {**env, "FIELDSYNC_HTTP_PORT": str(workflows_port)})
    api = Running(["run", "api"], env)
    sync_port = free_port()
    sync = Running(
        ["run", "sync"],
        {
            **env,
            "FIELDSYNC_HTTP_PORT": str(sync_port),
            "FIELDSYNC_SYNC_DATABASE_URL": sync_database_url,
        },
    )
    processes = {"workflows": workflows, "api": api, "sync": sync}
    try:
        workflows.wait_until_ready(f"http://127.0.0.1:{workflows_port}")
        base_url = f"http://127.0.0.1:{port}"
        api.wait_until_ready(base_url)
        sync.wait_until_ready(f"http://127.0.0.1:{sync_port}")
        yield Replicas(api=base_url, sync=f"http://127.0.0.1:{sync_port}")
    finally:
        codes = {name: process.stop(signal.SIGTERM) for name, process in processes.items()}
    for name, code in codes.items():
        assert code == 0, "\n".join(processes[name].lines)


@pytest.fixture(scope="module")
def admin_token(api_process: Replicas) -> str:
    """An access token of an admin in a new organization."""
    response = httpx.post(
        f"{api_process.api}/api/v1/auth/register",
        json={
            "email": f"fuzz-{secrets.token_hex(6)}@example.com",
            "password": STRONG_PASSWORD,
            "name": "Fuzz Admin",
            "organization_name": "Fuzz Org",
        },
        timeout=30,
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["access_token"]
    return token


@pytest.fixture(scope="module")
def api_schema(api_process: Replicas) -> schemathesis.BaseSchema:
    """The live OpenAPI document of the api replica."""
    return schemathesis.openapi.from_url(f"{api_process.api}/openapi.json")


@pytest.fixture(scope="module")
def sync_schema(api_process: Replicas) -> schemathesis.BaseSchema:
    """The live OpenAPI document of the sync replica."""
    return schemathesis.openapi.from_url(f"{api_process.sync}/openapi.json")


# Schemathesis's pytest plugin does not run under pytest 9, so each operation's
# strategy is driven by Hypothesis directly: same generation, same checks.
FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


# Streams never end: their behaviour is tested in tests/sync/test_realtime.py and
# tests/clients/test_rxdb_scope_stream.py.
RXDB = "/api/v1/sync/rxdb/{collection}/{schema_version}"
STREAMING = {"GET /api/v1/sync/stream", f"GET {RXDB}/pullStream"}


def fuzz_operations(schema: schemathesis.BaseSchema, token: str) -> list[str]:
    """Run every operation of `schema` (but the streams); their labels."""
    headers = {"Authorization": f"Bearer {token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        if operation.label in STREAMING:
            continue

        @FUZZ
        @given(case=operation.as_strategy())
        def fuzz(case: schemathesis.Case) -> None:
            # Signing out ends only the session's refresh token: the access token stays
            # valid for its lifetime, so every operation keeps running authenticated.
            # positive_data_acceptance is left out: business rules (a common password,
            # a wrong current password) rightly refuse some schema-valid bodies with 422.
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        fuzz()
    return [operation.label for operation in operations]


# 100 examples for each of ~40 operations: about a minute and a half on a quiet 2-core
# machine, several under load; the suite-wide 120 s would cut it short.
@pytest.mark.timeout(900)
def test_no_operation_fails_or_breaks_its_schema(
    api_schema: schemathesis.BaseSchema, admin_token: str
) -> None:
    labels = fuzz_operations(api_schema, admin_token)
    assert len(labels) >= 15, labels


@pytest.mark.timeout(600)
def test_no_sync_operation_fails_or_breaks_its_schema(
    sync_schema: schemathesis.BaseSchema, admin_token: str
) -> None:
    labels = fuzz_operations(sync_schema, admin_token)
    assert {
        "POST /api/v1/sync/pull",
        "POST /api/v1/sync/push",
        "GET /api/v1/sync/watermelon",
        "POST /api/v1/sync/watermelon",
        f"GET {RXDB}/pull",
        f"POST {RXDB}/push",
    } <= set(labels), labels
