"""Snowflake ids and UUIDv7 public ids, driven by injected clocks."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fieldsync.kit.errors import Unavailable
from fieldsync.kit.ids import SnowflakeGenerator, decompose, new_public_id
from fieldsync.kit.ids.snowflake import (
    EPOCH_MS,
    MAX_NODE,
    MAX_SEQUENCE,
    MAX_TIMESTAMP,
    NODE_BITS,
    SEQUENCE_BITS,
)

# Some time in 2026, well inside the 41-bit range.
BASE_MS = EPOCH_MS + 70_000_000_000


def clock_from(readings: list[int]) -> Callable[[], int]:
    """A clock returning `readings` one call at a time (and failing loudly after them)."""
    iterator: Iterator[int] = iter(readings)
    return lambda: next(iterator)


def expand(steps: list[tuple[int, int]]) -> list[int]:
    """(reading, repeat) pairs to one clock reading per id."""
    return [reading for reading, repeat in steps for _ in range(repeat)]


# Mostly a few ids per reading, sometimes a burst past one millisecond's 4,096 sequences.
repeats = st.one_of(
    st.integers(min_value=1, max_value=4),
    st.integers(min_value=1, max_value=4),
    st.integers(min_value=1, max_value=4),
    st.integers(min_value=MAX_SEQUENCE - 2, max_value=MAX_SEQUENCE + 200),
)
# Readings jump around a small window, so steps backwards (big and small) are common.
readings = st.one_of(
    st.integers(min_value=BASE_MS - 3, max_value=BASE_MS + 3),
    st.integers(min_value=BASE_MS - 10_000, max_value=BASE_MS + 10_000),
)
clock_steps = st.lists(st.tuples(readings, repeats), min_size=1, max_size=16)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=clock_steps, node_id=st.integers(min_value=0, max_value=MAX_NODE))
def test_ids_increase_strictly_whatever_the_clock_does(
    steps: list[tuple[int, int]], node_id: int
) -> None:
    clock = expand(steps)
    generator = SnowflakeGenerator(node_id, clock_ms=clock_from(clock))
    ids = [generator.next_id() for _ in clock]

    assert all(earlier < later for earlier, later in itertools.pairwise(ids))
    assert len(set(ids)) == len(ids)

    previous_timestamp = -1
    for snowflake, reading in zip(ids, clock, strict=True):
        assert 0 < snowflake < 1 << 63
        parts = decompose(snowflake)
        assert parts.node_id == node_id
        assert 0 <= parts.sequence <= MAX_SEQUENCE
        assert parts.timestamp_ms >= reading
        # The fields pack back into the very same id.
        packed = (
            ((parts.timestamp_ms - EPOCH_MS) << (NODE_BITS + SEQUENCE_BITS))
            | (parts.node_id << SEQUENCE_BITS)
            | parts.sequence
        )
        assert packed == snowflake
        if reading > previous_timestamp:
            # A clock that moved past every id so far is followed exactly, sequence reset.
            assert parts.timestamp_ms == reading
            assert parts.sequence == 0
        previous_timestamp = parts.timestamp_ms


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=clock_steps)
def test_clock_steps_back_counts_each_backward_step(steps: list[tuple[int, int]]) -> None:
    clock = expand(steps)
    generator = SnowflakeGenerator(3, clock_ms=clock_from(clock))
    for _ in clock:
        generator.next_id()
    backward = sum(1 for before, after in itertools.pairwise(clock) if after < before)
    assert generator.clock_steps_back == backward


def test_more_than_4096_ids_in_one_millisecond_roll_into_the_next() -> None:
    count = 3 * (MAX_SEQUENCE + 1) + 10
    generator = SnowflakeGenerator(5, clock_ms=lambda: BASE_MS)
    ids = [generator.next_id() for _ in range(count)]
    assert ids == sorted(set(ids))
    parts = [decompose(snowflake) for snowflake in ids]
    assert [p.timestamp_ms for p in parts[:: MAX_SEQUENCE + 1]] == [
        BASE_MS,
        BASE_MS + 1,
        BASE_MS + 2,
        BASE_MS + 3,
    ]
    assert parts[MAX_SEQUENCE] == (BASE_MS, 5, MAX_SEQUENCE)
    assert parts[MAX_SEQUENCE + 1] == (BASE_MS + 1, 5, 0)
    # A steady clock is not a clock stepping back.
    assert generator.clock_steps_back == 0


def test_a_clock_step_back_keeps_counting_from_the_last_millisecond() -> None:
    generator = SnowflakeGenerator(9, clock_ms=clock_from([BASE_MS, BASE_MS - 5_000, BASE_MS + 1]))
    first, second, third = (generator.next_id() for _ in range(3))
    assert decompose(first) == (BASE_MS, 9, 0)
    assert decompose(second) == (BASE_MS, 9, 1)
    assert decompose(third) == (BASE_MS + 1, 9, 0)
    assert generator.clock_steps_back == 1


@pytest.mark.parametrize("node_id", [-1, MAX_NODE + 1, 10_000])
def test_node_id_out_of_range_is_rejected(node_id: int) -> None:
    with pytest.raises(ValueError, match="node id"):
        SnowflakeGenerator(node_id)


@pytest.mark.parametrize("node_id", [0, MAX_NODE])
def test_node_id_bounds_are_accepted(node_id: int) -> None:
    generator = SnowflakeGenerator(node_id, clock_ms=lambda: BASE_MS)
    assert decompose(generator.next_id()).node_id == node_id


def test_no_ids_while_the_lease_is_not_held() -> None:
    held = True
    generator = SnowflakeGenerator(1, clock_ms=lambda: BASE_MS, is_valid=lambda: held)
    before = generator.next_id()
    held = False
    with pytest.raises(Unavailable):
        generator.next_id()
    held = True
    after = generator.next_id()
    assert after > before


def test_timestamp_space_exhaustion_is_unavailable() -> None:
    last = EPOCH_MS + MAX_TIMESTAMP
    generator = SnowflakeGenerator(1, clock_ms=lambda: last)
    ids = [generator.next_id() for _ in range(MAX_SEQUENCE + 1)]
    assert decompose(ids[-1]) == (last, 1, MAX_SEQUENCE)
    assert max(ids) < 1 << 63
    with pytest.raises(Unavailable, match="exhausted"):
        generator.next_id()
    with pytest.raises(Unavailable, match="exhausted"):
        SnowflakeGenerator(1, clock_ms=lambda: last + 1).next_id()


def test_threads_sharing_a_generator_never_get_the_same_id() -> None:
    generator = SnowflakeGenerator(2)
    per_thread = 20_000
    results: list[list[int]] = [[] for _ in range(4)]
    start = threading.Barrier(len(results))

    def work(out: list[int]) -> None:
        start.wait(timeout=30)
        out.extend(generator.next_id() for _ in range(per_thread))

    threads = [threading.Thread(target=work, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    everything = [snowflake for out in results for snowflake in out]
    assert len(everything) == len(set(everything)) == 4 * per_thread
    # Each thread sees its own ids in increasing order.
    assert all(out == sorted(out) for out in results)


def test_wall_clock_ids_carry_the_current_time() -> None:
    before = time.time_ns() // 1_000_000
    snowflake = SnowflakeGenerator(4).next_id()
    after = time.time_ns() // 1_000_000
    assert before <= decompose(snowflake).timestamp_ms <= after


def test_public_ids_are_uuid7_ordered_by_creation() -> None:
    before = time.time_ns() // 1_000_000
    public_ids = [new_public_id() for _ in range(20_000)]
    after = time.time_ns() // 1_000_000
    assert all(type(public_id) is uuid.UUID for public_id in public_ids)
    assert {public_id.version for public_id in public_ids} == {7}
    assert {public_id.variant for public_id in public_ids} == {uuid.RFC_4122}
    assert len(set(public_ids)) == len(public_ids)
    assert public_ids == sorted(public_ids)
    # The leading 48 bits are the Unix milliseconds at creation.
    for public_id in (public_ids[0], public_ids[-1]):
        assert before <= public_id.int >> 80 <= after


def test_public_ids_from_later_moments_sort_later() -> None:
    # Two ids from different milliseconds (waiting on the clock itself, not a sleep).
    first = new_public_id()
    start = first.int >> 80
    while time.time_ns() // 1_000_000 <= start + 1:
        pass
    second = new_public_id()
    assert (second.int >> 80) > start
    assert second > first
    assert str(second) > str(first)
