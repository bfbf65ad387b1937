"""Atomic batch publishing (JetStream 2.12+): many messages stored as one, or none.

Publishing a message at a time costs the server a write (and, with `sync_interval:
always`, a sync) per message: about 0.1 ms of its CPU each here, more than the rest
of a relayed change. An atomic batch is staged by the server and stored in one go,
about ten times cheaper. The protocol (nats-server ADR-50): every message carries
`Nats-Batch-Id` and its 1-based `Nats-Batch-Sequence`; the last also carries
`Nats-Batch-Commit: 1` and a reply subject, and only it is answered, with the batch's
last stream sequence and count, or an error. nats-py has no helper for it yet, hence
these few lines.

A batch is refused whole when any of its `Nats-Msg-Id`s is already stored (a relay
republishing after a crash): the caller then publishes the messages one by one, and
the stream's dedupe window drops the stored ones.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import nats.errors
import orjson
from nats.aio.client import Client as NatsClient

BATCH_ID = "Nats-Batch-Id"
BATCH_SEQUENCE = "Nats-Batch-Sequence"
BATCH_COMMIT = "Nats-Batch-Commit"
# The server's default ceiling on messages in one atomic batch (`jetstream.limits.batch`).
MAX_BATCH_MESSAGES = 1000


# The server's error code for a batch sent to a stream without `allow_atomic`.
ATOMIC_DISABLED = 10174


class BatchRefused(Exception):
    """The server stored nothing of the batch (a duplicate id, a limit, no support)."""

    def __init__(self, reason: str, *, unsupported: bool = False) -> None:
        super().__init__(reason)
        # True when the stream does not take atomic batches at all (any more): a server
        # that predates them, or a stream whose `allow_atomic` was turned off since.
        self.unsupported = unsupported


async def publish_atomic(
    client: NatsClient,
    messages: Sequence[tuple[str, bytes, dict[str, str]]],
    *,
    timeout: float,
) -> tuple[str, int]:
    """Store `(subject, payload, headers)` messages in order, all or none.

    Returns the stream and the sequence of the first message stored. Raises
    BatchRefused when the server refused the batch, and nats-py's errors when the
    connection fails or no answer comes (then the batch may or may not be stored).
    """
    if not 0 < len(messages) <= MAX_BATCH_MESSAGES:
        raise ValueError(f"an atomic batch holds 1 to {MAX_BATCH_MESSAGES} messages")
    batch_id = uuid.uuid4().hex
    last = len(messages)
    for sequence, (subject, data, headers) in enumerate(messages, start=1):
        batch_headers = {**headers, BATCH_ID: batch_id, BATCH_SEQUENCE: str(sequence)}
        if sequence < last:
            await client.publish(subject, data, headers=batch_headers)
            continue
        batch_headers[BATCH_COMMIT] = "1"
        try:
            reply = await client.request(subject, data, timeout=timeout, headers=batch_headers)
        except nats.errors.NoRespondersError:
            raise BatchRefused("no stream answered the batch's commit") from None
    try:
        answer = orjson.loads(reply.data)
    except orjson.JSONDecodeError:
        raise BatchRefused(f"the commit's answer is not JSON: {reply.data[:80]!r}") from None
    if not isinstance(answer, dict):
        raise BatchRefused(f"the commit's answer is not an object: {answer!r}")
    error = answer.get("error")
    if error is not None:
        code = error.get("err_code") if isinstance(error, dict) else None
        raise BatchRefused(str(error), unsupported=code == ATOMIC_DISABLED)
    if "batch" not in answer:
        # A server without atomic batches answers the last message alone as a plain
        # publish; its earlier messages were never acknowledged, so this is no success.
        raise BatchRefused(f"a plain publish answered the commit: {answer!r}", unsupported=True)
    if int(answer["count"]) != last:
        raise BatchRefused(f"the server stored {answer['count']} of {last} messages")
    return str(answer["stream"]), int(answer["seq"]) - last + 1
