"""Prometheus metrics shared by the HTTP edge and the messaging kit.

Metric objects are module-level because prometheus-client's registry is; they are
read-only plumbing, never application state.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from threading import Lock
from time import time

import prometheus_client
import prometheus_client.metrics
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample
from prometheus_client.utils import INF, floatToGoString

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

HTTP_REQUESTS = Counter(
    "fieldsync_http_requests_total",
    "HTTP requests by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "fieldsync_http_request_duration_seconds",
    "HTTP request latency by method and route template.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)


class LatencyHistogram(Collector):
    """A labelled histogram for per-message latencies, cheap to observe.

    It exports exactly what a `prometheus_client.Histogram` with the same name, labels
    and buckets does (`_bucket`, `_count`, `_sum` and `_created` series), but
    `labels(...)` returns a cached child and `observe` is one bisect and one lock, where
    `Histogram.labels(...).observe(...)` validates the labels, takes three locks and
    walks the buckets in Python: about 4 µs per message, twice per NATS round trip.
    (Not for prometheus-client's multiprocess mode, which fieldsync does not use.)
    """

    _type = "histogram"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        bounds = [float(bound) for bound in buckets]
        if bounds != sorted(bounds) or not bounds:
            raise ValueError("buckets must be given in increasing order")
        if bounds[-1] != INF:
            bounds.append(INF)
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.upper_bounds = tuple(bounds)
        self._le = tuple(floatToGoString(bound) for bound in bounds)  # type: ignore[no-untyped-call]
        self._children: dict[tuple[str, ...], _LatencyChild] = {}
        self._lock = Lock()
        if registry is not None:
            registry.register(self)

    def labels(self, *values: str) -> _LatencyChild:
        """The series for these label values (created on first use)."""
        child = self._children.get(values)
        return self._new_child(values) if child is None else child

    def _new_child(self, values: tuple[str, ...]) -> _LatencyChild:
        if len(values) != len(self.labelnames):
            raise ValueError("Incorrect label count")
        key = tuple(str(value) for value in values)
        with self._lock:
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = _LatencyChild(self.upper_bounds)
        return child

    def describe(self) -> Iterable[prometheus_client.Metric]:
        return [prometheus_client.Metric(self.name, self.documentation, self._type)]

    def collect(self) -> Iterable[prometheus_client.Metric]:
        metric = prometheus_client.Metric(self.name, self.documentation, self._type)
        with self._lock:
            children = list(self._children.items())
        use_created = getattr(prometheus_client.metrics, "_use_created", True)
        for values, child in children:
            labels = dict(zip(self.labelnames, values, strict=True))
            counts, total, created = child.snapshot()
            cumulative = 0.0
            for le, count in zip(self._le, counts, strict=True):
                cumulative += count
                metric.samples.append(
                    Sample(f"{self.name}_bucket", {**labels, "le": le}, cumulative)
                )
            metric.samples.append(Sample(f"{self.name}_count", labels, cumulative))
            if self.upper_bounds[0] >= 0:
                metric.samples.append(Sample(f"{self.name}_sum", labels, total))
            if use_created:
                metric.samples.append(Sample(f"{self.name}_created", labels, created))
        return [metric]


class _LatencyChild:
    """One labelled series of a LatencyHistogram."""

    __slots__ = ("_bounds", "_counts", "_created", "_lock", "_sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self._counts = [0] * len(bounds)
        self._sum = 0.0
        self._created = time()
        self._lock = Lock()

    def observe(self, amount: float) -> None:
        """Count `amount` in the first bucket whose upper bound is >= it."""
        index = bisect_left(self._bounds, amount)
        with self._lock:
            self._counts[index] += 1
            self._sum += amount

    def snapshot(self) -> tuple[list[int], float, float]:
        with self._lock:
            return list(self._counts), self._sum, self._created


NATS_REQUEST_LATENCY = LatencyHistogram(
    "fieldsync_nats_request_duration_seconds",
    "Latency of NATS requests sent, by subject and outcome.",
    ["subject", "outcome"],
    buckets=LATENCY_BUCKETS,
)
NATS_HANDLER_LATENCY = LatencyHistogram(
    "fieldsync_nats_handler_duration_seconds",
    "Time spent handling NATS requests, by subject and outcome.",
    ["subject", "outcome"],
    buckets=LATENCY_BUCKETS,
)


def render_latest() -> tuple[bytes, str]:
    """The exposition text of every registered metric and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
