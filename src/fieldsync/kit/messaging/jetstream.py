"""JetStream streams and consumers declared from code, and durable publishes.

Streams are file-backed with a dedupe window, so a publisher that retries after a
crash with the same `Nats-Msg-Id` never stores a message twice.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import api
from pydantic import BaseModel

from fieldsync.kit import context
from fieldsync.kit.errors import Unavailable
from fieldsync.kit.logging import get_logger
from fieldsync.kit.messaging.batches import MAX_BATCH_MESSAGES, BatchRefused, publish_atomic

# How long a fetch that holds a message waits for the ones the server said were pending
# (they come at once, unless another replica of the consumer took them first).
GATHER_SECONDS = 0.05
# A fetch waits this much past its pull request's expiry for the server's 408.
EXPIRY_MARGIN_SECONDS = 0.05
# Fewer messages than this go pipelined even to a stream that takes atomic batches: a
# batch costs the server a fixed ~1.5 ms of CPU (and ~3 ms of latency) here, which
# pays off from about a dozen messages (a plain publish: ~0.1 ms each).
MIN_ATOMIC_BATCH = 16

log = get_logger(__name__)


@dataclass(frozen=True)
class StreamSpec:
    """A stream as code declares it."""

    name: str
    subjects: Sequence[str]
    duplicate_window_seconds: float = 120.0
    max_age_seconds: float | None = None
    work_queue: bool = False
    replicas: int = 1
    # Accept atomic batches (nats-server 2.12+; see batches.py). Older servers ignore it.
    atomic_batches: bool = False

    def to_config(self) -> api.StreamConfig:
        """The nats-py stream configuration (file storage, always)."""
        return api.StreamConfig(
            name=self.name,
            subjects=list(self.subjects),
            storage=api.StorageType.FILE,
            retention=(
                api.RetentionPolicy.WORK_QUEUE if self.work_queue else api.RetentionPolicy.LIMITS
            ),
            duplicate_window=self.duplicate_window_seconds,
            max_age=self.max_age_seconds,
            num_replicas=self.replicas,
            allow_atomic=True if self.atomic_batches else None,
        )


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable pull consumer as code declares it."""

    stream: str
    durable: str
    filter_subjects: Sequence[str] = field(default_factory=tuple)
    ack_wait_seconds: float = 30.0
    max_deliver: int = -1
    max_ack_pending: int = 1000
    # Acknowledging a message acknowledges every earlier one: for consumers that
    # process in order and commit whole batches (one ack per batch).
    ack_all: bool = False

    def to_config(self) -> api.ConsumerConfig:
        """The nats-py consumer configuration (explicit acks, deliver all)."""
        config: dict[str, Any] = {
            "durable_name": self.durable,
            "ack_policy": api.AckPolicy.ALL if self.ack_all else api.AckPolicy.EXPLICIT,
            "deliver_policy": api.DeliverPolicy.ALL,
            "ack_wait": self.ack_wait_seconds,
            "max_deliver": self.max_deliver,
            "max_ack_pending": self.max_ack_pending,
        }
        subjects = list(self.filter_subjects)
        if len(subjects) == 1:
            config["filter_subject"] = subjects[0]
        elif subjects:
            config["filter_subjects"] = subjects
        return api.ConsumerConfig(**config)


@dataclass(frozen=True)
class Acknowledged:
    """What JetStream said after storing a message."""

    stream: str
    sequence: int
    duplicate: bool


