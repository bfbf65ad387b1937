"""Snowflake ids per second in one process, against raw baselines measured in the same run.

- snowflake: `SnowflakeGenerator(node_id=1).next_id()` in a tight loop.
- raw counter: the same bit layout from `time.time_ns()` and `itertools.count()`, with no
  lock, no lease check and no clock-step handling (the floor for any Python id generator).
- uuid7: `uuid_utils.compat.uuid7()`, for reference (Rust, returns a stdlib `uuid.UUID`).
- threads: 4 threads sharing one generator; total ids/s, and every id checked unique (and
  strictly increasing within each thread). The same loop on 1 thread is its baseline, since
  both keep every id in a list for the check.

Each arm runs for `--seconds` per round, the arms alternate, and the table reports medians.

    python bench/ids.py [--seconds S] [--rounds R] [--threads T]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import threading
import time
from collections.abc import Callable

from uuid_utils.compat import uuid7

from fieldsync.kit.ids.snowflake import EPOCH_MS, NODE_BITS, SEQUENCE_BITS, SnowflakeGenerator

BATCH = 10_000  # calls between clock checks, so the loop measures the generator, not the clock


def raw_counter(node_id: int = 1) -> Callable[[], int]:
    """A bare snowflake-shaped id: wall-clock ms, node id and a free-running counter."""
    counter = itertools.count()
    node = node_id << SEQUENCE_BITS
    time_ns = time.time_ns

    def next_id() -> int:
        now = time_ns() // 1_000_000 - EPOCH_MS
        return (now << (NODE_BITS + SEQUENCE_BITS)) | node | (next(counter) & 0xFFF)

    return next_id


def ids_per_second(make: Callable[[], object], seconds: float) -> float:
    """Calls of `make` per second, in batches, for about `seconds`."""
    clock = time.perf_counter
    count, started = 0, clock()
    deadline = started + seconds
    while True:
        for _ in range(BATCH):
            make()
        count += BATCH
        now = clock()
        if now >= deadline:
            return count / (now - started)


def threaded(generator: SnowflakeGenerator, threads: int, seconds: float) -> tuple[float, bool]:
    """Total ids/s of `threads` threads sharing `generator`, and whether all ids were unique."""
    barrier = threading.Barrier(threads + 1)
    collected: list[list[int]] = [[] for _ in range(threads)]
    deadline = 0.0

    def work(out: list[int]) -> None:
        append, next_id, clock = out.append, generator.next_id, time.perf_counter
        barrier.wait()
        while clock() < deadline:
            for _ in range(1_000):
                append(next_id())

    workers = [threading.Thread(target=work, args=(out,)) for out in collected]
    for worker in workers:
        worker.start()
    started = time.perf_counter()
    deadline = started + seconds
    barrier.wait()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    total = sum(len(out) for out in collected)
    everything = set(itertools.chain.from_iterable(collected))
    increasing = all(all(a < b for a, b in itertools.pairwise(out)) for out in collected)
    return total / elapsed, len(everything) == total and increasing


def main() -> None:
    parser = argparse.ArgumentParser(description="Snowflake ids per second in one process.")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per arm (median)")
    parser.add_argument("--threads", type=int, default=4, help="threads sharing one generator")
    args = parser.parse_args()

    generator = SnowflakeGenerator(node_id=1)
    arms: dict[str, Callable[[], object]] = {
        "snowflake": generator.next_id,
        "raw counter": raw_counter(),
        "uuid7": uuid7,
    }
    for make in arms.values():  # warm-up
        ids_per_second(make, 0.2)

    rates: dict[str, list[float]] = {name: [] for name in arms}
    threaded_rates: dict[int, list[float]] = {1: [], args.threads: []}
    all_unique = True
    for index in range(args.rounds):
        order = list(arms.items())
        for name, make in order if index % 2 == 0 else order[::-1]:
            rates[name].append(ids_per_second(make, args.seconds))
        for threads in threaded_rates:
            rate, unique = threaded(generator, threads, args.seconds)
            threaded_rates[threads].append(rate)
            all_unique = all_unique and unique
        print(
            f"  round {index + 1}/{args.rounds}: "
            + "  ".join(f"{name} {values[-1]:,.0f}/s" for name, values in rates.items())
            + "".join(f"  {n} thr {values[-1]:,.0f}/s" for n, values in threaded_rates.items()),
            flush=True,
        )

    median = {name: statistics.median(values) for name, values in rates.items()}
    for threads, values in threaded_rates.items():
        label = "thread" if threads == 1 else "threads"
        median[f"snowflake, {threads} {label}*"] = statistics.median(values)
    baseline = median["raw counter"]
    print()
    print(f"ids per second, median of {args.rounds} rounds of {args.seconds:g} s")
    print()
    header = f"{'arm':<22} {'ids/s':>12} {'vs raw counter':>15} {'vs snowflake':>13}"
    print(header)
    print("-" * len(header))
    for name, rate in median.items():
        print(
            f"{name:<22} {rate:>12,.0f} {rate / baseline:>14.2f}x {rate / median['snowflake']:>12.2f}x"
        )
    print()
    print(
        "* threads append every id to a list (to check uniqueness), so compare them to each other"
    )
    print(
        f"threads sharing one generator: all ids unique and increasing per thread: "
        f"{'yes' if all_unique else 'NO'}"
    )
    print(f"snowflake's ceiling is 4,096 ids per ms per node = {4096 * 1000:,} ids/s")


if __name__ == "__main__":
    main()
