"""Refusing one field's value with a ValidationFailed that names the field."""

from __future__ import annotations

from fieldsync.kit.errors import ValidationFailed


def invalid(field: str, message: str) -> ValidationFailed:
    """A ValidationFailed about `field`.

    `loc` is what every other ValidationFailed carries; `field` is what a pushed
    mutation's rejection reads (`contracts.mutations.result_of_error`).
    """
    return ValidationFailed(
        f"{field}: {message}", errors=[{"loc": [field], "field": field, "msg": message}]
    )
