"""The Bus: one NATS connection per process, serving routers and sending requests."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, TypeVar

import nats
import nats.errors
import structlog
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import BaseModel, ValidationError

from fieldsync.kit import context
from fieldsync.kit.errors import FieldsyncError, Unavailable
from fieldsync.kit.logging import get_logger
from fieldsync.kit.messaging.codec import (
    ERROR_HEADER,
    decode_error,
    encode_error,
    validation_failed,
)
from fieldsync.kit.messaging.jetstream import JetStream
from fieldsync.kit.messaging.router import HandlerSpec, MessageContext, Router
from fieldsync.kit.metrics import NATS_HANDLER_LATENCY, NATS_REQUEST_LATENCY

log = get_logger(__name__)
ReplyT = TypeVar("ReplyT", bound=BaseModel)


class Bus:
    """A connected NATS client with typed request-reply on top.

    Each received request runs in its own task (bounded per handler) so slow handlers
    do not hold up the subscription, as nats-py would if the callback did the work.
    """

    def __init__(self, client: NatsClient, *, request_timeout: float) -> None:
        self._client = client
        self.request_timeout = request_timeout
        self.jetstream = JetStream(client)
        self._subscriptions: list[Subscription] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def connect(
        cls, url: str, *, name: str, request_timeout: float = 5.0, connect_timeout: float = 5.0
    ) -> Bus:
        """Connect to NATS; an unreachable server raises Unavailable naming the URL."""

        connected = False

        async def on_error(exc: Exception) -> None:
            # Failures of the first connect are reported once, by the exception below.
            if connected:
                log.warning("nats connection error", error=str(exc))

        try:
            client = await nats.connect(
                url,
                name=name,
                connect_timeout=connect_timeout,
                allow_reconnect=True,
                # nats-py applies this bound to the first connect too: fail fast there...
                max_reconnect_attempts=2,
                reconnect_time_wait=0.5,
                error_cb=on_error,
            )
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            reason = str(exc) or type(exc).__name__
            raise Unavailable(f"cannot connect to NATS at {url}: {reason}") from None
        # ...but once connected, never give up reconnecting (nats-py reads this option live).
        client.options["max_reconnect_attempts"] = -1
        connected = True
        return cls(client, request_timeout=request_timeout)

    @property
    def is_connected(self) -> bool:
        """True while the connection is up."""
        return bool(self._client.is_connected)

    async def ping(self, timeout: float = 2.0) -> float:
        """Round-trip time to the server in seconds; raises Unavailable when it fails."""
        try:
            return float(await self._client.rtt(timeout=timeout))  # type: ignore[arg-type]
        except (TimeoutError, nats.errors.Error) as exc:
            raise Unavailable(f"NATS did not answer a ping: {exc or type(exc).__name__}") from None

    async def serve(self, router: Router) -> None:
        """Subscribe every handler of `router` in its queue group."""
        for spec in router.handlers:
            subscription = await self._client.subscribe(
                spec.subject, queue=spec.queue, cb=self._dispatcher(spec)
            )
            self._subscriptions.append(subscription)
        await self._sync_with_server()

    async def _sync_with_server(self, timeout: float = 5.0) -> None:
        """Return once the server has processed every command this client sent so far.

        `flush()` is not enough: nats-py 2.16 writes its PING straight to the socket,
        ahead of commands still queued for its flusher task (such as the SUBs `serve`
        just sent), so it can return before the server knows the subscriptions and
        the first requests get "no responders". A message to our own inbox travels
        through the same ordered queue as those SUBs, so its echo proves they arrived.
        """
        inbox = self._client.new_inbox()
        probe = await self._client.subscribe(inbox)
        try:
            await self._client.publish(inbox, b"")
            await probe.next_msg(timeout=timeout)
        except nats.errors.Error as exc:
            reason = str(exc) or type(exc).__name__
            raise Unavailable(f"NATS did not confirm the subscriptions: {reason}") from None
        finally:
            with contextlib.suppress(nats.errors.Error):
                await probe.unsubscribe()

    def _dispatcher(self, spec: HandlerSpec) -> Any:
        slots = asyncio.Semaphore(spec.max_in_flight)

        async def dispatch(message: Msg) -> None:
            await slots.acquire()
            task = asyncio.create_task(self._handle(spec, message, slots))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return dispatch

    async def _handle(self, spec: HandlerSpec, message: Msg, slots: asyncio.Semaphore) -> None:
        started = time.perf_counter()
        headers = message.headers or {}
        request_id, traceparent = context.from_headers(headers)
        structlog.contextvars.bind_contextvars(
            request_id=request_id,
            traceparent=traceparent,
            trace_id=context.trace_id_of(traceparent),
            subject=spec.subject,
        )
        outcome = "ok"
        try:
            try:
                request = spec.request_model.model_validate_json(message.data)
            except ValidationError as exc:
                raise validation_failed(exc, "body") from None
            if spec.wants_context:
                ctx = MessageContext(spec.subject, request_id, traceparent, dict(headers))
                reply = await spec.function(request, ctx)
            else:
                reply = await spec.function(request)
            body, reply_headers = reply.model_dump_json().encode(), None
        except FieldsyncError as error:
            outcome = error.code
            body, reply_headers = encode_error(error)
        except Exception:
            outcome = "internal"
            log.exception("nats handler failed")
            body, reply_headers = encode_error(FieldsyncError("internal error"))
        finally:
            slots.release()
        if message.reply:
            try:
                await self._client.publish(message.reply, body, headers=reply_headers)
            except nats.errors.Error as exc:
                log.warning("could not send reply", error=str(exc))
        NATS_HANDLER_LATENCY.labels(spec.subject, outcome).observe(time.perf_counter() - started)

    async def request(
        self,
        subject: str,
        payload: BaseModel,
        reply_model: type[ReplyT],
        *,
        timeout: float | None = None,
    ) -> ReplyT:
        """Send `payload` and return the typed reply.

        Raises the error type the handler raised; `Unavailable` at once when nobody
        listens on `subject` (NATS "no responders") and when the deadline passes.
        """
        bound = context.current()
        headers = {
            context.REQUEST_ID_HEADER: bound.get("request_id") or context.new_request_id(),
            context.TRACEPARENT_HEADER: context.child_traceparent(bound.get("traceparent")),
        }
        started = time.perf_counter()
        outcome = "ok"
        try:
            message = await self._client.request(
                subject,
                payload.model_dump_json().encode(),
                timeout=self.request_timeout if timeout is None else timeout,
                headers=headers,
            )
            error_code = message.headers.get(ERROR_HEADER) if message.headers else None
            if error_code is not None:
                outcome = error_code
                raise decode_error(error_code, message.data)
            return reply_model.model_validate_json(message.data)
        except nats.errors.NoRespondersError:
            outcome = "no-responders"
            raise Unavailable(f"no service is listening on {subject}") from None
        except nats.errors.TimeoutError:
            outcome = "timeout"
            raise Unavailable(f"{subject} did not answer in time") from None
        except (nats.errors.ConnectionClosedError, nats.errors.ConnectionDrainingError):
            outcome = "disconnected"
            raise Unavailable("the NATS connection is closed") from None
        finally:
            NATS_REQUEST_LATENCY.labels(subject, outcome).observe(time.perf_counter() - started)

    async def publish(self, subject: str, payload: BaseModel) -> None:
        """Fire-and-forget core NATS publish (pokes, notifications)."""
        bound = context.current()
        headers = {context.REQUEST_ID_HEADER: bound["request_id"]} if bound else None
        await self._client.publish(subject, payload.model_dump_json().encode(), headers=headers)

    async def close(self, grace: float = 10.0) -> None:
        """Stop taking requests, answer those already received, and close the connection.

        Subscriptions are drained rather than unsubscribed: requests NATS delivered to
        this process before it stopped listening (queued behind `max_in_flight`, or in
        flight on the socket) still get a handler and a reply, instead of leaving their
        callers to time out. Draining and running handlers share `grace` seconds.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        subscriptions, self._subscriptions = self._subscriptions, []
        if subscriptions and not self._client.is_closed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    drains = [sub.drain() for sub in subscriptions]  # type: ignore[no-untyped-call]
                    await asyncio.gather(*drains, return_exceptions=True)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=max(0.0, deadline - loop.time()))
        if not self._client.is_closed:
            try:
                await self._client.drain()
            except (TimeoutError, nats.errors.Error):
                await self._client.close()
