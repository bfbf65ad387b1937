"""The one error hierarchy of fieldsync.

Services raise these; the HTTP edge renders them as `application/problem+json`
(RFC 9457) and the messaging kit carries them across NATS as structured replies, so
a caller re-raises the same type the handler raised.
"""

from __future__ import annotations

from typing import Any, ClassVar

# A URN rather than a URL: stable, and it promises no web page at an address we do not own.
PROBLEM_TYPE_BASE = "urn:fieldsync:problem:"


class FieldsyncError(Exception):
    """Base class: an error with a stable code, an HTTP status and a safe message."""

    code: ClassVar[str] = "internal"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str | None = None, **extensions: Any) -> None:
        self.detail = detail or self.title
        self.extensions = extensions
        super().__init__(self.detail)

    @property
    def type_uri(self) -> str:
        """The stable problem `type` URI for this error kind."""
        return PROBLEM_TYPE_BASE + self.code

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        """The RFC 9457 problem document for this error (extensions included)."""
        problem: dict[str, Any] = {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            **self.extensions,
        }
        if instance is not None:
            problem["instance"] = instance
        return problem


class ValidationFailed(FieldsyncError):
    """Input is well-formed but not acceptable; `errors` lists field paths."""

    code = "validation"
    status = 422
    title = "Validation failed"


class BadRequest(FieldsyncError):
    """The request cannot be read at all (bad JSON, wrong content type)."""

    code = "bad-request"
    status = 400
    title = "Bad request"


class Unauthorized(FieldsyncError):
    """No valid credentials; `challenge` is the RFC 6750 `WWW-Authenticate` value."""

    code = "unauthorized"
    status = 401
    title = "Unauthorized"

    def __init__(self, detail: str | None = None, *, challenge: str = "Bearer", **extensions: Any):
        super().__init__(detail, **extensions)
        self.challenge = challenge


class Forbidden(FieldsyncError):
    """Credentials are valid but the role does not allow the action."""

    code = "forbidden"
    status = 403
    title = "Forbidden"


class NotFound(FieldsyncError):
    """The object does not exist, or is not visible to the caller."""

    code = "not-found"
    status = 404
    title = "Not found"


class Conflict(FieldsyncError):
    """The write is based on a stale version or violates a uniqueness rule."""

    code = "conflict"
    status = 409
    title = "Conflict"


class Gone(FieldsyncError):
    """What the request refers to no longer exists here (e.g. a too old sync checkpoint)."""

    code = "gone"
    status = 410
    title = "Gone"


class PayloadTooLarge(FieldsyncError):
    """The request body is over the configured cap."""

    code = "payload-too-large"
    status = 413
    title = "Payload too large"


class TooManyRequests(FieldsyncError):
    """A rate limit was hit; `retry_after` says when to try again (seconds)."""

    code = "too-many-requests"
    status = 429
    title = "Too many requests"

    def __init__(self, detail: str | None = None, *, retry_after: int = 1, **extensions: Any):
        super().__init__(detail, retry_after=retry_after, **extensions)
        self.retry_after = retry_after


class Unavailable(FieldsyncError):
    """A dependency (database, NATS, another service) cannot serve the request now."""

    code = "unavailable"
    status = 503
    title = "Service unavailable"


ERRORS_BY_CODE: dict[str, type[FieldsyncError]] = {
    cls.code: cls
    for cls in (
        FieldsyncError,
        ValidationFailed,
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        Gone,
        PayloadTooLarge,
        TooManyRequests,
        Unavailable,
    )
}


def error_from_code(code: str, detail: str, extensions: dict[str, Any]) -> FieldsyncError:
    """Rebuild the error a remote handler raised from its code (unknown codes -> internal)."""
    cls = ERRORS_BY_CODE.get(code, FieldsyncError)
    if cls is TooManyRequests:
        retry_after = int(extensions.pop("retry_after", 1))
        return TooManyRequests(detail, retry_after=retry_after, **extensions)
    return cls(detail, **extensions)
