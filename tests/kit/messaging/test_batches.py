"""How `publish_atomic` reads a commit's answer, with a plain responder standing in for
servers it cannot start here (one that predates atomic batches, one answering garbage)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from fieldsync.kit.embedded.nats import NatsEndpoints
from fieldsync.kit.messaging.batches import BatchRefused, publish_atomic


@pytest.fixture
async def client(nats_server: NatsEndpoints) -> AsyncIterator[NatsClient]:
    connected: NatsClient = await nats.connect(nats_server.url, name="batches-test")
    yield connected
    await connected.close()


async def refusal_for(client: NatsClient, answer: bytes) -> BatchRefused:
    """Commit a two-message batch to a subject whose only responder answers `answer`."""
    subject = f"batches.{secrets.token_hex(6)}"
    received: list[dict[str, str]] = []

    async def respond(message: Msg) -> None:
        received.append(dict(message.headers or {}))
        await message.respond(answer)

    subscription = await client.subscribe(subject, cb=respond)
    try:
        messages = [
            (subject, b"1", {"Nats-Msg-Id": "m-1"}),
            (subject, b"2", {"Nats-Msg-Id": "m-2"}),
        ]
        with pytest.raises(BatchRefused) as refused:
            await publish_atomic(client, messages, timeout=5.0)
    finally:
        await subscription.unsubscribe()
    # Both messages went out under one batch id, numbered, the last one committing.
    assert [headers["Nats-Batch-Sequence"] for headers in received] == ["1", "2"]
    assert received[0]["Nats-Batch-Id"] == received[1]["Nats-Batch-Id"]
    assert received[1]["Nats-Batch-Commit"] == "1"
    return refused.value


async def test_a_plain_publish_ack_means_the_server_has_no_atomic_batches(
    client: NatsClient,
) -> None:
    refused = await refusal_for(client, b'{"stream":"OLD","seq":7}')
    assert refused.unsupported


async def test_the_disabled_error_code_means_the_stream_takes_no_batches(
    client: NatsClient,
) -> None:
    answer = b'{"error":{"code":400,"err_code":10174,"description":"atomic publish is disabled"}}'
    refused = await refusal_for(client, answer)
    assert refused.unsupported
    assert "disabled" in str(refused)


async def test_a_duplicate_refusal_keeps_batches_on(client: NatsClient) -> None:
    answer = b'{"error":{"code":400,"err_code":10201,"description":"duplicate message id"}}'
    refused = await refusal_for(client, answer)
    assert not refused.unsupported


async def test_an_answer_that_is_not_json_is_a_refusal_not_a_crash(client: NatsClient) -> None:
    refused = await refusal_for(client, b"<html>proxy error</html>")
    assert "not JSON" in str(refused)
    assert not refused.unsupported
