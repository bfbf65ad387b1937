"""What a service declares about itself, so one runtime can host one or all of them."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import APIRouter

from fieldsync.kit.messaging.router import Router

if TYPE_CHECKING:
    from fieldsync.kit.runtime import Runtime

BackgroundTask = Callable[["Runtime"], Coroutine[None, None, None]]


@dataclass(frozen=True)
class ServiceSpec:
    """A service: its name, database migrations, HTTP routers, NATS handlers, workers."""

    name: str
    migrations: str | None = None
    http_routers: Sequence[APIRouter] = field(default_factory=tuple)
    bus_routers: Sequence[Router] = field(default_factory=tuple)
    background: Sequence[BackgroundTask] = field(default_factory=tuple)
    # Awaited in order once connections are up, before the runtime reports started:
    # per-process state the endpoints need from their first request.
    startup: Sequence[BackgroundTask] = field(default_factory=tuple)
    # The api service issues access tokens and needs the private key; others verify.
    signs_tokens: bool = False

    @property
    def has_database(self) -> bool:
        """True when the service owns a database (it then has migrations)."""
        return self.migrations is not None
