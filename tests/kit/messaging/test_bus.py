"""Typed request-reply over a real NATS server: replies, errors, deadlines, queue groups."""

from __future__ import annotations

import asyncio
import contextvars
import re
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from fieldsync.kit import context
from fieldsync.kit.embedded.nats import NatsEndpoints
from fieldsync.kit.errors import (
    Conflict,
    FieldsyncError,
    Forbidden,
    NotFound,
    TooManyRequests,
    Unavailable,
    ValidationFailed,
)
from fieldsync.kit.messaging import Bus, MessageContext, Router

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")

# Which replica's subscription a handler runs under (see test_queue_group_*).
REPLICA: contextvars.ContextVar[str | None] = contextvars.ContextVar("replica", default=None)


class Lookup(BaseModel):
    item_id: int
    name: str


class WrongLookup(BaseModel):
    item_id: str


class Item(BaseModel):
    item_id: int
    label: str


class Ping(BaseModel):
    n: int


class Pong(BaseModel):
    n: int


def unique(prefix: str) -> str:
    return f"test.{prefix}.{secrets.token_hex(6)}"


@pytest.fixture
async def server_bus(nats_server: NatsEndpoints) -> AsyncIterator[Bus]:
    """A second connection that serves handlers (so `bus` is a real remote caller)."""
    serving = await Bus.connect(
        nats_server.url, name=f"server-{secrets.token_hex(4)}", request_timeout=10.0
    )
    yield serving
    await serving.close()


async def connection_info(monitor_url: str, name: str) -> dict[str, Any] | None:
    """The server's view (/connz) of the client connection called `name`."""
    async with httpx.AsyncClient(timeout=5.0) as http:
        response = await http.get(f"{monitor_url}/connz", params={"subs": 1, "limit": 100000})
    response.raise_for_status()
    for connection in response.json()["connections"] or []:
        if connection.get("name") == name:
            found: dict[str, Any] = connection
            return found
    return None


async def wait_for_connection(
    monitor_url: str, name: str, condition: Callable[[dict[str, Any]], bool]
) -> None:
    """Wait until the server reports connection `name` in a state matching `condition`."""
    deadline = time.monotonic() + 10.0
    while True:
        info = await connection_info(monitor_url, name)
        if info is not None and condition(info):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"connection {name} never reached the expected state: {info}")
        await asyncio.sleep(0.02)


def subscribed_to(subject: str) -> Callable[[dict[str, Any]], bool]:
    return lambda info: subject in (info.get("subscriptions_list") or [])


def not_subscribed_to(subject: str) -> Callable[[dict[str, Any]], bool]:
    return lambda info: subject not in (info.get("subscriptions_list") or [])


# --- typed request-reply ---------------------------------------------------------------


async def test_reply_is_the_handlers_return_value(bus: Bus, server_bus: Bus) -> None:
    subject = unique("lookup")
    router = Router(queue="items")
    received: list[Lookup] = []

    @router.handler(subject)
    async def lookup(request: Lookup) -> Item:
        received.append(request)
        return Item(item_id=request.item_id * 10, label=request.name.upper())

    await server_bus.serve(router)
    reply = await bus.request(subject, Lookup(item_id=4, name="pump"), Item)

    assert isinstance(reply, Item)
    assert reply == Item(item_id=40, label="PUMP")
    assert received == [Lookup(item_id=4, name="pump")]


async def test_handler_context_carries_request_id_and_the_callers_trace(
    bus: Bus, server_bus: Bus
) -> None:
    subject = unique("ctx")
    router = Router(queue="ctx")
    seen: list[MessageContext] = []

    @router.handler(subject)
    async def handle(request: Ping, ctx: MessageContext) -> Pong:
        seen.append(ctx)
        return Pong(n=request.n)

    await server_bus.serve(router)
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    caller_traceparent = f"00-{trace_id}-{caller_span}-01"
    with context.bound("req-abc-123", caller_traceparent):
        assert await bus.request(subject, Ping(n=1), Pong) == Pong(n=1)
    # Outside any bound context the handler still gets an id and a fresh, valid trace.
    assert await bus.request(subject, Ping(n=2), Pong) == Pong(n=2)

    bound_ctx, unbound_ctx = seen
    assert bound_ctx.subject == subject
    assert bound_ctx.request_id == "req-abc-123"
    assert bound_ctx.headers[context.REQUEST_ID_HEADER] == "req-abc-123"
    match = TRACEPARENT.match(bound_ctx.traceparent)
    assert match is not None, bound_ctx.traceparent
    assert match.group(1) == trace_id
    assert match.group(2) != caller_span
    assert match.group(3) == "01"

    assert unbound_ctx.request_id != "req-abc-123"
    assert re.fullmatch(r"[A-Za-z0-9._:\-]{1,128}", unbound_ctx.request_id)
    unbound_match = TRACEPARENT.match(unbound_ctx.traceparent)
    assert unbound_match is not None, unbound_ctx.traceparent
    assert unbound_match.group(1) != trace_id


