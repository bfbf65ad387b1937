"""The sync service as the runtime sees it."""

from __future__ import annotations

from fieldsync.kit.service import ServiceSpec
from fieldsync.sync.ingest.ingester import ingest
from fieldsync.sync.pull.endpoints import router as pull_router
from fieldsync.sync.push.endpoints import router as push_router
from fieldsync.sync.realtime.endpoints import router as realtime_router
from fieldsync.sync.realtime.hub import start_hub
from fieldsync.sync.rxdb.endpoints import router as rxdb_router
from fieldsync.sync.tombstones import purge_tombstones
from fieldsync.sync.watermelon.endpoints import router as watermelon_router

SERVICE = ServiceSpec(
    name="sync",
    migrations="fieldsync.sync:migrations",
    http_routers=(pull_router, push_router, realtime_router, rxdb_router, watermelon_router),
    background=(ingest, purge_tombstones),
    startup=(start_hub,),
)
