"""Realtime pokes over SSE and WebSocket, in scope, with heartbeats; slow clients dropped."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect

from fieldsync.contracts.identity import Caller, Role
from fieldsync.kit.runtime import Runtime
from fieldsync.kit.settings import Settings
from fieldsync.sync.realtime.endpoints import relay_pokes
from fieldsync.sync.realtime.hub import Listener, hub_of
from tests.sync.conftest import (
    CreateUser,
    Register,
    Replica,
    create_building,
    has_workflows,
    pulled_until,
)
from tests.waiting import until


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """(event, data) pairs of an SSE response; ("ready", "") once registered."""
    event = ""
    async for line in response.aiter_lines():
        if line == ": ready":
            yield "ready", ""
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            yield event, line[5:].strip()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Frequent heartbeats and little patience, so both show within a test."""
    return settings.model_copy(
        update={"sync_heartbeat_seconds": 0.05, "sync_slow_client_seconds": 0.2}
    )


async def next_poke(events: AsyncIterator[tuple[str, str]]) -> str:
    """The next poke's data, past heartbeats."""
    async with asyncio.timeout(5):
        while True:
            event, data = await anext(events)
            if event == "poke":
                return data


async def poked_until(
    events: AsyncIterator[tuple[str, str]],
    client: httpx.AsyncClient,
    replica: Replica,
    condition: Callable[[Replica], bool],
) -> None:
    """Pull at each poke until `condition` holds for the pulled copy."""
    async with asyncio.timeout(5):
        while True:
            await next_poke(events)
            await replica.pull(client)
            if condition(replica):
                return


async def test_sse_pokes_when_the_scope_changes(
    client: httpx.AsyncClient, register: Register, create_user: CreateUser, live_url: str
) -> None:
    admin = await register()
    technician = await create_user(admin, "technician")
    elsewhere = await create_building(client, admin, name="Not theirs")
    theirs = await create_building(client, admin, name="Theirs")
    url = f"/api/v1/buildings/{theirs['id']}/assignees/{technician.user_id}"
    assert (await client.put(url, headers=admin.auth)).status_code == 204
    admin_view = Replica(admin)
    await pulled_until(client, admin_view, has_workflows(2))
    # Everything so far is in the replica: no poke of it can arrive on the streams.
    await pulled_until(client, Replica(technician), has_workflows(1))

    tech_url = f"/api/v1/sync/stream?access_token={technician.access_token}"
    async with (
        httpx.AsyncClient(base_url=live_url, timeout=10) as http,
        http.stream("GET", "/api/v1/sync/stream", headers=admin.auth) as admin_stream,
        http.stream("GET", tech_url) as tech_stream,
    ):
        assert admin_stream.status_code == 200
        assert admin_stream.headers["content-type"].startswith("text/event-stream")
        admin_events = sse_events(admin_stream)
        tech_events = sse_events(tech_stream)
        assert await anext(admin_events) == ("ready", "")
        assert await anext(tech_events) == ("ready", "")

        # A change outside the technician's buildings pokes the admin only.
        patched = await client.patch(
            f"/api/v1/buildings/{elsewhere['id']}", json={"floors": 1}, headers=admin.auth
        )
        assert patched.status_code == 200
        await poked_until(
            admin_events,
            client,
            admin_view,
            lambda r: r.of("buildings")[elsewhere["id"]]["floors"] == 1,
        )

        # Then one inside it: the technician's first poke is this one.
        patched = await client.patch(
            f"/api/v1/buildings/{theirs['id']}", json={"floors": 2}, headers=admin.auth
        )
        assert patched.status_code == 200
        await next_poke(tech_events)
        tech_view = Replica(technician)
        await tech_view.pull(client)
        assert set(tech_view.of("buildings")) == {theirs["id"]}
        assert tech_view.of("buildings")[theirs["id"]]["floors"] == 2


async def test_sse_refuses_a_missing_or_bad_token(live_url: str) -> None:
    async with httpx.AsyncClient(base_url=live_url, timeout=10) as http:
        missing = await http.get("/api/v1/sync/stream")
        assert missing.status_code == 401
        assert missing.headers["content-type"] == "application/problem+json"
        bad = await http.get("/api/v1/sync/stream?access_token=nonsense")
        assert bad.status_code == 401


async def test_websocket_pokes_and_refuses_bad_tokens(
    client: httpx.AsyncClient, register: Register, live_url: str
) -> None:
    admin = await register()
    ws_url = live_url.replace("http://", "ws://") + "/api/v1/sync/ws"
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect(f"{ws_url}?access_token=nonsense"):
            pass
    assert refused.value.response.status_code == 403

    async with connect(ws_url, additional_headers=admin.auth) as socket:
        building = await create_building(client, admin)
        replica = Replica(admin)
        async with asyncio.timeout(5):
            while building["id"] not in replica.of("buildings"):
                message = json.loads(await socket.recv())
                if "checkpoint" in message:
                    await replica.pull(client)
                else:
                    assert message == {"heartbeat": True}


async def test_heartbeats_and_a_slow_client_is_dropped(runtime: Runtime) -> None:
    caller = Caller(
        user_id=uuid.uuid4(), organization_id=uuid.uuid4(), role=Role.ADMIN, session_id=uuid.uuid4()
    )

    async def no_scope() -> frozenset[uuid.UUID]:
        return frozenset()

    hub = hub_of(runtime)
    closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    beats: list[bytes | None] = []

    async def reads(message: bytes | None) -> None:
        beats.append(message)
        if len(beats) == 3:
            closed.set_result(None)

    listener = Listener(caller, no_scope)
    await asyncio.wait_for(relay_pokes(runtime, listener, reads, closed), 5)
    assert beats == [None, None, None]  # heartbeats while nothing changes

    stuck = asyncio.Event()

    async def never_reads(message: bytes | None) -> None:
        await stuck.wait()

    listener = Listener(caller, no_scope)
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    relay = asyncio.create_task(relay_pokes(runtime, listener, never_reads, never))
    await until(lambda: hub.listener_count == 1)
    await asyncio.wait_for(relay, 5)  # returns by itself: the client was dropped
    assert hub.listener_count == 0