async def test_serve_returns_once_the_server_routes_to_the_handlers(
    bus: Bus, server_bus: Bus
) -> None:
    # A request sent the moment serve() returns must reach the handler, never get "no
    # responders". The race this guards against lost a few percent of attempts, so try
    # many fresh subscriptions.
    for attempt in range(300):
        subject = unique(f"ready{attempt}")
        router = Router(queue="ready")

        @router.handler(subject)
        async def echo(request: Ping) -> Pong:
            return Pong(n=request.n)

        await server_bus.serve(router)
        assert await bus.request(subject, Ping(n=attempt), Pong) == Pong(n=attempt)


# --- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        NotFound("item 7 does not exist"),
        Conflict("item 7 was changed meanwhile", current_version=3),
        TooManyRequests("slow down", retry_after=7),
        Forbidden("technicians cannot delete sites", role="technician"),
    ],
    ids=lambda error: type(error).__name__,
)
async def test_handler_errors_are_raised_on_the_caller_as_the_same_type(
    bus: Bus, server_bus: Bus, error: FieldsyncError
) -> None:
    subject = unique("fails")
    router = Router(queue="fails")

    @router.handler(subject)
    async def handle(request: Ping) -> Pong:
        raise error

    await server_bus.serve(router)
    with pytest.raises(FieldsyncError) as raised:
        await bus.request(subject, Ping(n=1), Pong)

    assert type(raised.value) is type(error)
    assert raised.value.code == error.code
    assert raised.value.detail == error.detail
    assert raised.value.extensions == error.extensions
    if isinstance(error, Conflict):
        assert raised.value.extensions == {"current_version": 3}
    if isinstance(error, TooManyRequests):
        assert isinstance(raised.value, TooManyRequests)
        assert raised.value.retry_after == 7


async def test_invalid_request_is_rejected_with_field_paths(bus: Bus, server_bus: Bus) -> None:
    subject = unique("validate")
    router = Router(queue="validate")
    called: list[Lookup] = []

    @router.handler(subject)
    async def lookup(request: Lookup) -> Item:
        called.append(request)
        return Item(item_id=request.item_id, label=request.name)

    await server_bus.serve(router)
    with pytest.raises(ValidationFailed) as raised:
        await bus.request(subject, WrongLookup(item_id="seven-secret-value"), Item)

    errors = raised.value.extensions["errors"]
    by_location = {tuple(error["loc"]): error for error in errors}
    assert set(by_location) == {("body", "item_id"), ("body", "name")}
    assert by_location["body", "item_id"]["type"] == "int_parsing"
    assert by_location["body", "name"]["type"] == "missing"
    assert all(set(error) == {"loc", "msg", "type"} for error in errors)
    assert "seven-secret-value" not in repr(raised.value.extensions)
    assert called == []


async def test_unexpected_handler_exception_is_an_opaque_internal_error(
    bus: Bus, server_bus: Bus
) -> None:
    subject = unique("crash")
    router = Router(queue="crash")

    @router.handler(subject)
    async def crash(request: Ping) -> Pong:
        if request.n == 1:
            raise RuntimeError("password=hunter2 in /srv/secret/config.py")
        return Pong(n=request.n)

    await server_bus.serve(router)
    with pytest.raises(FieldsyncError) as raised:
        await bus.request(subject, Ping(n=1), Pong)

    assert type(raised.value) is FieldsyncError
    assert raised.value.code == "internal"
    assert "Traceback" not in raised.value.detail
    assert "hunter2" not in raised.value.detail
    assert "RuntimeError" not in raised.value.detail
    assert raised.value.extensions == {}
    # The replica keeps serving after a crashed handler.
    assert await bus.request(subject, Ping(n=2), Pong) == Pong(n=2)


# --- deadlines and availability -------------------------------------------------------


async def test_no_responders_is_unavailable_at_once(nats_server: NatsEndpoints) -> None:
    caller = await Bus.connect(nats_server.url, name="no-responders", request_timeout=30.0)
    try:
        subject = unique("nobody")
        with pytest.raises(Unavailable) as raised:
            # A regression to waiting for the 30 s deadline fails here instead of slowing the run.
            await asyncio.wait_for(caller.request(subject, Ping(n=1), Pong), 5)
        assert subject in raised.value.detail
        assert "no service" in raised.value.detail
    finally:
        await caller.close()


