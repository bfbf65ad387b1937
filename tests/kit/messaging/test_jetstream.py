"""JetStream streams, dedupe and pull consumers against a real NATS server."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import nats
import nats.js.errors
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from pydantic import BaseModel

from fieldsync.kit import context
from fieldsync.kit.embedded.nats import NatsEndpoints
from fieldsync.kit.errors import Unavailable
from fieldsync.kit.messaging import Bus, ConsumerSpec, JetStream, StreamSpec
from fieldsync.kit.messaging import jetstream as jetstream_module
from fieldsync.kit.messaging.jetstream import DurableMessage, PullConsumer


class Reading(BaseModel):
    sensor: str
    value: int


@dataclass(frozen=True)
class Names:
    """A stream name and a subject prefix nobody else uses."""

    stream: str
    prefix: str

    def subject(self, leaf: str) -> str:
        return f"{self.prefix}.{leaf}"


@pytest.fixture
async def admin(nats_server: NatsEndpoints) -> AsyncIterator[JetStreamContext]:
    """A plain nats-py JetStream context to inspect what the kit created."""
    client: NatsClient = await nats.connect(nats_server.url, name="jetstream-admin")
    yield client.jetstream()
    await client.close()


@pytest.fixture
async def names(admin: JetStreamContext) -> AsyncIterator[Names]:
    """Fresh stream and subject names; the stream is deleted after the test."""
    token = secrets.token_hex(6)
    created = Names(stream=f"TEST_{token.upper()}", prefix=f"js.{token}")
    yield created
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await admin.delete_stream(created.stream)


@pytest.fixture
def jetstream(bus: Bus) -> JetStream:
    return bus.jetstream


async def fetch_exactly(consumer: PullConsumer, count: int) -> list[DurableMessage]:
    """Fetch until `count` messages arrived (batches may come back partial)."""
    fetched: list[DurableMessage] = []
    deadline = time.monotonic() + 10.0
    while len(fetched) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"only {len(fetched)} of {count} messages arrived")
        fetched.extend(await consumer.fetch(batch=count - len(fetched), timeout=2.0))
    assert len(fetched) == count
    return fetched


async def test_ensure_stream_creates_then_updates_in_place(
    jetstream: JetStream, admin: JetStreamContext, names: Names
) -> None:
    first = StreamSpec(name=names.stream, subjects=[names.subject("old")])
    await jetstream.ensure_stream(first)
    await jetstream.ensure_stream(first)  # idempotent: same spec again is a no-op update

    stored = await jetstream.publish(
        names.subject("old"), Reading(sensor="a", value=1), message_id="m1"
    )
    assert (stored.stream, stored.sequence, stored.duplicate) == (names.stream, 1, False)

    second = StreamSpec(name=names.stream, subjects=[names.subject("new")])
    await jetstream.ensure_stream(second)

    # Updated, not recreated: the next message continues the sequence.
    moved = await jetstream.publish(
        names.subject("new"), Reading(sensor="a", value=2), message_id="m2"
    )
    assert (moved.stream, moved.sequence, moved.duplicate) == (names.stream, 2, False)
    with pytest.raises(Unavailable):
        await asyncio.wait_for(
            jetstream.publish(names.subject("old"), Reading(sensor="a", value=3), message_id="m3"),
            10,
        )

    info = await admin.stream_info(names.stream)
    assert info.config.subjects == [names.subject("new")]
    assert info.config.storage == api.StorageType.FILE
    assert info.config.duplicate_window == pytest.approx(120.0)
    assert info.state.messages == 2


async def test_same_message_id_is_stored_once(
    jetstream: JetStream, admin: JetStreamContext, names: Names
) -> None:
    await jetstream.ensure_stream(StreamSpec(name=names.stream, subjects=[names.subject(">")]))
    subject = names.subject("readings")

    first = await jetstream.publish(subject, Reading(sensor="a", value=1), message_id="dup-1")
    again = await jetstream.publish(subject, Reading(sensor="a", value=1), message_id="dup-1")

    assert first.duplicate is False
    assert again.duplicate is True
    assert again.sequence == first.sequence
    assert (await admin.stream_info(names.stream)).state.messages == 1

    spec = ConsumerSpec(stream=names.stream, durable="dedupe")
    await jetstream.ensure_consumer(spec)
    consumer = await jetstream.pull(spec)
    try:
        fetched = await consumer.fetch(batch=10, timeout=2.0)
        assert [message.stream_sequence for message in fetched] == [first.sequence]
        assert Reading.model_validate_json(fetched[0].data) == Reading(sensor="a", value=1)
        await fetched[0].ack()
        assert await consumer.fetch(batch=10, timeout=1.0) == []
    finally:
        await consumer.close()


async def test_pull_returns_messages_in_order_with_data_and_headers(
    jetstream: JetStream, names: Names
) -> None:
    await jetstream.ensure_stream(StreamSpec(name=names.stream, subjects=[names.subject(">")]))
    subject = names.subject("readings")
    trace = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
    with context.bound("req-pull-1", trace):
        for value in range(3):
            await jetstream.publish(
                subject, Reading(sensor="b", value=value), message_id=f"order-{value}"
            )
    await jetstream.publish(subject, b'{"sensor":"raw","value":9}', message_id="order-raw")

    spec = ConsumerSpec(stream=names.stream, durable="ordered", filter_subjects=[subject])
    await jetstream.ensure_consumer(spec)
    consumer = await jetstream.pull(spec)
    try:
        fetched = await fetch_exactly(consumer, 4)
        assert [message.stream_sequence for message in fetched] == [1, 2, 3, 4]
        assert [Reading.model_validate_json(message.data) for message in fetched] == [
            Reading(sensor="b", value=0),
            Reading(sensor="b", value=1),
            Reading(sensor="b", value=2),
            Reading(sensor="raw", value=9),
        ]
        assert {message.subject for message in fetched} == {subject}
        assert [message.headers["Nats-Msg-Id"] for message in fetched] == [
            "order-0",
            "order-1",
            "order-2",
            "order-raw",
        ]
        assert [message.headers.get(context.REQUEST_ID_HEADER) for message in fetched] == [
            "req-pull-1",
            "req-pull-1",
            "req-pull-1",
            None,
        ]
        assert {message.delivery_count for message in fetched} == {1}
        for message in fetched:
            await message.ack()
    finally:
        await consumer.close()


async def test_ack_prevents_redelivery_and_nak_redelivers(
    jetstream: JetStream, admin: JetStreamContext, names: Names
) -> None:
    await jetstream.ensure_stream(StreamSpec(name=names.stream, subjects=[names.subject(">")]))
    subject = names.subject("jobs")
    await jetstream.publish(subject, Reading(sensor="done", value=1), message_id="job-1")
    await jetstream.publish(subject, Reading(sensor="retry", value=2), message_id="job-2")

    # A long ack wait: any redelivery seen below comes from nak(), not from a timeout.
    spec = ConsumerSpec(stream=names.stream, durable="worker", ack_wait_seconds=60.0)
    await jetstream.ensure_consumer(spec)
    consumer = await jetstream.pull(spec)
    try:
        done, retry = await fetch_exactly(consumer, 2)
        assert (done.delivery_count, retry.delivery_count) == (1, 1)
        await done.ack()
        await retry.nak()

        (again,) = await fetch_exactly(consumer, 1)
        assert again.stream_sequence == retry.stream_sequence
        assert again.delivery_count == 2
        assert again.data == retry.data
        await again.ack()

        info = await admin.consumer_info(names.stream, "worker")
        assert info.num_ack_pending == 0
        assert info.num_pending == 0
        assert info.ack_floor is not None
        assert info.ack_floor.stream_seq == 2
        assert await consumer.fetch(batch=10, timeout=1.0) == []
    finally:
        await consumer.close()


@pytest.mark.parametrize("confirmed", [True, False], ids=["confirmed", "unconfirmed"])
async def test_unacked_message_comes_back_after_ack_wait_but_acked_one_does_not(
    jetstream: JetStream, names: Names, confirmed: bool
) -> None:
    await jetstream.ensure_stream(StreamSpec(name=names.stream, subjects=[names.subject(">")]))
    subject = names.subject("jobs")
    await jetstream.publish(subject, Reading(sensor="acked", value=1), message_id="w-1")
    await jetstream.publish(subject, Reading(sensor="forgotten", value=2), message_id="w-2")

    spec = ConsumerSpec(stream=names.stream, durable="forgetful", ack_wait_seconds=2.0)
    await jetstream.ensure_consumer(spec)
    consumer = await jetstream.pull(spec)
    try:
        acked, forgotten = await fetch_exactly(consumer, 2)
        await acked.ack(confirmed=confirmed)
        # The unacked message is redelivered once ack_wait passes (the positive control
        # that shows the wait was long enough); the acked one never is.
        redelivered = await consumer.fetch(batch=1, timeout=15.0)
        assert [(m.stream_sequence, m.delivery_count) for m in redelivered] == [
            (forgotten.stream_sequence, 2)
        ]
        await redelivered[0].ack()
        assert await consumer.fetch(batch=1, timeout=1.0) == []
    finally:
        await consumer.close()


async def test_ensure_consumer_updates_an_existing_durable(
    jetstream: JetStream, admin: JetStreamContext, names: Names
) -> None:
    await jetstream.ensure_stream(StreamSpec(name=names.stream, subjects=[names.subject(">")]))
    await jetstream.ensure_consumer(
        ConsumerSpec(stream=names.stream, durable="tuned", ack_wait_seconds=30.0)
    )
    await jetstream.ensure_consumer(
        ConsumerSpec(stream=names.stream, durable="tuned", ack_wait_seconds=45.0)
    )
    info = await admin.consumer_info(names.stream, "tuned")
    assert info.config.ack_wait == pytest.approx(45.0)
    assert info.config.ack_policy == api.AckPolicy.EXPLICIT


@pytest.mark.parametrize("batch", [1, 10])
async def test_fetch_on_an_empty_consumer_returns_nothing(
    jetstream: JetStream, names: Names, batch: int
) -> None:
    await jetstream.ensure_stream(StreamSpec(name=names.stream, subjects=[names.subject(">")]))
    spec = ConsumerSpec(stream=names.stream, durable="idle")
    await jetstream.ensure_consumer(spec)
    consumer = await jetstream.pull(spec)
    try:
        assert await asyncio.wait_for(consumer.fetch(batch=batch, timeout=0.5), 10) == []
    finally:
        await consumer.close()


async def test_short_fetches_on_an_empty_consumer_never_raise(
    jetstream: JetStream, names: Names
) -> None:
    # nats-py can run out of a short fetch timeout in several places; every one of them
    # must come back as "no messages", not as an exception (one in a dozen used to leak).
    await jetstream.ensure_stream(StreamSpec(name=names.stream, subjects=[names.subject(">")]))
    spec = ConsumerSpec(stream=names.stream, durable="hasty")
    await jetstream.ensure_consumer(spec)
    consumer = await jetstream.pull(spec)
    try:
        for _ in range(100):
            assert await consumer.fetch(batch=10, timeout=0.01) == []
    finally:
        await consumer.close()


async def test_a_waiting_fetch_returns_a_message_as_it_arrives(
    jetstream: JetStream, names: Names
) -> None:
    # A fetch of a big batch that is already waiting on the server must hand over the
    # first message that arrives, not hold it until the batch fills or time runs out.
    await jetstream.ensure_stream(StreamSpec(name=names.stream, subjects=[names.subject(">")]))
    spec = ConsumerSpec(stream=names.stream, durable="waiting")
    await jetstream.ensure_consumer(spec)
    consumer = await jetstream.pull(spec)
    waiting = asyncio.create_task(consumer.fetch(batch=500, timeout=60.0))
    try:
        await asyncio.sleep(0.2)  # let the pull request reach the server and wait there
        assert not waiting.done()
        await jetstream.publish(
            names.subject("late"), Reading(sensor="c", value=1), message_id="late-1"
        )
        # Far below the fetch's own 60 s: only an early return passes.
        (message,) = await asyncio.wait_for(asyncio.shield(waiting), 10)
        assert Reading.model_validate_json(message.data) == Reading(sensor="c", value=1)
        await message.ack()
    finally:
        waiting.cancel()
        with contextlib.suppress(BaseException):
            await waiting
        await consumer.close()


async def test_a_fetch_takes_what_is_pending_in_one_go(jetstream: JetStream, names: Names) -> None:
    await jetstream.ensure_stream(StreamSpec(name=names.stream, subjects=[names.subject(">")]))
    for value in range(30):
        await jetstream.publish(
            names.subject("pending"), Reading(sensor="d", value=value), message_id=f"p-{value}"
        )
    spec = ConsumerSpec(stream=names.stream, durable="pending")
    await jetstream.ensure_consumer(spec)
    consumer = await jetstream.pull(spec)
    try:
        first = await asyncio.wait_for(consumer.fetch(batch=20, timeout=5.0), 10)
        rest = await fetch_exactly(consumer, 10)
        assert [message.stream_sequence for message in first + rest] == list(range(1, 31))
        assert len(first) == 20
        for message in first + rest:
            await message.ack()
    finally:
        await consumer.close()


async def test_a_fetch_stops_near_max_bytes_and_the_next_one_goes_on(
    jetstream: JetStream, names: Names
) -> None:
    await jetstream.ensure_stream(StreamSpec(name=names.stream, subjects=[names.subject(">")]))
    for value in range(12):
        await jetstream.publish(names.subject("big"), b"x" * 1000, message_id=f"b-{value}")
    spec = ConsumerSpec(stream=names.stream, durable="bytes")
    await jetstream.ensure_consumer(spec)
    consumer = await jetstream.pull(spec)
    try:
        fetched: list[list[int]] = []
        while sum(map(len, fetched)) < 12:
            batch = await asyncio.wait_for(
                consumer.fetch(batch=100, timeout=5.0, max_bytes=3500), 10
            )
            fetched.append([message.stream_sequence for message in batch])
            for message in batch:
                await message.ack()
        # The first message, then what fits in 3,500 bytes (headers and subject count).
        assert all(2 <= len(batch) <= 4 for batch in fetched[:-1]), fetched
        assert [sequence for batch in fetched for sequence in batch] == list(range(1, 13))
    finally:
        await consumer.close()


@pytest.mark.parametrize("failure", ["request fails", "server refuses"])
async def test_a_fetch_keeps_the_message_it_holds_when_taking_the_rest_fails(
    jetstream: JetStream, names: Names, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    # A cumulative ack after a fetch that dropped what it held would ack that message
    # unprocessed: the held one must come back whether the pull for the rest cannot be
    # sent (a reconnect) or the server answers it with an error status (a consumer
    # leadership change, say).
    await jetstream.ensure_stream(StreamSpec(name=names.stream, subjects=[names.subject(">")]))
    for value in range(3):
        await jetstream.publish(
            names.subject("held"), Reading(sensor="h", value=value), message_id=f"h-{value}"
        )
    spec = ConsumerSpec(stream=names.stream, durable="held")
    await jetstream.ensure_consumer(spec)
    consumer = await jetstream.pull(spec)
    real_request = consumer._request
    requests: list[dict[str, Any]] = []

    async def failing_after_the_first(request: dict[str, Any]) -> None:
        requests.append(request)
        if len(requests) == 1:
            await real_request(request)
        elif failure == "request fails":
            raise nats.errors.ConnectionReconnectingError
        else:
            status = {"Status": "409", "Description": "Leadership Change"}
            await consumer._on_message(
                Msg(_client=consumer._client, subject=consumer._inbox, headers=status)
            )

    monkeypatch.setattr(consumer, "_request", failing_after_the_first)
    try:
        (held,) = await consumer.fetch(batch=10, timeout=5.0)
        # The second pull asked for the two reported pending, at once.
        assert requests[1] == {"batch": 2, "no_wait": True}
        assert held.stream_sequence == 1
        monkeypatch.setattr(consumer, "_request", real_request)
        rest = await fetch_exactly(consumer, 2)
        assert [message.stream_sequence for message in rest] == [2, 3]
        for message in [held, *rest]:
            await message.ack()
    finally:
        await consumer.close()


async def test_messages_that_come_after_a_fetch_gave_up_are_the_next_fetchs_first(
    jetstream: JetStream, names: Names, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With no time to gather, each fetch gives up on most of what it asked for; those
    # messages still arrive, and later fetches must hand them over in stream order,
    # each exactly once.
    monkeypatch.setattr(jetstream_module, "GATHER_SECONDS", 0.0)
    await jetstream.ensure_stream(StreamSpec(name=names.stream, subjects=[names.subject(">")]))
    subject = names.subject("late")
    await jetstream.publish_batch(
        names.stream, [(subject, str(value).encode(), f"l-{value}") for value in range(200)]
    )
    spec = ConsumerSpec(stream=names.stream, durable="late", ack_all=True)
    await jetstream.ensure_consumer(spec)
    # Checking deliveries too: late replies handed over later are no gap.
    consumer = await jetstream.rewind_and_pull(spec)
    try:
        sizes: list[int] = []
        fetched: list[DurableMessage] = []
        deadline = time.monotonic() + 10.0
        while len(fetched) < 200 and time.monotonic() < deadline:
            batch = await consumer.fetch(batch=50, timeout=1.0)
            sizes.append(len(batch))
            fetched.extend(batch)
        assert [message.data for message in fetched] == [str(v).encode() for v in range(200)]
        assert max(sizes) <= 50
        await fetched[-1].ack()
        assert await consumer.fetch(batch=50, timeout=0.3) == []
    finally:
        await consumer.close()


async def test_a_fetch_from_a_consumer_that_is_gone_raises(
    jetstream: JetStream, admin: JetStreamContext, names: Names
) -> None:
    await jetstream.ensure_stream(StreamSpec(name=names.stream, subjects=[names.subject(">")]))
    spec = ConsumerSpec(stream=names.stream, durable="gone")
    await jetstream.ensure_consumer(spec)
    consumer = await jetstream.pull(spec)
    await admin.delete_consumer(names.stream, "gone")
    try:
        with pytest.raises(nats.js.errors.Error):
            await asyncio.wait_for(consumer.fetch(batch=10, timeout=2.0), 10)
    finally:
        await consumer.close()


async def test_rewind_delivers_again_everything_after_the_ack_floor(
    jetstream: JetStream, names: Names
) -> None:
    await jetstream.ensure_stream(StreamSpec(name=names.stream, subjects=[names.subject(">")]))
    subject = names.subject("rewound")
    for value in range(5):
        await jetstream.publish(subject, str(value).encode(), message_id=f"r-{value}")
    spec = ConsumerSpec(stream=names.stream, durable="rewound", ack_all=True)
    await jetstream.ensure_consumer(spec)

    # A fetcher that acks the first two of the three it took, then stops: the third was
    # delivered but never handled.
    stopped = await jetstream.pull(spec)
    taken = await fetch_exactly(stopped, 3)
    await taken[1].ack()
    await stopped.close()

    assert await jetstream.rewind(spec) == 3
    consumer = await jetstream.pull(spec, delivered=0)  # deliveries count from 1 again
    try:
        again = await fetch_exactly(consumer, 3)
        assert [message.stream_sequence for message in again] == [3, 4, 5]
    finally:
        await consumer.close()


async def test_rewind_of_a_consumer_that_does_not_answer_is_none(
    jetstream: JetStream, names: Names
) -> None:
    await jetstream.ensure_stream(StreamSpec(name=names.stream, subjects=[names.subject(">")]))
    # The server answers a reset of a missing consumer as a server before 2.14 answers
    # any reset: not at all.
    missing = ConsumerSpec(stream=names.stream, durable="missing", ack_all=True)
    assert await jetstream.rewind(missing, timeout=0.5) is None


@pytest.mark.parametrize("fetched_first", [0, 1], ids=["right-after-rewind", "mid-stream"])
async def test_a_delivery_that_reached_another_fetcher_is_a_gap(
    jetstream: JetStream, names: Names, nats_server: NatsEndpoints, fetched_first: int
) -> None:
    await jetstream.ensure_stream(StreamSpec(name=names.stream, subjects=[names.subject(">")]))
    subject = names.subject("gap")
    for value in range(3):
        await jetstream.publish(subject, str(value).encode(), message_id=f"g-{value}")
    spec = ConsumerSpec(stream=names.stream, durable="gapped", ack_all=True)
    await jetstream.ensure_consumer(spec)
    consumer = await jetstream.rewind_and_pull(spec)
    first = await fetch_exactly(consumer, fetched_first) if fetched_first else []

    # Another connection (a previous leader still running) pulls the next message: to
    # the fetcher, a lost delivery, which its first ack would otherwise cover.
    other: NatsClient = await nats.connect(nats_server.url)
    try:
        inbox = other.new_inbox()
        subscription = await other.subscribe(inbox, max_msgs=1)
        next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{names.stream}.gapped"
        await other.publish(next_subject, b'{"batch": 1}', reply=inbox)
        taken = await subscription.next_msg(timeout=5.0)
        assert taken.metadata.sequence.stream == fetched_first + 1
        with pytest.raises(jetstream_module.DeliveryGap):
            await fetch_exactly(consumer, 1)
    finally:
        await other.close()
        await consumer.close()
    assert [message.stream_sequence for message in first] == list(range(1, fetched_first + 1))


@pytest.mark.parametrize("atomic", [True, False], ids=["atomic", "one-by-one"])
async def test_publish_batch_stores_each_message_once_in_order(
    jetstream: JetStream,
    admin: JetStreamContext,
    names: Names,
    atomic: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Batches of any size, so that these few messages take the atomic path.
    monkeypatch.setattr(jetstream_module, "MIN_ATOMIC_BATCH", 1)
    await jetstream.ensure_stream(
        StreamSpec(name=names.stream, subjects=[names.subject(">")], atomic_batches=atomic)
    )
    assert bool((await admin.stream_info(names.stream)).config.allow_atomic) is atomic
    subject = names.subject("batch")
    await jetstream.publish_batch(names.stream, [(subject, b"1", "b-1"), (subject, b"2", "b-2")])
    # Sent again with one new message (a relay after a crash): an atomic batch holding
    # a stored id is refused whole, and the kit falls back to one by one.
    await jetstream.publish_batch(names.stream, [(subject, b"2", "b-2"), (subject, b"3", "b-3")])

    spec = ConsumerSpec(stream=names.stream, durable="batch")
    await jetstream.ensure_consumer(spec)
    consumer = await jetstream.pull(spec)
    try:
        fetched = await fetch_exactly(consumer, 3)
        assert [message.data for message in fetched] == [b"1", b"2", b"3"]
        assert [message.headers["Nats-Msg-Id"] for message in fetched] == ["b-1", "b-2", "b-3"]
        # The first two went in as one atomic batch only where the stream takes them.
        batched = ["Nats-Batch-Id" in message.headers for message in fetched]
        assert batched == ([True, True, False] if atomic else [False, False, False])
        for message in fetched:
            await message.ack()
    finally:
        await consumer.close()
    assert (await admin.stream_info(names.stream)).state.messages == 3


async def test_an_existing_stream_takes_atomic_batches_after_an_upgrade(
    jetstream: JetStream, admin: JetStreamContext, names: Names
) -> None:
    # A deployment whose CHANGES predates atomic batches: ensuring it again enables them
    # in place, keeping what it stores; turning them off again works the same way.
    plain = StreamSpec(name=names.stream, subjects=[names.subject(">")])
    await jetstream.ensure_stream(plain)
    await jetstream.publish(names.subject("old"), b"kept", message_id="old-1")
    await jetstream.ensure_stream(
        StreamSpec(name=names.stream, subjects=[names.subject(">")], atomic_batches=True)
    )
    info = await admin.stream_info(names.stream)
    assert (info.config.allow_atomic, info.state.messages) == (True, 1)
    await jetstream.ensure_stream(plain)
    assert not (await admin.stream_info(names.stream)).config.allow_atomic


async def test_a_stream_that_stops_taking_batches_gets_messages_one_by_one(
    jetstream: JetStream, admin: JetStreamContext, names: Names
) -> None:
    # Someone turns `allow_atomic` off on the live stream: the batch the server refuses
    # is published one by one, and so is every later batch, without another refusal.
    subjects = [names.subject(">")]
    await jetstream.ensure_stream(
        StreamSpec(name=names.stream, subjects=subjects, atomic_batches=True)
    )
    await admin.update_stream(api.StreamConfig(name=names.stream, subjects=subjects))
    subject = names.subject("off")
    size = jetstream_module.MIN_ATOMIC_BATCH
    first = [(subject, str(n).encode(), f"a-{n}") for n in range(size)]
    second = [(subject, str(n).encode(), f"b-{n}") for n in range(size)]
    sent: list[str] = []
    await jetstream.publish_batch(names.stream, first)
    original = jetstream._client.request

    async def recording_request(subject: str, payload: bytes = b"", **kwargs: Any) -> Msg:
        sent.append(subject)
        return await original(subject, payload, **kwargs)

    jetstream._client.request = recording_request  # type: ignore[method-assign]
    try:
        await jetstream.publish_batch(names.stream, second)
    finally:
        jetstream._client.request = original  # type: ignore[method-assign]
    assert sent == []  # no atomic commit was tried for the second batch
    info = await admin.stream_info(names.stream)
    assert info.state.messages == 2 * size


async def test_a_server_refusing_allow_atomic_gets_a_plain_stream(
    jetstream: JetStream, admin: JetStreamContext, names: Names, monkeypatch: pytest.MonkeyPatch
) -> None:
    # nats-server 2.11 in strict mode refuses a stream config naming `allow_atomic`
    # (2.11 does not know it): stand in for it, and expect a plain stream, not a crash.
    context = jetstream._context
    real_add = context.add_stream

    async def strict_add(config: api.StreamConfig, **params: Any) -> api.StreamInfo:
        if config.allow_atomic is not None:
            raise nats.js.errors.BadRequestError(code=400, description="unknown field")
        return await real_add(config, **params)

    monkeypatch.setattr(context, "add_stream", strict_add)
    await jetstream.ensure_stream(
        StreamSpec(name=names.stream, subjects=[names.subject(">")], atomic_batches=True)
    )
    assert not (await admin.stream_info(names.stream)).config.allow_atomic
    subject = names.subject("strict")
    messages = [(subject, b"x", f"s-{n}") for n in range(jetstream_module.MIN_ATOMIC_BATCH)]
    await jetstream.publish_batch(names.stream, messages)
    assert (await admin.stream_info(names.stream)).state.messages == len(messages)


async def test_a_small_batch_is_published_plainly_even_to_an_atomic_stream(
    jetstream: JetStream, names: Names
) -> None:
    await jetstream.ensure_stream(
        StreamSpec(name=names.stream, subjects=[names.subject(">")], atomic_batches=True)
    )
    subject = names.subject("small")
    small = [(subject, str(n).encode(), f"s-{n}") for n in range(3)]
    large = [(subject, str(n).encode(), f"l-{n}") for n in range(jetstream_module.MIN_ATOMIC_BATCH)]
    await jetstream.publish_batch(names.stream, small)
    await jetstream.publish_batch(names.stream, large)
    spec = ConsumerSpec(stream=names.stream, durable="small")
    await jetstream.ensure_consumer(spec)
    consumer = await jetstream.pull(spec)
    try:
        fetched = await fetch_exactly(consumer, len(small) + len(large))
        batched = ["Nats-Batch-Id" in message.headers for message in fetched]
        assert batched == [False] * len(small) + [True] * len(large)
        for message in fetched:
            await message.ack()
    finally:
        await consumer.close()


async def test_publish_without_a_stream_is_unavailable(jetstream: JetStream) -> None:
    subject = f"js.nostream.{secrets.token_hex(6)}"
    with pytest.raises(Unavailable) as raised:
        await asyncio.wait_for(
            jetstream.publish(subject, Reading(sensor="x", value=1), message_id="lost"), 10
        )
    assert subject in raised.value.detail


async def test_verify_enabled_passes_on_a_jetstream_server(jetstream: JetStream) -> None:
    await jetstream.verify_enabled()
