"""The FastAPI app factory shared by `fieldsync up` and `fieldsync run SERVICE`."""

from __future__ import annotations

from fastapi import FastAPI

import fieldsync
from fieldsync.kit.http.health import router as health_router
from fieldsync.kit.http.middleware import EdgeMiddleware
from fieldsync.kit.http.problems import install_problem_handlers
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
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.runtime = runtime
    install_problem_handlers(app)
    app.include_router(health_router)
    for spec in runtime.services:
        for router in spec.http_routers:
            app.include_router(router)
    app.add_middleware(EdgeMiddleware, max_body_bytes=runtime.settings.max_body_bytes)
    return app
