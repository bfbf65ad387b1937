"""Request-scoped context that follows a request across HTTP and NATS.

The request id (`X-Request-ID`) and W3C trace context (`traceparent`) are kept in
structlog's contextvars so every log line carries them, and the messaging kit copies
them into NATS headers. The traceparent format is a fixed 55-character string
(version-traceid-spanid-flags); parsing it takes a few lines, so no tracing SDK is
pulled in for it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import structlog

REQUEST_ID_HEADER = "X-Request-ID"
TRACEPARENT_HEADER = "traceparent"

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def new_request_id() -> str:
    """A fresh, URL-safe request id."""
    return secrets.token_hex(16)


def accept_request_id(value: str | None) -> str:
    """Keep a caller's request id when it is safe to log, otherwise make a new one."""
    if value is not None and _REQUEST_ID.match(value):
        return value
    return new_request_id()


def child_traceparent(parent: str | None) -> str:
    """A traceparent for a new span: same trace as `parent` (when valid), new span id."""
    match = _TRACEPARENT.match(parent or "")
    trace_id = match.group(1) if match and match.group(1) != "0" * 32 else secrets.token_hex(16)
    flags = match.group(3) if match else "01"
    return f"00-{trace_id}-{secrets.token_hex(8)}-{flags}"


def trace_id_of(traceparent: str) -> str:
    """The trace id inside a traceparent header value."""
    return traceparent.split("-")[1]


def current() -> dict[str, str]:
    """The request id and traceparent bound to the running task, if any."""
    bound = structlog.contextvars.get_contextvars()
    found: dict[str, str] = {}
    if "request_id" in bound:
        found["request_id"] = str(bound["request_id"])
    if "traceparent" in bound:
        found["traceparent"] = str(bound["traceparent"])
    return found


@contextmanager
def bound(request_id: str, traceparent: str, **extra: str) -> Iterator[None]:
    """Bind a request id and traceparent (and extra keys) for the duration of a block."""
    tokens = structlog.contextvars.bind_contextvars(
        request_id=request_id,
        traceparent=traceparent,
        trace_id=trace_id_of(traceparent),
        **extra,
    )
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


def from_headers(headers: Mapping[str, str] | None) -> tuple[str, str]:
    """Request id and a child traceparent from incoming headers (made up when absent)."""
    headers = headers or {}
    request_id = accept_request_id(headers.get(REQUEST_ID_HEADER))
    return request_id, child_traceparent(headers.get(TRACEPARENT_HEADER))
