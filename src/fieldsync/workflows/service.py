"""The workflows service as the runtime sees it.

Its NATS handlers are served by a background task rather than through `bus_routers`:
they need the service's database and id generator, which the kit's Router does not
pass to handlers, so `serve_handlers` binds them (see `state`) around `Bus.serve`.
"""

from __future__ import annotations

from fieldsync.kit.logging import get_logger
from fieldsync.kit.messaging import Router
from fieldsync.kit.runtime import Runtime
from fieldsync.kit.service import ServiceSpec
from fieldsync.workflows import schema
from fieldsync.workflows.buildings.consumer import follow_buildings
from fieldsync.workflows.changes import relay_outbox
from fieldsync.workflows.state import SERVICE_NAME, WorkflowsState, bound
from fieldsync.workflows.steps.handlers import router as steps_router
from fieldsync.workflows.workflows.handlers import router as workflows_router

assert schema.Base is not None  # every model is mapped before the first query

log = get_logger(__name__)

ROUTERS: tuple[Router, ...] = (workflows_router, steps_router)
# Where `serve_handlers` leaves the state once the handlers are subscribed.
STATE_RESOURCE = "workflows.state"


async def serve_handlers(runtime: Runtime) -> None:
    """Subscribe the workflows handlers in queue group `workflows`, with the state bound."""
    state = WorkflowsState.of(runtime)
    try:
        with bound(state):
            for router in ROUTERS:
                await runtime.bus.serve(router)
    except Exception:
        log.exception("cannot serve the workflows handlers")
        raise
    runtime.resources[STATE_RESOURCE] = state
    log.info("workflows handlers serving", subjects=sum(len(r.handlers) for r in ROUTERS))


SERVICE = ServiceSpec(
    name=SERVICE_NAME,
    migrations="fieldsync.workflows:migrations",
    background=(serve_handlers, relay_outbox, follow_buildings),
)
