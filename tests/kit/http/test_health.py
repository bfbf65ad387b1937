"""Health endpoints answer from real dependency checks."""

from __future__ import annotations

import httpx

from fieldsync.kit.db.engine import Database
from fieldsync.kit.runtime import Runtime


async def test_live_answers_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_checks_database_nats_and_redis(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database:api": "ok", "nats": "ok", "redis": "ok"}


async def test_ready_names_the_failed_dependency(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    healthy = runtime.databases["api"]
    runtime.databases["api"] = Database("postgresql://postgres@127.0.0.1:1/nowhere", name="api")
    try:
        response = await client.get("/health/ready")
    finally:
        await runtime.databases["api"].dispose()
        runtime.databases["api"] = healthy
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["detail"] == "not ready: database:api"
    assert problem["checks"]["nats"] == "ok"
    assert problem["checks"]["database:api"].startswith("failed")
