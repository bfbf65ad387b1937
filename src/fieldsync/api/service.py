"""The api service as the runtime sees it."""

from __future__ import annotations

from fieldsync.kit.service import ServiceSpec

SERVICE = ServiceSpec(name="api", migrations="fieldsync.api:migrations")
