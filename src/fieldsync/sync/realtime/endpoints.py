"""GET /api/v1/sync/stream (Server-Sent Events) and WS /api/v1/sync/ws.

Both send `{"checkpoint": "..."}` when something in the caller's scope changed (the
client then pulls) and a heartbeat when nothing did. A client that does not take a
message within `FIELDSYNC_SYNC_SLOW_CLIENT_SECONDS` is disconnected; it pulls and
reconnects. Nothing queues up behind a slow client: only the newest checkpoint is kept.
The hub writes through each connection's `send` (see `listener.py`); the connection's
own task only watches for the client leaving and handles what the hub cannot.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response, WebSocket, WebSocketDisconnect
from starlette.types import Receive, Scope, Send

from fieldsync.contracts.identity import Caller
from fieldsync.kit.errors import FieldsyncError
from fieldsync.kit.http.deps import runtime_of
from fieldsync.kit.logging import get_logger
from fieldsync.kit.runtime import Runtime
from fieldsync.sync.realtime.auth import realtime_caller
from fieldsync.sync.realtime.hub import hub_of
from fieldsync.sync.realtime.listener import Frames, Listener, LoadScope
from fieldsync.sync.scope import assigned_buildings

router = APIRouter(prefix="/api/v1/sync", tags=["sync"])
log = get_logger(__name__)


async def serve_listener(
    runtime: Runtime,
    listener: Listener,
    *,
    registered: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Offer pokes to `listener` until its connection ends or its client is too slow.

    `registered` is awaited once the hub offers pokes to the listener.
    """
    hub = hub_of(runtime)
    hub.add(listener)
    try:
        if registered is not None:
            await registered()
        await listener.attend(runtime.settings.sync_slow_client_seconds)
    finally:
        hub.remove(listener)
        listener.close()


class EventStream(Response):
    """An SSE response that ends when the client leaves or stops reading."""

    def __init__(self, runtime: Runtime, caller: Caller) -> None:
        super().__init__(media_type="text/event-stream")
        self.runtime = runtime
        self.caller = caller

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

        def write(frames: Frames) -> Awaitable[None]:
            return send({"type": "http.response.body", "body": frames.sse, "more_body": True})

        listener = Listener(self.caller, _scope_loader(self.runtime, self.caller), write)

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            listener.close()

        async def ready() -> None:
            # Registered with the hub from here on: the client may pull now.
            await send({"type": "http.response.body", "body": b": ready\n\n", "more_body": True})

        watcher = asyncio.create_task(watch_disconnect())
        try:
            await serve_listener(self.runtime, listener, registered=ready)
        finally:
            watcher.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    send({"type": "http.response.body", "body": b"", "more_body": False}), 1
                )


def _scope_loader(runtime: Runtime, caller: Caller) -> LoadScope:
    database = runtime.databases["sync"]

    async def load_scope() -> frozenset[uuid.UUID]:
        return await assigned_buildings(database, caller)

    return load_scope


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
    caller = realtime_caller(runtime, request)
    hub_of(runtime)  # 503 before the hub is up, rather than a stream that never pokes
    return EventStream(runtime, caller)


@router.websocket("/ws")
async def websocket(socket: WebSocket) -> None:
    """WebSocket: JSON messages `{"checkpoint": ...}` and `{"heartbeat": true}`."""
    runtime = runtime_of(socket)
    try:
        caller = realtime_caller(runtime, socket)
        hub_of(runtime)
    except FieldsyncError as exc:
        # Refused during the handshake (an HTTP 403 to the client); 1008: policy violation.
        await socket.close(code=1008, reason=exc.detail[:120])
        return
    await socket.accept()

    def write(frames: Frames) -> Awaitable[None]:
        return socket.send_text(frames.ws)

    listener = Listener(caller, _scope_loader(runtime, caller), write)

    async def watch_disconnect() -> None:
        try:
            # Clients have nothing to say here; what they send is read and dropped.
            while (await socket.receive())["type"] != "websocket.disconnect":
                pass
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            listener.close()

    watcher = asyncio.create_task(watch_disconnect())
    try:
        await serve_listener(runtime, listener)
    finally:
        watcher.cancel()
        with contextlib.suppress(Exception):
            await socket.close()
