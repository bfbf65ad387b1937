"""Running services: migrate, start the runtime, serve HTTP, stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

import uvicorn
from uvicorn.loops.auto import auto_loop_factory

from fieldsync.kit.db.admin import ensure_database
from fieldsync.kit.db.migrations import upgrade_async
from fieldsync.kit.http.app import create_app
from fieldsync.kit.runtime import Endpoints, Runtime, StartupError
from fieldsync.kit.service import ServiceSpec
from fieldsync.kit.settings import Settings

T = TypeVar("T")

# Young objects a service allocates before the collector looks (Python's default: 700).
GC_YOUNG_THRESHOLD = 50_000


def run_forever(main: Coroutine[Any, Any, T]) -> T:
    """Run a serving coroutine on the event loop uvicorn would choose (`loop="auto"`).

    That is uvloop where it is installed (uvicorn[standard] brings it), else asyncio's
    own: uvloop's C transports cost a fraction of the CPU per request and message.
    """
    with asyncio.Runner(loop_factory=auto_loop_factory()) as runner:
        return runner.run(main)


def settle_heap() -> None:
    """Take what start-up allocated out of the collector's sight; collect less often.

    A started service holds a few hundred thousand long-lived objects (the app, its
    schemas and routes, the ORM's metadata) that every full collection walked again,
    and a push's 500 mutations, as models that live across a few awaits, set off such
    collections often: a third of the sync process's CPU in `bench/sync.py`. Frozen
    objects are never collected, which start-up's are not anyway (`gc.freeze`).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)


class _Server(uvicorn.Server):
    """uvicorn, minus its habit of re-raising the stop signal once it has shut down.

    The re-raised SIGTERM would kill the process before the runtime drains NATS and
    releases its leases, and before `up` stops the embedded servers; fieldsync
    finishes its own shutdown and exits 0 instead.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.handle_exit, signum, None)
        try:
            yield
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)


async def migrate(services: Sequence[ServiceSpec], endpoints: Endpoints, *, create: bool) -> None:
    """Bring every service database to its latest migration (creating it when asked)."""
    for spec in services:
        if spec.migrations is None:
            continue
        url = endpoints.database_urls[spec.name]
        try:
            if create:
                await ensure_database(url)
            await upgrade_async(spec.migrations, url)
        except Exception as exc:
            raise StartupError(f"cannot migrate the {spec.name} database: {exc}") from None


async def serve(
    settings: Settings,
    endpoints: Endpoints,
    services: Sequence[ServiceSpec],
    *,
    on_ready: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Start the runtime, serve HTTP until SIGINT/SIGTERM, then stop everything."""
    runtime = Runtime(settings, endpoints, services)
    try:
        await runtime.start()
        app = create_app(runtime)
        config = uvicorn.Config(
            app,
            host=settings.http_host,
            port=settings.http_port,
            log_config=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=10,
        )
        server = _Server(config)
        serving = asyncio.create_task(server.serve())
        # uvicorn exposes only a `started` flag, no event to await.
        while not server.started and not serving.done():  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        if server.started:
            settle_heap()
        if server.started and on_ready is not None:
            await on_ready()
        await serving
        if not server.started:
            raise StartupError(
                f"cannot listen on {settings.http_host}:{settings.http_port} "
                "(is the port in use? set FIELDSYNC_HTTP_PORT or --port)"
            )
    finally:
        await runtime.stop()
