"""Every error leaves the HTTP edge as `application/problem+json` (RFC 9457).

Expected errors are mapped here; unexpected exceptions are caught by the edge
middleware, which logs them and answers a bare 500 problem.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError as PydanticValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from fieldsync.kit.errors import (
    PROBLEM_TYPE_BASE,
    FieldsyncError,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)
from fieldsync.kit.logging import get_logger
from fieldsync.kit.messaging.codec import validation_failed

log = get_logger(__name__)
PROBLEM_CONTENT_TYPE = "application/problem+json"

_STATUS_CODES = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation",
    429: "too-many-requests",
    503: "unavailable",
}


def problem_response(
    problem: dict[str, Any], status: int, headers: dict[str, str] | None = None
) -> Response:
    """A response carrying a problem document."""
    return Response(
        content=orjson.dumps(problem, default=str),
        status_code=status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


def error_response(error: FieldsyncError, request: Request) -> Response:
    """Render a FieldsyncError; 5xx details never include internals."""
    headers: dict[str, str] | None = None
    if isinstance(error, TooManyRequests):
        headers = {"Retry-After": str(error.retry_after)}
    elif isinstance(error, Unauthorized):
        headers = {"WWW-Authenticate": error.challenge}  # RFC 6750
    return problem_response(error.to_problem(instance=request.url.path), error.status, headers)


def validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """FastAPI's validation errors as field paths and messages, without echoing input."""
    return [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type")}
        for error in exc.errors()
    ]


def install_problem_handlers(app: FastAPI) -> None:
    """Map every error the app can raise to a problem response."""

    async def on_fieldsync_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, FieldsyncError)
        if exc.status >= 500:
            log.warning("request failed", error=exc.code, detail=exc.detail)
        return error_response(exc, request)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = validation_errors(exc)
        error = ValidationFailed(f"{len(errors)} invalid field(s)", errors=errors)
        return error_response(error, request)

    async def on_http_exception(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = _STATUS_CODES.get(exc.status_code, f"http-{exc.status_code}")
        problem = {
            "type": PROBLEM_TYPE_BASE + code,
            "title": code.replace("-", " ").capitalize(),
            "status": exc.status_code,
            "detail": str(exc.detail),
            "instance": request.url.path,
        }
        return problem_response(problem, exc.status_code, dict(exc.headers or {}) or None)

    async def on_model_error(request: Request, exc: Exception) -> Response:
        # A model built inside an endpoint from request data (e.g. a message to
        # another service) rejected it: still the client's input, so a 422.
        assert isinstance(exc, PydanticValidationError)
        return error_response(validation_failed(exc, "body"), request)

    app.add_exception_handler(FieldsyncError, on_fieldsync_error)
    app.add_exception_handler(PydanticValidationError, on_model_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)
