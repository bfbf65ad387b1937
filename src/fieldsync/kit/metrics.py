"""Prometheus metrics shared by the HTTP edge and the messaging kit.

Metric objects are module-level because prometheus-client's registry is; they are
read-only plumbing, never application state.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest

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
NATS_REQUEST_LATENCY = Histogram(
    "fieldsync_nats_request_duration_seconds",
    "Latency of NATS requests sent, by subject and outcome.",
    ["subject", "outcome"],
    buckets=LATENCY_BUCKETS,
)
NATS_HANDLER_LATENCY = Histogram(
    "fieldsync_nats_handler_duration_seconds",
    "Time spent handling NATS requests, by subject and outcome.",
    ["subject", "outcome"],
    buckets=LATENCY_BUCKETS,
)


def render_latest() -> tuple[bytes, str]:
    """The exposition text of every registered metric and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
