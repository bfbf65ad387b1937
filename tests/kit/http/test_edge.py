"""Request ids, trace context and metrics across the edge and into NATS."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel

from fieldsync.kit import context
from fieldsync.kit.http.app import create_app
from fieldsync.kit.messaging import MessageContext, Router
from fieldsync.kit.runtime import Runtime


class Echo(BaseModel):
    text: str


class Seen(BaseModel):
    request_id: str
    trace_id: str


SUBJECT = f"test.edge.{secrets.token_hex(4)}"


@pytest.fixture
async def app(runtime: Runtime) -> FastAPI:
    handlers = Router(queue="edge-test")

    @handlers.handler(SUBJECT)
    async def remember(request: Echo, ctx: MessageContext) -> Seen:
        return Seen(request_id=ctx.request_id, trace_id=context.trace_id_of(ctx.traceparent))

    await runtime.bus.serve(handlers)
    routes = APIRouter()

    @routes.get("/probe/relay")
    async def relay(request: Request) -> dict[str, str]:
        seen = await runtime.bus.request(SUBJECT, Echo(text="hi"), Seen)
        own = context.current()
        return {
            "handler_request_id": seen.request_id,
            "handler_trace_id": seen.trace_id,
            "edge_trace_id": context.trace_id_of(own["traceparent"]),
        }

    @routes.get("/probe/nobody/{suffix}")
    async def nobody(suffix: str) -> dict[str, str]:
        await runtime.bus.request(f"test.nobody.{suffix}", Echo(text="?"), Seen, timeout=30)
        return {}

    application = create_app(runtime)
    application.include_router(routes)
    return application


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://fieldsync.test") as client:
        yield client


async def test_request_id_is_echoed_and_carried_to_nats_handlers(http: httpx.AsyncClient) -> None:
    trace_id = secrets.token_hex(16)
    response = await http.get(
        "/probe/relay",
        headers={"X-Request-ID": "req-abc.123", "traceparent": f"00-{trace_id}-{'1' * 16}-01"},
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-abc.123"
    body = response.json()
    assert body["handler_request_id"] == "req-abc.123"
    # The edge continues the caller's trace, and the handler continues the edge's.
    assert body["edge_trace_id"] == trace_id
    assert body["handler_trace_id"] == trace_id


async def test_missing_or_unsafe_request_ids_are_replaced(http: httpx.AsyncClient) -> None:
    generated = await http.get("/health/live")
    assert len(generated.headers["x-request-id"]) == 32
    unsafe = await http.get("/health/live", headers={"X-Request-ID": "bad id\twith spaces"})
    assert unsafe.headers["x-request-id"] != "bad id\twith spaces"
    assert len(unsafe.headers["x-request-id"]) == 32


async def test_no_responders_is_503_at_once(http: httpx.AsyncClient) -> None:
    # The request deadline is 30 s and the test times out long before: a 503 here came
    # from NATS "no responders", not from waiting out the deadline.
    response = await http.get(f"/probe/nobody/{secrets.token_hex(4)}")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:fieldsync:problem:unavailable"


async def test_metrics_count_requests_by_route_template(http: httpx.AsyncClient) -> None:
    suffix = secrets.token_hex(4)
    await http.get(f"/probe/nobody/{suffix}")
    await http.get("/probe/relay")
    metrics = (await http.get("/metrics")).text
    assert 'route="/probe/nobody/{suffix}",status="503"' in metrics
    assert suffix not in metrics.replace(f"test.nobody.{suffix}", "")
    assert (
        f'fieldsync_nats_request_duration_seconds_count{{outcome="ok",subject="{SUBJECT}"}}'
        in metrics
    )
    assert (
        f'fieldsync_nats_request_duration_seconds_count{{outcome="no-responders",subject="test.nobody.{suffix}"}}'
        in metrics
    )
