"""The OpenAPI document says what the edge really answers: problem+json errors.

FastAPI documents only its own 422 shape; fieldsync answers every error as an RFC 9457
problem document, so each operation's error responses are rewritten to say so.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from fieldsync.kit.http.problems import PROBLEM_CONTENT_TYPE

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An RFC 9457 problem document; `type` is stable per kind of error.",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "examples": ["urn:fieldsync:problem:not-found"]},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "Field errors of a 422: `loc` is the path to the field.",
            "items": {"type": "object"},
        },
        "retry_after": {"type": "integer", "description": "Seconds to wait (429)."},
    },
    "additionalProperties": True,
}

ERROR_RESPONSES = {
    "400": "The request cannot be read",
    "401": "No valid access token",
    "403": "The caller's role does not allow this",
    "404": "No such object, or not visible to the caller",
    "409": "Stale version or a uniqueness conflict",
    "413": "The body is over the size limit",
    "422": "Validation failed; `errors` lists field paths",
    "429": "Rate limited; see Retry-After",
    "503": "A dependency cannot answer now",
}


def install_problem_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` document problem+json for every error status."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Problem"] = PROBLEM_SCHEMA
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        problem = {"$ref": "#/components/schemas/Problem"}
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                for status, description in ERROR_RESPONSES.items():
                    responses[status] = {
                        "description": responses.get(status, {}).get("description", description),
                        "content": {PROBLEM_CONTENT_TYPE: {"schema": problem}},
                    }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
