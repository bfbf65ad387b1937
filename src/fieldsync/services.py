"""The composition root: every service fieldsync has, by name."""

from __future__ import annotations

from fieldsync.api.service import SERVICE as API
from fieldsync.kit.service import ServiceSpec
from fieldsync.sync.service import SERVICE as SYNC
from fieldsync.workflows.service import SERVICE as WORKFLOWS

SERVICES: dict[str, ServiceSpec] = {spec.name: spec for spec in (API, WORKFLOWS, SYNC)}


def resolve(names: list[str] | None) -> list[ServiceSpec]:
    """The named services (all of them for None); unknown names raise KeyError."""
    if not names:
        return list(SERVICES.values())
    return [SERVICES[name] for name in names]