async def test_handler_slower_than_the_deadline_is_unavailable(bus: Bus, server_bus: Bus) -> None:
    subject = unique("slow")
    router = Router(queue="slow")
    started, release, finished = asyncio.Event(), asyncio.Event(), asyncio.Event()

    @router.handler(subject)
    async def slow(request: Ping) -> Pong:
        started.set()
        await release.wait()
        finished.set()
        return Pong(n=request.n)

    await server_bus.serve(router)
    try:
        with pytest.raises(Unavailable) as raised:
            await bus.request(subject, Ping(n=1), Pong, timeout=0.3)
        assert "did not answer in time" in raised.value.detail
        # The request did reach the handler, which was still busy when the caller gave up.
        await asyncio.wait_for(started.wait(), 10)
        assert not finished.is_set()
    finally:
        release.set()
    await asyncio.wait_for(finished.wait(), 5)


# --- queue groups and concurrency -----------------------------------------------------


async def test_queue_group_answers_each_request_exactly_once(
    bus: Bus, nats_server: NatsEndpoints
) -> None:
    subject = unique("queue")
    router = Router(queue="replicas")
    handled: dict[str, list[int]] = {}

    @router.handler(subject)
    async def handle(request: Ping) -> Pong:
        replica = REPLICA.get()
        assert replica is not None
        handled.setdefault(replica, []).append(request.n)
        return Pong(n=request.n)

    replicas: list[Bus] = []
    try:
        for index in range(3):
            replica_bus = await Bus.connect(
                nats_server.url, name=f"replica-{index}", request_timeout=30.0
            )
            replicas.append(replica_bus)
            # nats-py runs a subscription's callbacks in a task created by `subscribe`, so
            # each replica's handlers see the context variable set while it subscribed.
            token = REPLICA.set(f"replica-{index}")
            try:
                await replica_bus.serve(router)
            finally:
                REPLICA.reset(token)

        replies = await asyncio.gather(
            *(bus.request(subject, Ping(n=n), Pong, timeout=30.0) for n in range(300))
        )
    finally:
        for replica_bus in replicas:
            await replica_bus.close()

    assert [reply.n for reply in replies] == list(range(300))
    all_handled = [n for numbers in handled.values() for n in numbers]
    assert len(all_handled) == 300
    per_request = Counter(all_handled)
    assert set(per_request) == set(range(300))
    assert set(per_request.values()) == {1}
    # 300 requests spread over 3 members: each one getting none is a 3 * (2/3)**300 chance.
    assert set(handled) == {"replica-0", "replica-1", "replica-2"}


async def test_handlers_run_concurrently(bus: Bus, server_bus: Bus) -> None:
    subject = unique("together")
    router = Router(queue="together")
    arrived = {1: asyncio.Event(), 2: asyncio.Event()}

    @router.handler(subject)
    async def rendezvous(request: Ping) -> Pong:
        arrived[request.n].set()
        # Each waits for the other: only per-message tasks let both get here.
        await arrived[3 - request.n].wait()
        return Pong(n=request.n)

    await server_bus.serve(router)
    replies = await asyncio.wait_for(
        asyncio.gather(
            bus.request(subject, Ping(n=1), Pong, timeout=10.0),
            bus.request(subject, Ping(n=2), Pong, timeout=10.0),
        ),
        15,
    )
    assert list(replies) == [Pong(n=1), Pong(n=2)]


# --- registration ----------------------------------------------------------------------


async def no_annotations(request):  # type: ignore[no-untyped-def]
    return Pong(n=1)


async def no_return_annotation(request: Ping):  # type: ignore[no-untyped-def]
    return Pong(n=request.n)


async def plain_request(request: dict[str, int]) -> Pong:
    return Pong(n=1)


async def plain_reply(request: Ping) -> dict[str, int]:
    return {"n": request.n}


async def no_parameters() -> Pong:
    return Pong(n=1)


async def three_parameters(request: Ping, ctx: MessageContext, extra: int) -> Pong:
    return Pong(n=request.n)


@pytest.mark.parametrize(
    "function",
    [
        no_annotations,
        no_return_annotation,
        plain_request,
        plain_reply,
        no_parameters,
        three_parameters,
    ],
    ids=lambda function: function.__name__,
)
def test_handler_without_model_annotations_is_refused(
    function: Callable[..., Awaitable[Any]],
) -> None:
    router = Router(queue="refuse")
    with pytest.raises(TypeError, match=function.__name__):
        router.handler(unique("refuse"))(function)
    assert router.handlers == []