class DurableMessage:
    """A message fetched from a pull consumer; acknowledge it once handled."""

    __slots__ = ("_message", "data", "subject")

    def __init__(self, message: Msg) -> None:
        self._message = message
        self.subject: str = message.subject
        self.data: bytes = message.data

    @property
    def headers(self) -> dict[str, str]:
        """The message's headers (a copy, made when asked for: most handlers never do)."""
        return dict(self._message.headers or {})

    @property
    def stream_sequence(self) -> int:
        """Position of the message in its stream."""
        return int(self._message.metadata.sequence.stream)

    @property
    def delivery_count(self) -> int:
        """How many times the message has been delivered (1 on the first try)."""
        return int(self._message.metadata.num_delivered)

    async def ack(self, *, confirmed: bool = True) -> None:
        """Done: never deliver again.

        `confirmed` waits for the server's confirmation, a round trip per message.
        Handlers for which a redelivery is a no-op can pass False: the ack is then only
        queued on the connection, and an ack lost with it costs one harmless redelivery.
        """
        if confirmed:
            await self._message.ack_sync()
        else:
            await self._message.ack()

    async def nak(self, delay_seconds: float | None = None) -> None:
        """Not done: deliver again, after `delay_seconds` when given."""
        await self._message.nak(delay=delay_seconds)

    async def term(self) -> None:
        """Never deliver again, without success (poison message)."""
        await self._message.term()


class DeliveryGap(Exception):
    """A delivery of an ack-all consumer never reached this fetcher (lost on a
    reconnect, or taken by another fetcher): acking what came after it would ack it too."""


class PullConsumer:
    """Fetches batches from a durable consumer through one inbox of its own.

    nats-py's `fetch` awaits each message of a batch through a task and a timer of its
    own (about 40 µs a message in bench/bus.py's pull scenario); this consumer sends
    the same pull requests (`$JS.API.CONSUMER.MSG.NEXT`) and collects the replies in
    a plain callback (about 13 µs). One fetch at a time per consumer.

    Given `delivered` (the consumer's delivery sequence when this fetcher started), a
    fetch checks that deliveries reach it without a gap and raises DeliveryGap if not.
    """

    def __init__(
        self, client: NatsClient, stream: str, durable: str, delivered: int | None = None
    ) -> None:
        self._client = client
        self._delivered = delivered
        self._next_subject = f"{api.DEFAULT_PREFIX}.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._inbox = client.new_inbox()
        self._subscription: Subscription | None = None
        # Replies to every pull request so far, in the order the server sent them; a
        # message that comes after the fetch that asked for it gave up waits here for
        # the next fetch, which hands it over first (stream order is kept).
        self._arrived: deque[Msg] = deque()
        self._wakeup = asyncio.Event()

    async def start(self) -> None:
        """Subscribe to the consumer's inbox (before any fetch)."""
        self._subscription = await self._client.subscribe(self._inbox, cb=self._on_message)

    async def _on_message(self, message: Msg) -> None:
        self._arrived.append(message)
        self._wakeup.set()

    async def fetch(
        self, batch: int = 100, timeout: float = 1.0, *, max_bytes: int | None = None
    ) -> list[DurableMessage]:
        """Up to `batch` messages, as soon as one is there; [] when none comes in `timeout`.

        `max_bytes` bounds what the server sends after the first message (the pull
        request's `max_bytes`; it ends the request with a 409 status when reached).
        Set it above the stream's largest message, or a message past it is left for
        the next fetch.

        A pull of a whole batch can hold a message that arrived while it waited until
        the rest of the batch or the timeout came (seen in bench/sync.py: a change
        reached the ingester 220 ms after the stream). So a fetch asks for one message,
        and only when that message says more are pending (`num_pending`) asks for those
        at once (`no_wait`), up to `batch`: the server has them, so they come together.
        """
        messages = self._take(batch)
        if not messages:
            await self._request({"batch": 1, "expires": int(timeout * 1e9)})
            # A little past the server's own expiry, whose 408 normally ends the wait.
            messages = await self._collect(1, timeout + EXPIRY_MARGIN_SECONDS)
            if not messages:
                return []
        pending = messages[-1].metadata.num_pending or 0
        wanted = min(batch - len(messages), pending)
        if wanted > 0:
            # What is held is delivered to us: returning it when taking the rest fails,
            # rather than raising, keeps a caller that acks cumulatively from skipping
            # past it (an error status raised from the gather would drop it).
            try:
                rest: dict[str, Any] = {"batch": wanted, "no_wait": True}
                if max_bytes is not None:
                    rest["max_bytes"] = max_bytes
                await self._request(rest)
                messages += await self._collect(wanted, GATHER_SECONDS)
            except nats.errors.Error as exc:
                log.warning("jetstream.fetch_rest_failed", error=type(exc).__name__)
        self._check_unbroken(messages)
        return [DurableMessage(message) for message in messages]

    def _check_unbroken(self, messages: list[Msg]) -> None:
        """Raise DeliveryGap unless `messages` continue the deliveries seen so far.

        One fetcher gets its deliveries in order, so the first and last delivery
        sequences and the count tell whether any is missing.
        """
        if self._delivered is None:
            return
        first = messages[0].metadata.sequence.consumer
        last = messages[-1].metadata.sequence.consumer
        if first != self._delivered + 1 or last - first + 1 != len(messages):
            raise DeliveryGap(
                f"delivery gap: deliveries {self._delivered + 1}..{last} reached this fetcher"
                f" as {len(messages)} messages"
            )
        self._delivered = last

    async def _request(self, request: dict[str, Any]) -> None:
        await self._client.publish(self._next_subject, orjson.dumps(request), reply=self._inbox)

    def _take(self, batch: int) -> list[Msg]:
        """Messages that arrived after an earlier fetch stopped waiting (statuses dropped)."""
        taken: list[Msg] = []
        while self._arrived and len(taken) < batch:
            message = self._arrived.popleft()
            if _status(message) is None:
                taken.append(message)
        return taken

    async def _collect(self, wanted: int, seconds: float) -> list[Msg]:
        """Up to `wanted` messages; fewer when the server says no more come or time is up."""
        collected: list[Msg] = []
        try:
            async with asyncio.timeout(seconds):
                while len(collected) < wanted:
                    if not self._arrived:
                        self._wakeup.clear()
                        await self._wakeup.wait()
                        continue
                    message = self._arrived.popleft()
                    status = _status(message)
                    if status is None:
                        collected.append(message)
                    elif status in _END_OF_REQUEST:
                        break
                    elif status != _HEARTBEAT:
                        if collected:
                            break  # held messages first; the error comes again if it lasts
                        nats.js.errors.APIError.from_msg(message)
        except TimeoutError:
            pass
        return collected

    async def close(self) -> None:
        """Stop fetching (the durable consumer itself stays on the server)."""
        if self._subscription is not None:
            await self._subscription.unsubscribe()
            self._subscription = None


