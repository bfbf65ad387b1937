"""The workflows service as the runtime sees it."""

from __future__ import annotations

from fieldsync.kit.messaging import Router
from fieldsync.kit.service import ServiceSpec
from fieldsync.workflows import schema
from fieldsync.workflows.buildings.consumer import follow_buildings
from fieldsync.workflows.changes import relay_outbox
from fieldsync.workflows.mutations.handlers import router as mutations_router
from fieldsync.workflows.state import SERVICE_NAME
from fieldsync.workflows.steps.handlers import router as steps_router
from fieldsync.workflows.workflows.handlers import router as workflows_router

assert schema.Base is not None  # every model is mapped before the first query

ROUTERS: tuple[Router, ...] = (workflows_router, steps_router, mutations_router)

SERVICE = ServiceSpec(
    name=SERVICE_NAME,
    migrations="fieldsync.workflows:migrations",
    bus_routers=ROUTERS,
    background=(relay_outbox, follow_buildings),
)