def test_duplicate_subject_is_refused() -> None:
    router = Router(queue="dupes")
    subject = unique("dupe")

    @router.handler(subject)
    async def first(request: Ping) -> Pong:
        return Pong(n=1)

    async def second(request: Ping) -> Pong:
        return Pong(n=2)

    with pytest.raises(ValueError, match=re.escape(subject)):
        router.handler(subject)(second)
    assert [spec.function for spec in router.handlers] == [first]


def test_registration_reads_models_and_context_from_the_signature() -> None:
    router = Router(queue="specs", max_in_flight=7)

    @router.handler("a")
    async def plain(request: Lookup) -> Item:
        return Item(item_id=request.item_id, label=request.name)

    @router.handler("b")
    async def with_context(request: Ping, ctx: MessageContext) -> Pong:
        return Pong(n=request.n)

    first, second = router.handlers
    assert (first.subject, first.request_model, first.reply_model) == ("a", Lookup, Item)
    assert (second.subject, second.request_model, second.reply_model) == ("b", Ping, Pong)
    assert not first.wants_context
    assert second.wants_context
    assert {spec.queue for spec in router.handlers} == {"specs"}
    assert {spec.max_in_flight for spec in router.handlers} == {7}


# --- shutdown -------------------------------------------------------------------------


async def test_close_lets_an_in_flight_handler_finish_and_reply(
    bus: Bus, nats_server: NatsEndpoints
) -> None:
    subject = unique("closing")
    name = f"closing-{secrets.token_hex(4)}"
    serving = await Bus.connect(nats_server.url, name=name, request_timeout=10.0)
    router = Router(queue="closing")
    started, release = asyncio.Event(), asyncio.Event()

    @router.handler(subject)
    async def slow(request: Ping) -> Pong:
        started.set()
        await release.wait()
        return Pong(n=request.n * 2)

    closing: asyncio.Task[None] | None = None
    try:
        await serving.serve(router)
        pending = asyncio.create_task(bus.request(subject, Ping(n=21), Pong, timeout=10.0))
        await asyncio.wait_for(started.wait(), 10)

        closing = asyncio.create_task(serving.close())
        # close() has stopped taking requests: the server no longer routes the subject to it.
        await wait_for_connection(nats_server.monitor_url, name, not_subscribed_to(subject))
        assert not closing.done(), "close() returned while a handler was still running"
        assert not pending.done()

        release.set()
        assert await asyncio.wait_for(pending, 10) == Pong(n=42)
        await asyncio.wait_for(closing, 10)
        assert not serving.is_connected
    finally:
        release.set()
        if closing is None:
            await serving.close()
        else:
            await asyncio.wait_for(asyncio.shield(closing), 15)


async def test_close_answers_requests_received_but_not_yet_started(
    bus: Bus, nats_server: NatsEndpoints
) -> None:
    subject = unique("backlog")
    name = f"backlog-{secrets.token_hex(4)}"
    serving = await Bus.connect(nats_server.url, name=name, request_timeout=10.0)
    # One handler at a time: the second request waits in the bus until the first is done.
    router = Router(queue="backlog", max_in_flight=1)
    started, release = asyncio.Event(), asyncio.Event()

    @router.handler(subject)
    async def slow(request: Ping) -> Pong:
        started.set()
        await release.wait()
        return Pong(n=request.n)

    closing: asyncio.Task[None] | None = None
    try:
        await serving.serve(router)
        before = await connection_info(nats_server.monitor_url, name)
        assert before is not None
        assert subject in before["subscriptions_list"]
        requests = [
            asyncio.create_task(bus.request(subject, Ping(n=n), Pong, timeout=10.0)) for n in (1, 2)
        ]
        await asyncio.wait_for(started.wait(), 10)
        # Both requests have been sent to the serving connection (nothing else is).
        delivered = before["out_msgs"] + 2
        await wait_for_connection(
            nats_server.monitor_url, name, lambda info: info["out_msgs"] >= delivered
        )

        closing = asyncio.create_task(serving.close())
        await wait_for_connection(nats_server.monitor_url, name, not_subscribed_to(subject))
        assert not closing.done()

        release.set()
        replies = await asyncio.wait_for(asyncio.gather(*requests), 15)
        assert sorted(reply.n for reply in replies) == [1, 2]
        await asyncio.wait_for(closing, 10)
    finally:
        release.set()
        if closing is None:
            await serving.close()
        else:
            await asyncio.wait_for(asyncio.shield(closing), 15)
