"""Request-scoped context that follows a request across HTTP and NATS.

The request id (`X-Request-ID`) and W3C trace context (`traceparent`) are kept in
structlog's contextvars so every log line carries them, and the messaging kit copies
them into NATS headers. The traceparent format is a fixed 55-character string
(version-traceid-spanid-flags); parsing it takes a few lines, so no tracing SDK is
pulled in for it.

Ids are made on every request and every message, so they are made cheaply: request
ids are a random per-process prefix plus a counter (unique, not secret), and trace
and span ids come from a `random.Random` seeded from the OS (random enough not to
collide, which is all W3C trace context asks of them). Both are re-seeded in a
forked child, so parent and child never hand out the same ids.
"""

from __future__ import annotations

import contextvars
import itertools
import os
import random
import re
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import structlog

REQUEST_ID_HEADER = "X-Request-ID"
TRACEPARENT_HEADER = "traceparent"

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ZERO_TRACE_ID = "0" * 32
_SPAN_MASK = (1 << 64) - 1

# Trace and span ids must be unique, not unpredictable (see the module docstring).
_random = random.Random()  # noqa: S311
_getrandbits = _random.getrandbits
_request_id_prefix = ""
_request_counter = itertools.count()


def _seed() -> None:
    global _request_id_prefix, _request_counter
    _random.seed(os.urandom(32))
    _request_id_prefix = secrets.token_hex(8)
    _request_counter = itertools.count()


_seed()
os.register_at_fork(after_in_child=_seed)

# Hex digits below come from int.to_bytes(...).hex(): format(n, "032x") costs three times as much.


def new_request_id() -> str:
    """A fresh, URL-safe request id: 32 hex characters, unique (not secret)."""
    return _request_id_prefix + next(_request_counter).to_bytes(8, "big").hex()


def accept_request_id(value: str | None) -> str:
    """Keep a caller's request id when it is safe to log, otherwise make a new one."""
    if value is not None and _REQUEST_ID.match(value):
        return value
    return new_request_id()


def _new_traceparent(flags: str) -> str:
    """A traceparent starting a new trace (random, non-zero trace and span ids)."""
    bits = _getrandbits(192)
    while not (bits >> 64 and bits & _SPAN_MASK):
        bits = _getrandbits(192)
    ids = bits.to_bytes(24, "big").hex()
    return f"00-{ids[:32]}-{ids[32:]}-{flags}"


def _new_span_id() -> str:
    span = _getrandbits(64)
    while not span:
        span = _getrandbits(64)
    return span.to_bytes(8, "big").hex()


def child_traceparent(parent: str | None) -> str:
    """A traceparent for a new span: same trace as `parent` (when valid), new span id."""
    match = _TRACEPARENT.match(parent) if parent else None
    if match is None:
        return _new_traceparent("01")
    trace_id, _, flags = match.groups()
    if trace_id == _ZERO_TRACE_ID:
        return _new_traceparent(flags)
    return f"00-{trace_id}-{_new_span_id()}-{flags}"


def trace_id_of(traceparent: str) -> str:
    """The trace id inside a traceparent header value."""
    return traceparent.split("-")[1]


def _structlog_vars(*keys: str) -> tuple[contextvars.ContextVar[Any], ...]:
    """The ContextVars behind structlog's contextvars `keys` (bound once, in a throwaway
    context, so structlog creates them). Setting them is what `bind_contextvars` does,
    without its per-call lookups; `merge_contextvars` reads them all the same."""

    def bind_and_list() -> dict[str, contextvars.ContextVar[Any]]:
        structlog.contextvars.bind_contextvars(**dict.fromkeys(keys))
        return {var.name: var for var in contextvars.copy_context()}

    found = contextvars.Context().run(bind_and_list)
    prefix = structlog.contextvars.STRUCTLOG_KEY_PREFIX
    return tuple(found[prefix + key] for key in keys)


_REQUEST_ID_VAR, _TRACEPARENT_VAR, _TRACE_ID_VAR, _SUBJECT_VAR = _structlog_vars(
    "request_id", "traceparent", "trace_id", "subject"
)
# structlog marks an unbound (or cleared) key with Ellipsis.
_UNSET: Any = Ellipsis


def current() -> dict[str, str]:
    """The request id and traceparent bound to the running task, if any."""
    found: dict[str, str] = {}
    request_id = _REQUEST_ID_VAR.get(_UNSET)
    if request_id is not _UNSET:
        found["request_id"] = str(request_id)
    traceparent = _TRACEPARENT_VAR.get(_UNSET)
    if traceparent is not _UNSET:
        found["traceparent"] = str(traceparent)
    return found


def request_headers() -> dict[str, str]:
    """Headers for an outgoing request: the bound request id (or a new one) and a
    traceparent for a child span of the bound trace (or of a new trace)."""
    request_id = _REQUEST_ID_VAR.get(_UNSET)
    request_id = "" if request_id is _UNSET else str(request_id)
    traceparent = _TRACEPARENT_VAR.get(_UNSET)
    traceparent = None if traceparent is _UNSET else str(traceparent)
    return {
        REQUEST_ID_HEADER: request_id or new_request_id(),
        TRACEPARENT_HEADER: child_traceparent(traceparent),
    }


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


_Token = contextvars.Token[Any]
MessageTokens = tuple[_Token, _Token, _Token, _Token]


def bind_message(request_id: str, traceparent: str, subject: str) -> MessageTokens:
    """Bind what `bound(request_id, traceparent, subject=subject)` binds, for one message
    handled by a long-lived worker; undo it with `unbind_message(tokens)`.

    `traceparent` must be well-formed (as `child_traceparent` and `from_headers` make it).
    """
    return (
        _REQUEST_ID_VAR.set(request_id),
        _TRACEPARENT_VAR.set(traceparent),
        _TRACE_ID_VAR.set(traceparent[3:35]),
        _SUBJECT_VAR.set(subject),
    )


def unbind_message(tokens: MessageTokens) -> None:
    """Restore the context `bind_message` changed."""
    _REQUEST_ID_VAR.reset(tokens[0])
    _TRACEPARENT_VAR.reset(tokens[1])
    _TRACE_ID_VAR.reset(tokens[2])
    _SUBJECT_VAR.reset(tokens[3])