# Status replies to a pull request: no more messages for it (404, 408), a heartbeat (100).
_END_OF_REQUEST = frozenset(
    {api.StatusCode.NO_MESSAGES.value, api.StatusCode.REQUEST_TIMEOUT.value}
)
_HEARTBEAT = "100"


def _status(message: Msg) -> str | None:
    """The status code of a status reply, None for a message of the stream."""
    if message.headers is None or message.data:
        return None
    status = message.headers.get(api.Header.STATUS.value)
    return None if status is None else str(status)


class JetStream:
    """JetStream operations over the Bus's connection."""

    def __init__(self, client: NatsClient) -> None:
        self._client = client
        self._context = client.jetstream()
        # Streams whose server confirmed `allow_atomic` when this process ensured them.
        self._atomic_streams: set[str] = set()

    async def verify_enabled(self) -> None:
        """Raise Unavailable unless the account has JetStream."""
        try:
            await self._context.account_info()
        except (nats.js.errors.Error, nats.errors.Error) as exc:
            raise Unavailable(f"JetStream is not enabled on this NATS server ({exc})") from None

    async def ensure_stream(self, spec: StreamSpec) -> None:
        """Create the stream, or update it to match `spec`."""
        config = spec.to_config()
        try:
            info = await self._put_stream(config)
        except nats.js.errors.BadRequestError as exc:
            if not config.allow_atomic:
                raise
            # A 2.11 server in strict mode refuses the field it does not know; the
            # stream then takes messages one at a time, as on any older server.
            log.warning("jetstream.allow_atomic_refused", stream=spec.name, error=str(exc))
            config.allow_atomic = None
            info = await self._put_stream(config)
        # A server that predates atomic batches drops the unknown field from the config
        # it answers with: publish to that stream one message at a time.
        if spec.atomic_batches and info.config.allow_atomic:
            self._atomic_streams.add(spec.name)
        else:
            self._atomic_streams.discard(spec.name)

    async def _put_stream(self, config: api.StreamConfig) -> api.StreamInfo:
        try:
            await self._context.stream_info(config.name or "")
        except nats.js.errors.NotFoundError:
            return await self._context.add_stream(config)
        return await self._context.update_stream(config)

    async def ensure_consumer(self, spec: ConsumerSpec) -> None:
        """Create or update a durable pull consumer."""
        await self._context.add_consumer(spec.stream, spec.to_config())

    async def rewind(self, spec: ConsumerSpec, *, timeout: float = 2.0) -> int | None:
        """Deliver again everything after the consumer's ack floor, delivered or not.

        For a consumer that acks "all": a message delivered to a fetcher that stopped
        before handling it would otherwise be acked by the next fetcher's first ack. The
        reset API (`$JS.API.CONSUMER.RESET`, ADR-60) came with nats-server 2.14; older
        servers do not answer it. Returns the stream sequence delivered next (delivery
        sequences start again at 1), or None when the server did not answer (an older
        server, or no such consumer) or refused.
        """
        subject = f"{api.DEFAULT_PREFIX}.CONSUMER.RESET.{spec.stream}.{spec.durable}"
        try:
            reply = await self._client.request(subject, b"", timeout=timeout)
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
            log.warning("jetstream.consumer_reset_unanswered", consumer=spec.durable)
            return None
        answer = orjson.loads(reply.data)
        if "error" in answer or "reset_seq" not in answer:
            log.warning(
                "jetstream.consumer_reset_refused",
                consumer=spec.durable,
                error=str(answer.get("error"))[:200],
            )
            return None
        return int(answer["reset_seq"])

    async def pull(self, spec: ConsumerSpec, *, delivered: int | None = None) -> PullConsumer:
        """A fetcher bound to an existing durable consumer.

        Given `delivered`, the consumer's delivery sequence now, it checks that every
        later delivery reaches it (see PullConsumer).
        """
        consumer = PullConsumer(self._client, spec.stream, spec.durable, delivered)
        await consumer.start()
        return consumer

    async def rewind_and_pull(self, spec: ConsumerSpec) -> PullConsumer:
        """Rewind an ack-all consumer, then a fetcher that checks for lost deliveries.

        After a rewind the server counts deliveries from 1, so a delivery taken by
        another fetcher meanwhile (a previous leader still running) shows as a gap at
        once. On a server that cannot rewind, deliveries are not checked either: there a
        gap could only be skipped, and dropping the fetched batch would lose more.
        """
        rewound = await self.rewind(spec)
        return await self.pull(spec, delivered=None if rewound is None else 0)

    async def publish(
        self, subject: str, payload: BaseModel | bytes, *, message_id: str, timeout: float = 5.0
    ) -> Acknowledged:
        """Store a message once (dedupe by `message_id`) and wait until it is stored."""
        data = payload if isinstance(payload, bytes) else payload.model_dump_json().encode()
        headers = {"Nats-Msg-Id": message_id}
        bound = context.current()
        if "request_id" in bound:
            headers[context.REQUEST_ID_HEADER] = bound["request_id"]
        try:
            ack = await self._context.publish(subject, data, timeout=timeout, headers=headers)
        except (
            # nats-py reports "no stream listens on this subject" as NoStreamResponseError.
            nats.js.errors.NoStreamResponseError,
            nats.errors.NoRespondersError,
            nats.errors.TimeoutError,
            nats.errors.ConnectionClosedError,
            nats.errors.ConnectionDrainingError,
        ) as exc:
            raise Unavailable(f"JetStream did not store {subject}: {type(exc).__name__}") from None
        return Acknowledged(stream=ack.stream, sequence=ack.seq, duplicate=bool(ack.duplicate))

    async def publish_batch(
        self, stream: str, messages: Sequence[tuple[str, bytes, str]], *, timeout: float = 5.0
    ) -> None:
        """Store `(subject, payload, message_id)` messages of `stream` in order, each once.

        In atomic batches when this process ensured `stream` with `atomic_batches`, the
        server took it, and there are at least `MIN_ATOMIC_BATCH` messages; pipelined
        (`publish_many`) otherwise, and for a batch the server refused or did not
        answer: dedupe by message id makes that safe whether or not it was stored.
        """
        if stream not in self._atomic_streams or len(messages) < MIN_ATOMIC_BATCH:
            await self.publish_many(messages, timeout=timeout)
            return
        bound = context.current()
        extra = {context.REQUEST_ID_HEADER: bound["request_id"]} if "request_id" in bound else {}
        for start in range(0, len(messages), MAX_BATCH_MESSAGES):
            chunk = messages[start : start + MAX_BATCH_MESSAGES]
            if stream not in self._atomic_streams:
                await self.publish_many(chunk, timeout=timeout)
                continue
            staged = [
                (subject, data, {**extra, "Nats-Msg-Id": mid}) for subject, data, mid in chunk
            ]
            try:
                await publish_atomic(self._client, staged, timeout=timeout)
            except BatchRefused as refused:
                if refused.unsupported:
                    # The stream stopped taking batches (its config changed under us).
                    self._atomic_streams.discard(stream)
                await self.publish_many(chunk, timeout=timeout)
            except nats.errors.TimeoutError:
                await self.publish_many(chunk, timeout=timeout)
            except (nats.errors.ConnectionClosedError, nats.errors.ConnectionDrainingError) as exc:
                raise Unavailable(
                    f"JetStream did not store a batch: {type(exc).__name__}"
                ) from None

    async def publish_many(
        self, messages: Sequence[tuple[str, bytes, str]], *, timeout: float = 5.0
    ) -> list[Acknowledged]:
        """Store `(subject, payload, message_id)` messages in this order, pipelined.

        All are sent on the one connection before the first ack is awaited (NATS keeps
        a connection's messages in order, so the stream stores them in this order), then
        the acks are awaited in order. The first failure cancels the rest and raises
        Unavailable: a caller retrying the whole batch republishes the stored ones under
        the same ids, which the stream's dedupe window drops.
        """
        bound = context.current()
        pending: list[asyncio.Future[Any]] = []
        try:
            for subject, data, message_id in messages:
                headers = {"Nats-Msg-Id": message_id}
                if "request_id" in bound:
                    headers[context.REQUEST_ID_HEADER] = bound["request_id"]
                pending.append(
                    await self._context.publish_async(
                        subject, data, wait_stall=timeout, headers=headers
                    )
                )
            acks = []
            for future in pending:
                ack = await asyncio.wait_for(asyncio.shield(future), timeout)
                acks.append(
                    Acknowledged(stream=ack.stream, sequence=ack.seq, duplicate=bool(ack.duplicate))
                )
            return acks
        except (
            TimeoutError,
            nats.js.errors.Error,
            nats.errors.NoRespondersError,
            nats.errors.TimeoutError,
            nats.errors.ConnectionClosedError,
            nats.errors.ConnectionDrainingError,
        ) as exc:
            raise Unavailable(f"JetStream did not store a batch: {type(exc).__name__}") from None
        finally:
            for future in pending:
                future.cancel()  # a done future ignores it; an open one frees its slot
