"""Liveness, readiness and Prometheus metrics endpoints."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.responses import Response

from fieldsync.kit.errors import PROBLEM_TYPE_BASE
from fieldsync.kit.http.problems import problem_response
from fieldsync.kit.metrics import render_latest

router = APIRouter(tags=["health"])


class Liveness(BaseModel):
    """The process is up and serving HTTP."""

    status: str


class Readiness(BaseModel):
    """Every dependency answered."""

    status: str
    checks: dict[str, str]


@router.get("/health/live", response_model=Liveness)
async def live() -> Liveness:
    """The process is up (no dependency is checked)."""
    return Liveness(status="ok")


@router.get(
    "/health/ready",
    response_model=Readiness,
    responses={503: {"description": "A dependency failed; the problem names it."}},
)
async def ready(request: Request) -> Readiness | Response:
    """Each dependency (databases, NATS, Redis when configured) answers, or 503 naming it."""
    checks = await request.app.state.runtime.check_readiness()
    failed = [name for name, status in checks.items() if status != "ok"]
    if failed:
        problem = {
            "type": PROBLEM_TYPE_BASE + "unavailable",
            "title": "Service unavailable",
            "status": 503,
            "detail": f"not ready: {', '.join(failed)}",
            "checks": checks,
        }
        return problem_response(problem, 503)
    return Readiness(status="ok", checks=checks)


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Prometheus exposition of the process's metrics."""
    body, content_type = render_latest()
    return Response(content=body, media_type=content_type)
