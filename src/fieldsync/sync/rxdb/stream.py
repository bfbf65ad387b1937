"""GET …/pullStream: RxDB's `pull.stream$` over Server-Sent Events.

A connection starts with `data: "RESYNC"` (the client pulls from its own checkpoint,
covering anything before the stream listened), then, each time the process's poke
hub says the organization's replica moved, sends the collection's new documents in
the caller's scope as `data: {"documents": [...], "checkpoint": {...}}`. When more
changed than one page holds (or the stream's position is no longer served) it sends
`"RESYNC"` instead. A comment line is sent as a heartbeat when nothing happened for
`FIELDSYNC_SYNC_HEARTBEAT_SECONDS`; a client that does not take a message within
`FIELDSYNC_SYNC_SLOW_CLIENT_SECONDS` is disconnected (RxDB's EventSource reconnects).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from fieldsync.contracts.collections import Collection
from fieldsync.contracts.identity import Caller
from fieldsync.kit.errors import FieldsyncError
from fieldsync.kit.runtime import Runtime
from fieldsync.sync.realtime.hub import hub_of
from fieldsync.sync.rxdb.repository import organization_version
from fieldsync.sync.rxdb.schemas import MAX_LIMIT, Checkpoint
from fieldsync.sync.rxdb.service import documents_json, read_page

RESYNC = b'data: "RESYNC"\n\n'
HEARTBEAT = b": heartbeat\n\n"


class DocumentStream(Response):
    """An SSE response of one collection's changes, until the client leaves."""

    def __init__(self, runtime: Runtime, caller: Caller, collection: Collection) -> None:
        super().__init__(media_type="text/event-stream")
        self.runtime = runtime
        self.caller = caller
        self.collection = collection
        self.position = Checkpoint(id="", lwt=0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-store")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        settings = self.runtime.settings

        async def write(chunk: bytes) -> None:
            message = {"type": "http.response.body", "body": chunk, "more_body": True}
            async with asyncio.timeout(settings.sync_slow_client_seconds):
                await send(message)

        left = asyncio.create_task(_disconnected(receive))
        try:
            await self._stream(write, left, settings.sync_heartbeat_seconds)
        except TimeoutError:
            pass  # too slow to take a message: dropped, it reconnects and resyncs
        finally:
            left.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    send({"type": "http.response.body", "body": b"", "more_body": False}), 1
                )

    async def _stream(self, write: Write, left: asyncio.Task[None], heartbeat: float) -> None:
        hub = hub_of(self.runtime)
        organization_id = self.caller.organization_id
        poked = hub.next_poke(organization_id)
        await self._start_position()
        await write(RESYNC)
        while not left.done():
            waiting = asyncio.ensure_future(poked.wait())
            await asyncio.wait({waiting, left}, timeout=heartbeat, return_when="FIRST_COMPLETED")
            waiting.cancel()
            if left.done():
                return
            if not poked.is_set():
                await write(HEARTBEAT)
                continue
            # Taken before reading: a poke landing during the read sets the new one.
            poked = hub.next_poke(organization_id)
            event = await self._next_event()
            if event:  # a poke about other collections sends nothing
                await write(event)

    async def _start_position(self) -> None:
        async with self.runtime.databases["sync"].raw_connection() as connection:
            version = await organization_version(connection, self.caller.organization_id)
        self.position = Checkpoint(id="", lwt=version)

    async def _next_event(self) -> bytes:
        """The documents after the stream's position, or RESYNC when they do not fit."""
        database = self.runtime.databases["sync"]
        try:
            documents, checkpoint, page = await read_page(
                database, self.caller, self.collection, self.position, MAX_LIMIT
            )
        except FieldsyncError:
            await self._start_position()
            return RESYNC
        if len(documents) >= MAX_LIMIT:
            self.position = Checkpoint(id="", lwt=page.version)
            return RESYNC
        if not documents:
            return b""
        self.position = checkpoint
        return b"data: " + documents_json(documents, checkpoint) + b"\n\n"


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


Write = Callable[[bytes], Awaitable[None]]
