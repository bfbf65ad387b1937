"""The edge middleware, as plain ASGI (no per-request BaseHTTPMiddleware task).

For every HTTP request it binds the request id and trace context to the log
context, echoes `X-Request-ID`, enforces the body size cap (413), records metrics by
route template, and writes one access log line.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fieldsync.kit import context
from fieldsync.kit.errors import FieldsyncError, PayloadTooLarge, TooManyRequests
from fieldsync.kit.http.problems import PROBLEM_CONTENT_TYPE
from fieldsync.kit.logging import get_logger
from fieldsync.kit.metrics import HTTP_LATENCY, HTTP_REQUESTS

log = get_logger("fieldsync.http")


class _BodyTooLarge(Exception):
    pass


# Swagger UI (/docs) runs one inline script and loads its bundled assets from this
# server; every other response is data and may load nothing at all.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
# Probes and scrapers are not rate limited: a busy monitor must not take a replica out.
UNLIMITED_PATHS = frozenset({"/health/live", "/health/ready", "/metrics"})

IpLimit = Callable[[str], Awaitable[None]]


def security_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    """Headers every response carries; HSTS only when served over https."""
    path = scope.get("path", "")
    csp = DOCS_CSP if path in ("/docs", "/docs/oauth2-redirect") else API_CSP
    headers = [*SECURITY_HEADERS, (b"content-security-policy", csp.encode())]
    if scope.get("scheme") == "https":
        headers.append(HSTS)
    return headers


class EdgeMiddleware:
    """Request id, security headers, per-IP limit, body cap, metrics and access log."""

    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, ip_limit: IpLimit | None = None
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.ip_limit = ip_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {
            key.decode("latin-1").lower(): value.decode("latin-1")
            for key, value in scope["headers"]
        }
        request_id = context.accept_request_id(headers.get("x-request-id"))
        traceparent = context.child_traceparent(headers.get("traceparent"))
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            request_id=request_id,
            traceparent=traceparent,
            trace_id=context.trace_id_of(traceparent),
        )
        started = time.perf_counter()
        status = 500
        response_started = False

        client = scope.get("client")
        if self.ip_limit is not None and scope.get("path") not in UNLIMITED_PATHS:
            try:
                await self.ip_limit(client[0] if client else "unknown")
            except TooManyRequests as exc:
                status = 429
                await self._send_problem(send, exc, request_id, scope)
                self._record(scope, status, started)
                return

        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            status = 413
            too_large = PayloadTooLarge(
                f"request body is over the {self.max_body_bytes}-byte limit"
            )
            await self._send_problem(send, too_large, request_id, scope)
            self._record(scope, status, started)
            return

        received = 0

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                    *security_headers(scope),
                ]
            await send(message)

        try:
            await self.app(scope, capped_receive, send_with_id)
        except _BodyTooLarge:
            if response_started:
                raise
            status = 413
            too_large = PayloadTooLarge(
                f"request body is over the {self.max_body_bytes}-byte limit"
            )
            await self._send_problem(send, too_large, request_id, scope)
        except Exception:
            # Anything unexpected: log it with its trace, give the client none of it.
            log.exception("unhandled error", path=scope.get("path"))
            if response_started:
                raise
            status = 500
            await self._send_problem(send, FieldsyncError("internal error"), request_id, scope)
        finally:
            self._record(scope, status, started)

    @staticmethod
    async def _send_problem(
        send: Send, error: FieldsyncError, request_id: str, scope: Scope
    ) -> None:
        body = orjson.dumps(error.to_problem(instance=scope.get("path")))
        headers = [
            (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
            *security_headers(scope),
        ]
        if isinstance(error, TooManyRequests):
            headers.append((b"retry-after", str(error.retry_after).encode()))
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _record(scope: Scope, status: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = scope.get("method", "?")
        HTTP_REQUESTS.labels(method, template, str(status)).inc()
        HTTP_LATENCY.labels(method, template).observe(elapsed)
        log.info(
            "request",
            method=method,
            path=scope.get("path"),
            route=template,
            status=status,
            duration_ms=round(elapsed * 1000, 2),
        )
