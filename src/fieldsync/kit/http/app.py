"""The FastAPI app factory shared by `fieldsync up` and `fieldsync run SERVICE`."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

import fieldsync
from fieldsync.kit.http.docs import install_docs
from fieldsync.kit.http.health import router as health_router
from fieldsync.kit.http.middleware import EdgeMiddleware
from fieldsync.kit.http.openapi import install_problem_openapi
from fieldsync.kit.http.problems import install_problem_handlers
from fieldsync.kit.ratelimit import parse_limits
from fieldsync.kit.runtime import Runtime


def create_app(runtime: Runtime) -> FastAPI:
    """An app serving the runtime's services: their routers, health, metrics, `/docs`.

    The runtime is started (and later stopped) by the caller, outside the ASGI
    lifespan, so a start-up failure is reported as one line instead of a server
    traceback.
    """
    app = FastAPI(
        title="fieldsync",
        version=fieldsync.__version__,
        summary="Offline-first sync backend for field apps",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.runtime = runtime
    install_problem_handlers(app)
    install_problem_openapi(app)
    install_docs(app, openapi_url="/openapi.json")
    app.include_router(health_router)
    for spec in runtime.services:
        for router in spec.http_routers:
            app.include_router(router)
    settings = runtime.settings
    per_ip = parse_limits(settings.rate_limit_per_ip)

    async def limit_ip(ip: str) -> None:
        await runtime.rate_limiter.hit(per_ip, "ip", ip)

    if settings.cors_origins:
        # Inside the edge middleware, so preflights are rate limited and carry request ids.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-Match", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
            max_age=600,
        )
    app.add_middleware(EdgeMiddleware, max_body_bytes=settings.max_body_bytes, ip_limit=limit_ip)
    return app
