"""How replies and errors look on the wire.

A successful reply is the reply model's JSON with no headers (the cheapest
message NATS can carry). An error reply carries the `Fieldsync-Error` header with
the error code and a JSON body `{"detail": ..., "extensions": {...}}`.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from fieldsync.kit.errors import FieldsyncError, ValidationFailed, error_from_code

ERROR_HEADER = "Fieldsync-Error"

ModelT = TypeVar("ModelT", bound=BaseModel)


def encode_model(model: BaseModel) -> bytes:
    """The model's JSON: `model_dump_json().encode()` without the str round trip."""
    return model.__pydantic_serializer__.to_json(model)


def decode_model(model_type: type[ModelT], data: bytes) -> ModelT:
    """`model_type.model_validate_json(data)`, minus that method's argument checks."""
    model: ModelT = model_type.__pydantic_validator__.validate_json(data)
    return model


def encode_error(error: FieldsyncError) -> tuple[bytes, dict[str, str]]:
    """Body and headers of an error reply."""
    body = orjson.dumps({"detail": error.detail, "extensions": error.extensions}, default=str)
    return body, {ERROR_HEADER: error.code}


def decode_error(code: str, body: bytes) -> FieldsyncError:
    """The error a remote handler raised, rebuilt as the same type."""
    try:
        payload: dict[str, Any] = orjson.loads(body)
        detail = str(payload.get("detail", ""))
        extensions = dict(payload.get("extensions") or {})
    except (orjson.JSONDecodeError, TypeError, ValueError):
        detail, extensions = "malformed error reply", {}
    return error_from_code(code, detail, extensions)


def validation_failed(exc: ValidationError, where: str) -> ValidationFailed:
    """A pydantic error as a ValidationFailed listing field paths (input values left out)."""
    errors = [
        {"loc": [where, *error["loc"]], "msg": error["msg"], "type": error["type"]}
        for error in exc.errors(include_url=False, include_input=False)
    ]
    return ValidationFailed(f"{len(errors)} invalid field(s)", errors=errors)
