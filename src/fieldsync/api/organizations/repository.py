"""SQL for organizations."""

from __future__ import annotations

from fieldsync.api.organizations.models import Organization
from fieldsync.kit.db.repository import Repository


class OrganizationRepository(Repository[Organization]):
    """Organizations by id or public id."""

    model = Organization
