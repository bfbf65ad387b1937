"""Errors leave the edge as problem+json: stable types, field paths, no internals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from fieldsync.kit.errors import ERRORS_BY_CODE, TooManyRequests
from fieldsync.kit.http.app import create_app
from fieldsync.kit.http.deps import database_session
from fieldsync.kit.runtime import Runtime

ApiSession = Annotated[AsyncSession, Depends(database_session("api"), scope="function")]


class Widget(BaseModel):
    name: str = Field(min_length=1, max_length=10)
    count: int = Field(ge=0)


class Created(BaseModel):
    node_id: int


def probe_router() -> APIRouter:
    router = APIRouter(prefix="/probe")

    @router.get("/raise/{code}")
    async def raise_error(code: str) -> dict[str, str]:
        cls = ERRORS_BY_CODE[code]
        if cls is TooManyRequests:
            raise TooManyRequests("slow down", retry_after=7)
        raise cls(f"raised {code}", hint="extension fields are kept")

    @router.post("/widgets")
    async def create_widget(widget: Widget) -> Widget:
        return widget

    @router.get("/boom")
    async def boom() -> dict[str, str]:
        raise RuntimeError("secret internal detail: password=hunter2")

    @router.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        return {"received": len(await request.body())}

    @router.post("/leases/{node_id}", status_code=201)
    async def insert_lease(node_id: int, session: ApiSession) -> Created:
        # No flush: the duplicate only surfaces when the edge commits.
        await session.execute(
            text(
                "INSERT INTO node_leases (node_id, holder, expires_at) "
                "VALUES (:node_id, 'probe', now() - interval '1 day')"
            ),
            {"node_id": node_id},
        )
        return Created(node_id=node_id)

    return router


@pytest.fixture
async def app(runtime: Runtime) -> FastAPI:
    application = create_app(runtime)
    application.include_router(probe_router())
    return application


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://fieldsync.test") as client:
        yield client


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("validation", 422),
        ("bad-request", 400),
        ("unauthorized", 401),
        ("forbidden", 403),
        ("not-found", 404),
        ("conflict", 409),
        ("payload-too-large", 413),
        ("unavailable", 503),
    ],
)
async def test_each_error_kind_has_its_status_and_stable_type(
    http: httpx.AsyncClient, code: str, status: int
) -> None:
    response = await http.get(f"/probe/raise/{code}")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == f"urn:fieldsync:problem:{code}"
    assert problem["status"] == status
    assert problem["detail"] == f"raised {code}"
    assert problem["hint"] == "extension fields are kept"
    assert problem["instance"] == f"/probe/raise/{code}"


async def test_too_many_requests_sets_retry_after(http: httpx.AsyncClient) -> None:
    response = await http.get("/probe/raise/too-many-requests")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["retry_after"] == 7


async def test_request_validation_lists_field_paths_without_echoing_input(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post("/probe/widgets", json={"name": "", "count": -1, "x": "y"})
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"] == "urn:fieldsync:problem:validation"
    locations = sorted(tuple(error["loc"]) for error in problem["errors"])
    assert locations == [("body", "count"), ("body", "name")]
    assert "input" not in problem["errors"][0]


async def test_malformed_json_is_a_4xx_problem(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/probe/widgets", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_unknown_route_and_wrong_method_are_problems(http: httpx.AsyncClient) -> None:
    missing = await http.get("/nowhere")
    assert missing.status_code == 404
    assert missing.json()["type"] == "urn:fieldsync:problem:not-found"
    wrong_method = await http.delete("/health/live")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"] == "application/problem+json"


async def test_unexpected_errors_reveal_nothing(http: httpx.AsyncClient) -> None:
    response = await http.get("/probe/boom", headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "boom-1"
    body = response.text
    assert "hunter2" not in body
    assert "Traceback" not in body
    assert "RuntimeError" not in body
    assert response.json()["type"] == "urn:fieldsync:problem:internal"


async def test_body_over_the_cap_is_413_by_declared_length(http: httpx.AsyncClient) -> None:
    response = await http.post("/probe/upload", content=b"x" * (64 * 1024 + 1))
    assert response.status_code == 413
    assert response.json()["type"] == "urn:fieldsync:problem:payload-too-large"


async def test_body_over_the_cap_is_413_when_streamed(http: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(70):
            yield b"x" * 1024

    response = await http.post("/probe/upload", content=chunks())
    assert response.status_code == 413


async def test_body_under_the_cap_is_read(http: httpx.AsyncClient) -> None:
    response = await http.post("/probe/upload", content=b"x" * 1000)
    assert response.status_code == 200
    assert response.json() == {"received": 1000}


async def test_session_commits_before_the_response(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    node_id = 900
    created = await http.post(f"/probe/leases/{node_id}")
    assert created.status_code == 201
    async with runtime.databases["api"].sessions() as session:
        holder = await session.scalar(
            text("SELECT holder FROM node_leases WHERE node_id = :n"), {"n": node_id}
        )
        assert holder == "probe"
        # A failed commit at the edge is a 409 problem, not a success that was not kept.
        duplicate = await http.post(f"/probe/leases/{node_id}")
        assert duplicate.status_code == 409
        assert duplicate.headers["content-type"] == "application/problem+json"
        await session.execute(text("DELETE FROM node_leases WHERE node_id = :n"), {"n": node_id})
        await session.commit()
