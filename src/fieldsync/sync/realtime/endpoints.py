"""GET /api/v1/sync/stream (Server-Sent Events) and WS /api/v1/sync/ws.

Both send `{"checkpoint": "..."}` when something in the caller's scope changed (the
client then pulls) and a heartbeat when nothing did. A client that does not take a
message within `FIELDSYNC_SYNC_SLOW_CLIENT_SECONDS` is disconnected; it pulls and
reconnects. Nothing queues up behind a slow client: only the newest checkpoint is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable

import orjson
from fastapi import APIRouter, Request, Response, WebSocket, WebSocketDisconnect
from starlette.types import Receive, Scope, Send

from fieldsync.kit.errors import FieldsyncError
from fieldsync.kit.http.deps import runtime_of
from fieldsync.kit.logging import get_logger
from fieldsync.kit.runtime import Runtime
from fieldsync.sync.realtime.auth import realtime_caller
from fieldsync.sync.realtime.hub import Listener, hub_of
from fieldsync.sync.scope import assigned_buildings

router = APIRouter(prefix="/api/v1/sync", tags=["sync"])
log = get_logger(__name__)

HEARTBEAT = orjson.dumps({"heartbeat": True})


async def relay_pokes(
    runtime: Runtime,
    listener: Listener,
    deliver: Callable[[bytes | None], Awaitable[None]],
    closed: asyncio.Future[None],
) -> None:
    """Deliver pokes (and heartbeats, as None) to one client until it goes or is too slow.

    One poke wakes every listener of an organization at once, so the loop creates no
    task per message: timeouts are `asyncio.timeout` scopes on this task.
    """
    settings = runtime.settings
    hub = hub_of(runtime)
    closed.add_done_callback(lambda _: listener.woken.set())
    hub.add(listener)
    try:
        while True:
            if listener.scope_stale:
                await listener.refresh_scope()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(settings.sync_heartbeat_seconds):
                    await listener.woken.wait()
            if closed.done():
                return
            if listener.scope_stale:
                await listener.refresh_scope()
            message = listener.take()
            try:
                async with asyncio.timeout(settings.sync_slow_client_seconds):
                    await deliver(message)
            except TimeoutError:
                log.info("slow realtime client dropped", user_id=str(listener.caller.user_id))
                return
    finally:
        hub.remove(listener)


class EventStream(Response):
    """An SSE response that ends when the client leaves or stops reading."""

    def __init__(self, runtime: Runtime, listener: Listener) -> None:
        super().__init__(media_type="text/event-stream")
        self.runtime = runtime
        self.listener = listener

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-store"),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )
        loop = asyncio.get_running_loop()
        closed: asyncio.Future[None] = loop.create_future()

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            if not closed.done():
                closed.set_result(None)

        async def deliver(message: bytes | None) -> None:
            if message is None:
                chunk = b"event: heartbeat\ndata: " + HEARTBEAT + b"\n\n"
            else:
                chunk = b"event: poke\ndata: " + message + b"\n\n"
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

        watcher = asyncio.create_task(watch_disconnect())
        try:
            # Registered with the hub from here on: the client may pull now.
            await send({"type": "http.response.body", "body": b": ready\n\n", "more_body": True})
            await relay_pokes(self.runtime, self.listener, deliver, closed)
        finally:
            watcher.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    send({"type": "http.response.body", "body": b"", "more_body": False}), 1
                )


def _listener(runtime: Runtime, caller_connection: Request | WebSocket) -> Listener:
    caller = realtime_caller(runtime, caller_connection)
    database = runtime.databases["sync"]

    async def load_scope() -> frozenset[uuid.UUID]:
        return await assigned_buildings(database, caller)

    return Listener(caller, load_scope)


@router.get(
    "/stream",
    response_class=EventStream,
    # Named explicitly: FastAPI cannot read a default off EventStream's constructor.
    status_code=200,
    responses={200: {"content": {"text/event-stream": {}}, "description": "poke events"}},
)
async def stream(request: Request) -> EventStream:
    """Server-Sent Events: `poke` events `{"checkpoint": ...}` and `heartbeat` events."""
    runtime = runtime_of(request)
    listener = _listener(runtime, request)
    hub_of(runtime)  # 503 before the hub is up, rather than a stream that never pokes
    return EventStream(runtime, listener)


@router.websocket("/ws")
async def websocket(socket: WebSocket) -> None:
    """WebSocket: JSON messages `{"checkpoint": ...}` and `{"heartbeat": true}`."""
    runtime = runtime_of(socket)
    try:
        listener = _listener(runtime, socket)
    except FieldsyncError as exc:
        # Refused during the handshake (an HTTP 403 to the client); 1008: policy violation.
        await socket.close(code=1008, reason=exc.detail[:120])
        return
    await socket.accept()
    closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def watch_disconnect() -> None:
        try:
            # Clients have nothing to say here; what they send is read and dropped.
            while (await socket.receive())["type"] != "websocket.disconnect":
                pass
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            if not closed.done():
                closed.set_result(None)

    async def deliver(message: bytes | None) -> None:
        await socket.send_text((HEARTBEAT if message is None else message).decode())

    watcher = asyncio.create_task(watch_disconnect())
    try:
        await relay_pokes(runtime, listener, deliver, closed)
    finally:
        watcher.cancel()
        with contextlib.suppress(Exception):
            await socket.close()
