"""Every model of the api database, imported so Alembic and the ORM see them all."""

from fieldsync.api.audit.models import AuditEvent
from fieldsync.api.auth.models import AuthSession, RefreshToken
from fieldsync.api.buildings.models import Building, BuildingAssignment
from fieldsync.api.models import Base, applied_mutations, node_leases, outbox
from fieldsync.api.organizations.models import Organization
from fieldsync.api.users.models import User

__all__ = [
    "AuditEvent",
    "AuthSession",
    "Base",
    "Building",
    "BuildingAssignment",
    "Organization",
    "RefreshToken",
    "User",
    "applied_mutations",
    "node_leases",
    "outbox",
]
