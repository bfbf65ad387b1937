"""The api service as the runtime sees it."""

from __future__ import annotations

from fieldsync.api import schema
from fieldsync.api.audit.endpoints import router as audit_router
from fieldsync.api.auth.endpoints import router as auth_router
from fieldsync.api.buildings.endpoints import router as buildings_router
from fieldsync.api.buildings.mutations import router as building_mutations_router
from fieldsync.api.changes import relay_outbox
from fieldsync.api.users.endpoints import router as users_router
from fieldsync.api.workflows.endpoints import router as workflows_router
from fieldsync.kit.service import ServiceSpec

assert schema.Base is not None  # every model is mapped before the first query

SERVICE = ServiceSpec(
    name="api",
    migrations="fieldsync.api:migrations",
    http_routers=(auth_router, users_router, audit_router, buildings_router, workflows_router),
    bus_routers=(building_mutations_router,),
    background=(relay_outbox,),
    signs_tokens=True,
)
