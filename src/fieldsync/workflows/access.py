"""Who may do what: the caller's organization, building scope and role."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from fieldsync.contracts.identity import Caller, Role
from fieldsync.contracts.workflows import ScopedRequest
from fieldsync.kit.errors import Forbidden


@dataclass(frozen=True)
class Access:
    """A caller and the buildings they may work in (None: the whole organization)."""

    caller: Caller
    building_scope: frozenset[uuid.UUID] | None

    @classmethod
    def of(cls, request: ScopedRequest) -> Access:
        """The access a request asks with."""
        return cls.within(request.caller, request.building_scope)

    @classmethod
    def within(cls, caller: Caller, building_scope: list[uuid.UUID] | None) -> Access:
        """The caller's access within these buildings (None: the whole organization)."""
        scope = None if building_scope is None else frozenset(building_scope)
        return cls(caller=caller, building_scope=scope)

    @property
    def organization_id(self) -> uuid.UUID:
        """The organization every query is limited to."""
        return self.caller.organization_id

    @property
    def manages(self) -> bool:
        """True for managers and admins."""
        return self.caller.has_role(Role.ADMIN, Role.MANAGER)

    def sees(self, building_id: uuid.UUID) -> bool:
        """Whether the building is within the caller's scope."""
        return self.building_scope is None or building_id in self.building_scope

    def require_manager(self, action: str) -> None:
        """Raise Forbidden unless the caller is a manager or an admin."""
        if not self.manages:
            raise Forbidden(f"{action} requires the manager or admin role")
