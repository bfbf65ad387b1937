"""Typed request-reply handlers, registered by subject for one queue group.

A handler is `async def handle(request: SomeModel[, context: MessageContext]) -> Reply`:
its first parameter's annotation is the request schema and its return annotation the
reply schema. The return value *is* the reply; raising a `FieldsyncError` sends a
structured error reply that the caller re-raises as the same type.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, get_type_hints

from pydantic import BaseModel

ReplyT = TypeVar("ReplyT", bound=BaseModel)
Handler = Callable[..., Awaitable[BaseModel]]
HandlerT = TypeVar("HandlerT", bound=Handler)


@dataclass(frozen=True)
class MessageContext:
    """What a handler may want to know about the message besides its body."""

    subject: str
    request_id: str
    traceparent: str
    headers: dict[str, str]


@dataclass(frozen=True)
class HandlerSpec:
    """One registered handler: where it listens and what it takes and gives."""

    subject: str
    queue: str
    request_model: type[BaseModel]
    reply_model: type[BaseModel]
    function: Handler
    wants_context: bool
    max_in_flight: int


class Router:
    """A set of handlers sharing one queue group (by convention the service name)."""

    def __init__(self, *, queue: str, max_in_flight: int = 256) -> None:
        self.queue = queue
        self.max_in_flight = max_in_flight
        self.handlers: list[HandlerSpec] = []

    def handler(self, subject: str) -> Callable[[HandlerT], HandlerT]:
        """Register `function` for `subject`; schemas come from its annotations."""

        def register(function: HandlerT) -> HandlerT:
            hints = get_type_hints(function)
            parameters = list(inspect.signature(function).parameters)
            if not parameters or len(parameters) > 2:
                raise TypeError(f"{function.__name__}: takes (request[, context])")
            request_model = hints.get(parameters[0])
            reply_model = hints.get("return")
            if (
                request_model is None
                or reply_model is None
                or not (_is_model(request_model) and _is_model(reply_model))
            ):
                raise TypeError(
                    f"{function.__name__}: annotate the request parameter and the return "
                    "value with pydantic models"
                )
            if any(spec.subject == subject for spec in self.handlers):
                raise ValueError(f"subject {subject!r} already has a handler")
            self.handlers.append(
                HandlerSpec(
                    subject=subject,
                    queue=self.queue,
                    request_model=request_model,
                    reply_model=reply_model,
                    function=function,
                    wants_context=len(parameters) == 2,
                    max_in_flight=self.max_in_flight,
                )
            )
            return function

        return register


def _is_model(annotation: Any) -> bool:
    return inspect.isclass(annotation) and issubclass(annotation, BaseModel)
