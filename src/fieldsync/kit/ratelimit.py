"""Rate limits with the `limits` library: Redis when configured, in-process otherwise.

Sliding-window counters: cheap (two keys per limit), and without the double burst a
fixed window allows at its boundary.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from fieldsync.kit.errors import TooManyRequests


@functools.lru_cache(maxsize=64)
def parse_limits(value: str) -> tuple[RateLimitItem, ...]:
    """Parse `"10/minute;1000/hour"`; raises ValueError naming the problem.

    Cached: the edge parses its configured limits on every request.
    """
    return tuple(parse_many(value))


class RateLimiter:
    """Named limits over one storage; keys are namespaced per process family."""

    def __init__(self, storage: Storage, *, namespace: str = "ratelimit") -> None:
        self._storage = storage
        self._strategy = SlidingWindowCounterRateLimiter(storage)
        self._namespace = namespace

    @classmethod
    def create(cls, redis_url: str | None, *, key_prefix: str = "fieldsync") -> RateLimiter:
        """Redis-backed when `redis_url` is set (shared by every replica), else in-process."""
        if redis_url is None:
            return cls(MemoryStorage())
        return cls(RedisStorage(f"async+{redis_url}", key_prefix=key_prefix))

    async def hit(self, limits: Sequence[RateLimitItem], *key: str) -> None:
        """Count one request against every limit; raises TooManyRequests when one is over."""
        for item in limits:
            if not await self._strategy.hit(item, self._namespace, *key):
                raise TooManyRequests(retry_after=await self._retry_after(item, *key))

    async def check(self, limits: Sequence[RateLimitItem], *key: str) -> None:
        """Raise TooManyRequests if a limit is already exhausted, without counting."""
        for item in limits:
            if not await self._strategy.test(item, self._namespace, *key):
                raise TooManyRequests(retry_after=await self._retry_after(item, *key))

    async def count(self, limits: Sequence[RateLimitItem], *key: str) -> None:
        """Count one event (e.g. a failed login) without refusing it."""
        for item in limits:
            await self._strategy.hit(item, self._namespace, *key)

    async def clear(self, limits: Sequence[RateLimitItem], *key: str) -> None:
        """Forget the counts of `key` (e.g. after a successful login)."""
        for item in limits:
            await self._strategy.clear(item, self._namespace, *key)

    async def _retry_after(self, item: RateLimitItem, *key: str) -> int:
        stats = await self._strategy.get_window_stats(item, self._namespace, *key)
        return max(1, math.ceil(stats.reset_time - time.time()))
